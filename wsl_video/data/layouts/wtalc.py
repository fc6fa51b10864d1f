"""W-TALC layout (THUMOS14 reduced): ``Thumos14reduced-I3D-JOINTFeatures.npy`` (a pickled object array of
``(T_i, 2D)`` joint features, RGB then flow, one per video in ``videoname.npy`` order) and
``Thumos14reduced-Annotations/`` (``videoname.npy``, ``subset.npy``, ``classlist.npy``, ``labels.npy``,
``segments.npy`` in seconds, ``duration.npy``, ``Ambiguous_test.txt``; names as byte strings).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsl_video.data.annotations import Entry, make_video, read_ambiguous, select_thumos
from wsl_video.data.files import read_npy, require_file
from wsl_video.data.layouts.common import missing_error, warn_skipped
from wsl_video.data.records import FeatureDataset, Video

__all__ = ["open_wtalc", "FEATURES_FILE", "ANNOTATIONS_DIR"]

FEATURES_FILE = "Thumos14reduced-I3D-JOINTFeatures.npy"
ANNOTATIONS_DIR = "Thumos14reduced-Annotations"


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


def open_wtalc(root: Path, subset: str, *, streams: str = "two", skip_missing: bool = False,
               test_videos: int = 212, seconds_per_snippet: float = 16 / 25) -> FeatureDataset:
    root = Path(root)
    folder = root / ANNOTATIONS_DIR
    classes, entries = _read_annotations(folder)
    order = {name: i for i, name in enumerate(entries)}
    chosen = select_thumos(entries, subset, test_videos)
    features_path = root / FEATURES_FILE
    require_file(features_path, "W-TALC feature file")
    features = read_npy(features_path, object_arrays=True)
    where = f"thumos14 ({subset}, wtalc layout, {root})"
    videos, skipped, arrays = [], [], {}
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
        videos.append(make_video(entry, array.shape[0], seconds_per_snippet))
        arrays[entry.name] = array
    warn_skipped(skipped, where)
    if not videos:
        raise ValueError(f"{where}: the dataset is empty")
    ambiguous = {}
    for path in (folder / "Ambiguous_test.txt", root / "Ambiguous_test.txt"):
        if path.is_file():
            ambiguous = read_ambiguous(path)
            break

    def loader(video: Video) -> dict[str, np.ndarray]:
        return {"joint": arrays[video.name]}

    return FeatureDataset("thumos14", subset, classes, videos, loader, {"joint": dim},
                          streams=streams, ambiguous=ambiguous, version="thumos14")
