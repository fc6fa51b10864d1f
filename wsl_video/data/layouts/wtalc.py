"""W-TALC layout: one joint feature file and a folder of annotation arrays per dataset.

THUMOS14 (reduced): ``Thumos14reduced-I3D-JOINTFeatures.npy`` (a pickled object array of ``(T_i, 2D)`` joint
features, RGB then flow, one per video in ``videoname.npy`` order) and ``Thumos14reduced-Annotations/``
(``videoname.npy``, ``subset.npy``, ``classlist.npy``, ``labels.npy``, ``segments.npy`` in seconds,
``duration.npy``, ``Ambiguous_test.txt``; names as byte strings). ``train`` is the ``validation`` subset,
``test`` the ``test`` subset; a snippet is 16 frames at 25 fps.

ActivityNet1.2: ``ActivityNet1.2-I3D-JOINTFeatures.npy`` and ``ActivityNet1.2-Annotations/`` with the same
arrays (no ambiguous segments); ``train`` is the ``training`` subset, ``test`` the ``validation`` subset, and
each video's snippet length is ``duration / T`` (its ``duration.npy`` entry is required).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsl_video.data.annotations import Entry, make_video, read_ambiguous, select_thumos
from wsl_video.data.files import read_npy, require_file
from wsl_video.data.layouts.common import missing_error, warn_skipped
from wsl_video.data.records import FeatureDataset, Video

__all__ = ["open_wtalc", "open_activitynet12", "FEATURES_FILE", "ANNOTATIONS_DIR", "ANET12_FEATURES_FILE",
           "ANET12_ANNOTATIONS_DIR", "ANET12_SUBSETS"]

FEATURES_FILE = "Thumos14reduced-I3D-JOINTFeatures.npy"
ANNOTATIONS_DIR = "Thumos14reduced-Annotations"
ANET12_FEATURES_FILE = "ActivityNet1.2-I3D-JOINTFeatures.npy"
ANET12_ANNOTATIONS_DIR = "ActivityNet1.2-Annotations"
ANET12_SUBSETS = {"train": "training", "test": "validation"}


def _text(value) -> str:
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def _read_annotations(folder: Path) -> tuple[list[str], dict[str, Entry]]:
    require_file(folder / "videoname.npy", "annotation file")
    names = [_text(v) for v in read_npy(folder / "videoname.npy", object_arrays=True)]
    subsets = [_text(v) for v in read_npy(folder / "subset.npy", object_arrays=True)]
    classes = [_text(v) for v in read_npy(folder / "classlist.npy", object_arrays=True)]
    labels = read_npy(folder / "labels.npy", object_arrays=True)
    segments = read_npy(folder / "segments.npy", object_arrays=True)
    duration_path = folder / "duration.npy"
    durations = (read_npy(duration_path, object_arrays=True).reshape(len(names), -1)[:, 0]
                 if duration_path.is_file() else [None] * len(names))
    for file, values in (("subset.npy", subsets), ("labels.npy", labels), ("segments.npy", segments),
                         ("duration.npy", durations)):
        if len(values) != len(names):
            raise ValueError(f"{folder / file}: {len(values)} entries but videoname.npy has {len(names)}")
    known = set(classes)
    entries = {}
    rows = zip(names, subsets, labels, segments, durations)
    for name, subset, video_labels, video_segments, duration in rows:
        where = f"{folder}: video {name}"
        video_labels = [_text(v) for v in video_labels]
        video_segments = [list(map(float, segment)) for segment in video_segments]
        if len(video_labels) != len(video_segments):
            raise ValueError(f"{where}: {len(video_labels)} labels but {len(video_segments)} segments")
        annotations = []
        for (start, end), label in zip(video_segments, video_labels):
            if label not in known:
                raise ValueError(f"{where}: unknown label {label!r} (not in classlist.npy)")
            if not (np.isfinite(start) and np.isfinite(end)) or end < start:
                raise ValueError(f"{where}: invalid segment [{start}, {end}]")
            annotations.append((start, end, label))
        duration = None if duration is None or not np.isfinite(float(duration)) else float(duration)
        entries[name] = Entry(name, subset, duration, annotations, [])
    return classes, entries


def _joint_features(features_path: Path, chosen: list[Entry], order: dict[str, int], skip_missing: bool,
                    where: str) -> tuple[list[Entry], dict[str, np.ndarray], int]:
    """The ``(T, D)`` joint feature array of each chosen video, in the order of ``videoname.npy``."""
    require_file(features_path, "W-TALC feature file")
    features = read_npy(features_path, object_arrays=True)
    kept, skipped, arrays = [], [], {}
    dim = None
    for entry in chosen:
        i = order[entry.name]
        array = features[i] if i < len(features) else None
        if array is None or np.size(array) == 0:
            if skip_missing:
                skipped.append(entry.name)
                continue
            raise missing_error(features_path, entry.name)
        array = np.asarray(array)
        if array.ndim != 2 or array.dtype.kind not in "fiu":
            raise ValueError(f"{features_path}: features of video {entry.name} have shape {array.shape} "
                             f"and dtype {array.dtype}, expected a numeric (T, D) array")
        if dim is None:
            dim = array.shape[1]
        elif array.shape[1] != dim:
            raise ValueError(f"{features_path}: features of video {entry.name} have {array.shape[1]} dims, "
                             f"expected {dim} like the other videos")
        kept.append(entry)
        arrays[entry.name] = array
    warn_skipped(skipped, where)
    if not kept:
        raise ValueError(f"{where}: the dataset is empty")
    return kept, arrays, dim


def open_wtalc(root: Path, subset: str, *, streams: str = "two", skip_missing: bool = False,
               test_videos: int = 212, seconds_per_snippet: float = 16 / 25) -> FeatureDataset:
    root = Path(root)
    folder = root / ANNOTATIONS_DIR
    classes, entries = _read_annotations(folder)
    order = {name: i for i, name in enumerate(entries)}
    chosen = select_thumos(entries, subset, test_videos)
    where = f"thumos14 ({subset}, wtalc layout, {root})"
    kept, arrays, dim = _joint_features(root / FEATURES_FILE, chosen, order, skip_missing, where)
    videos = [make_video(entry, arrays[entry.name].shape[0], seconds_per_snippet) for entry in kept]
    ambiguous = {}
    for path in (folder / "Ambiguous_test.txt", root / "Ambiguous_test.txt"):
        if path.is_file():
            ambiguous = read_ambiguous(path)
            break

    def loader(video: Video) -> dict[str, np.ndarray]:
        return {"joint": arrays[video.name]}

    return FeatureDataset("thumos14", subset, classes, videos, loader, {"joint": dim},
                          streams=streams, ambiguous=ambiguous, version="thumos14")


def open_activitynet12(root: Path, subset: str, *, streams: str = "two", skip_missing: bool = False,
                       **_: object) -> FeatureDataset:
    """ActivityNet1.2 in the W-TALC layout (see the module docstring)."""
    root = Path(root)
    folder = root / ANET12_ANNOTATIONS_DIR
    classes, entries = _read_annotations(folder)
    order = {name: i for i, name in enumerate(entries)}
    native = ANET12_SUBSETS[subset]
    chosen = [entry for entry in entries.values() if entry.subset.lower() == native]
    where = f"activitynet1.2 ({subset}, wtalc layout, {root})"
    if not chosen:
        raise ValueError(f"{folder / 'subset.npy'}: no video of the {native!r} subset")
    kept, arrays, dim = _joint_features(root / ANET12_FEATURES_FILE, chosen, order, skip_missing, where)
    videos = []
    for entry in kept:
        if entry.duration is None or entry.duration <= 0:
            raise ValueError(f"{folder / 'duration.npy'}: video {entry.name} has no positive duration, which "
                             "ActivityNet1.2 needs (snippet length = duration / T)")
        length = arrays[entry.name].shape[0]
        videos.append(make_video(entry, length, entry.duration / length))

    def loader(video: Video) -> dict[str, np.ndarray]:
        return {"joint": arrays[video.name]}

    return FeatureDataset("activitynet1.2", subset, classes, videos, loader, {"joint": dim},
                          streams=streams, ambiguous={}, version="activitynet1.2")
