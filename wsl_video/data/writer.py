"""Writing a two-stream dataset to disk in the W-TALC, BaS-Net or ACM-Net THUMOS14 layout, or in the
``custom`` layout of ``wsl-video extract`` (atomic writes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from wsl.utils.io import atomic_write_json, atomic_write_text, atomic_writer
from wsl_video.data.layouts.wtalc import ANNOTATIONS_DIR, FEATURES_FILE
from wsl_video.data.records import FeatureDataset

__all__ = ["WRITABLE_LAYOUTS", "write_layout", "write_custom"]

WRITABLE_LAYOUTS = ("wtalc", "bas", "acm")
_NATIVE_SUBSET = {"wtalc": {"train": "validation", "test": "test"},
                  "acm": {"train": "validation", "test": "test"},
                  "bas": {"train": "train", "test": "test"}}


def _save_npy(path: Path, array: np.ndarray, allow_pickle: bool = False) -> None:
    with atomic_writer(path, "wb") as handle:
        np.save(handle, array, allow_pickle=allow_pickle)


def _object_array(items: list) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        array[i] = item
    return array


def _ground_truth(subsets: Mapping[str, FeatureDataset], layout: str, as_text: bool) -> dict:
    database = {}
    for subset, ds in subsets.items():
        for video in ds.videos:
            database[video.name] = {
                "subset": _NATIVE_SUBSET[layout][subset],
                "duration": video.duration,
                "annotations": [
                    {"segment": [repr(s), repr(e)] if as_text else [s, e], "label": label}
                    for s, e, label in video.annotations
                ],
            }
    return {"version": "thumos14", "database": database}


def _ambiguous_text(subsets: Mapping[str, FeatureDataset]) -> str:
    lines = [f"{video} {s!r} {e!r}" for ds in subsets.values()
             for video, segments in ds.ambiguous.items() for s, e in segments]
    return "\n".join(lines) + ("\n" if lines else "")


def write_layout(
    subsets: Mapping[str, FeatureDataset],
    out: str | Path,
    layout: str,
    progress: Callable | None = None,
) -> Path:
    """Write the ``train`` and/or ``test`` datasets of ``subsets`` under ``out`` in ``layout``.

    Args:
        subsets: ``{"train": ds, "test": ds}`` (either may be left out); two-stream datasets.
        out: destination folder (created).
        layout: ``wtalc``, ``bas`` or ``acm`` (see ``docs/video-data.md``).
        progress: optional wrapper for the per-video loop (e.g. ``tqdm``).

    Returns:
        the destination folder; ``open_dataset("thumos14", data_root=out)`` reads it back.
    """
    if layout not in WRITABLE_LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(WRITABLE_LAYOUTS)}")
    unknown = set(subsets) - {"train", "test"}
    if unknown or not subsets:
        raise ValueError(f"subsets must be 'train' and/or 'test', got {sorted(subsets)}")
    for ds in subsets.values():
        if ds.streams != ("rgb", "flow"):
            raise ValueError(f"{ds.name} ({ds.subset}): writing needs two-stream features, got {ds.streams}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wrap = progress or (lambda iterable, **_: iterable)
    items = [(subset, ds, i) for subset, ds in subsets.items() for i in range(len(ds))]
    joint_features = []
    for subset, ds, i in wrap(items, desc=f"writing {layout}", unit="video"):
        video = ds.videos[i]
        features = ds.features(i)
        if layout == "bas":
            for stream in ("rgb", "flow"):
                _save_npy(out / "features" / subset / stream / f"{video.name}.npy", features[stream])
            continue
        joint = np.concatenate([features["rgb"], features["flow"]], axis=1)
        if layout == "acm":
            _save_npy(out / subset / f"{video.name}.npy", joint)
        else:
            joint_features.append(joint)
    if layout == "wtalc":
        _write_wtalc_annotations(subsets, out, joint_features)
        return out
    atomic_write_json(out / "gt.json", _ground_truth(subsets, layout, as_text=layout == "bas"))
    for subset, ds in subsets.items():
        atomic_write_text(out / f"split_{subset}.txt", "".join(f"{v.name}\n" for v in ds.videos))
    atomic_write_text(out / "Ambiguous_test.txt", _ambiguous_text(subsets))
    return out


def _write_wtalc_annotations(subsets: Mapping[str, FeatureDataset], out: Path, joint: list) -> None:
    videos = [(subset, video) for subset, ds in subsets.items() for video in ds.videos]
    classes = next(iter(subsets.values())).classes
    folder = out / ANNOTATIONS_DIR
    _save_npy(out / FEATURES_FILE, _object_array(joint), allow_pickle=True)
    _save_npy(folder / "videoname.npy", np.array([v.name.encode() for _, v in videos]))
    _save_npy(folder / "subset.npy", np.array([_NATIVE_SUBSET["wtalc"][s].encode() for s, _ in videos]))
    _save_npy(folder / "classlist.npy", np.array([name.encode() for name in classes]))
    labels = [[label for _, _, label in v.annotations] for _, v in videos]
    segments = [[[start, end] for start, end, _ in v.annotations] for _, v in videos]
    _save_npy(folder / "labels.npy", _object_array(labels), allow_pickle=True)
    labels_all = [list(v.labels) for _, v in videos]
    _save_npy(folder / "labels_all.npy", _object_array(labels_all), allow_pickle=True)
    _save_npy(folder / "segments.npy", _object_array(segments), allow_pickle=True)
    durations = np.array([[np.nan if v.duration is None else v.duration] for _, v in videos])
    _save_npy(folder / "duration.npy", durations)
    atomic_write_text(folder / "Ambiguous_test.txt", _ambiguous_text(subsets))


def write_custom(
    subsets: Mapping[str, FeatureDataset],
    out: str | Path,
    extractor: Mapping[str, Any],
    progress: Callable | None = None,
) -> Path:
    """Write the ``train`` and/or ``test`` datasets of ``subsets`` under ``out`` in the ``custom`` layout.

    Writes ``features/<stream>/<video>.npy`` for the streams listed in ``extractor["streams"]``
    (``["rgb", "flow"]`` or ``["rgb"]``), ``annotations.json`` (subsets ``train`` / ``test``; Ambiguous
    segments left out, the custom layout has none) and, last, ``manifest.json`` with ``extractor`` as its
    record of settings. ``open_dataset("custom", data_root=out)`` reads it back.

    Args:
        subsets: ``{"train": ds, "test": ds}`` (either may be left out); two-stream datasets.
        out: destination folder (created).
        extractor: the manifest's ``extractor`` mapping (JSON values), e.g.
            :func:`wsl_video.data.sim.sim_extractor`.
        progress: optional wrapper for the per-video loop (e.g. ``tqdm``).
    """
    from wsl_video.data.layouts.custom import ANNOTATION_FILE, FEATURES_DIR
    from wsl_video.data.manifest import MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_STREAMS, MANIFEST_VERSION

    streams = tuple(extractor.get("streams") or ())
    if streams not in MANIFEST_STREAMS:
        raise ValueError(f"extractor streams must be ['rgb', 'flow'] or ['rgb'], got {extractor.get('streams')!r}")
    unknown = set(subsets) - {"train", "test"}
    if unknown or not subsets:
        raise ValueError(f"subsets must be 'train' and/or 'test', got {sorted(subsets)}")
    names = [video.name for ds in subsets.values() for video in ds.videos]
    if len(set(names)) != len(names):
        raise ValueError("a video name appears in both subsets")
    for ds in subsets.values():
        if ds.streams != ("rgb", "flow"):
            raise ValueError(f"{ds.name} ({ds.subset}): writing needs two-stream features, got {ds.streams}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wrap = progress or (lambda iterable, **_: iterable)
    items = [(subset, ds, i) for subset, ds in subsets.items() for i in range(len(ds))]
    database, videos = {}, {}
    snippet = extractor.get("snippet")
    for subset, ds, i in wrap(items, desc="writing custom", unit="video"):
        video = ds.videos[i]
        features = ds.features(i)
        for stream in streams:
            _save_npy(out / FEATURES_DIR / stream / f"{video.name}.npy", features[stream])
        database[video.name] = {
            "subset": subset,
            "duration": video.duration,
            "annotations": [{"label": label, "segment": [s, e]} for s, e, label in video.annotations],
        }
        videos[video.name] = {
            "source": None,
            "source_fps": None,
            "duration": video.duration,
            "frames": video.num_snippets * snippet if isinstance(snippet, int) else None,
            "num_snippets": video.num_snippets,
            "seconds_per_snippet": video.seconds_per_snippet,
        }
    version = next(iter(subsets.values())).version or "custom"
    atomic_write_json(out / ANNOTATION_FILE, {"version": version, "database": database})
    manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "extractor": dict(extractor),
                "videos": videos}
    atomic_write_json(out / MANIFEST_FILE, manifest)
    return out
