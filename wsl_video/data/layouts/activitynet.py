"""ActivityNet1.3 layout: the official ``activity_net.v1-3.min.json`` and one feature file per video.

Feature files (``<id>`` is the key of the annotation database, e.g. ``-0RbVDHWovM``)::

    <root>/activity_net.v1-3.min.json
    <root>/features/v_<id>.npy                                   joint (T, 2D), RGB then flow, or
    <root>/features/rgb/v_<id>.npy, <root>/features/flow/v_<id>.npy   (T, D) each

``<id>.npy`` without the ``v_`` prefix is accepted too. ``T`` may be anything (features are often resized
to a fixed length), so each video's snippet length is ``duration / T``. ``train`` is the ``training``
subset, ``test`` the ``validation`` subset.
"""

from __future__ import annotations

from pathlib import Path

from wsl_video.data.annotations import Entry, parse_database
from wsl_video.data.files import read_json
from wsl_video.data.layouts.common import attach_feature_files
from wsl_video.data.records import FeatureDataset

__all__ = ["open_activitynet", "ANNOTATION_FILE", "SUBSETS"]

ANNOTATION_FILE = "activity_net.v1-3.min.json"
SUBSETS = {"train": "training", "test": "validation"}


def _feature_path(folder: Path, name: str) -> Path:
    prefixed = folder / f"v_{name}.npy"
    if prefixed.is_file() or name.startswith("v_"):
        return prefixed
    plain = folder / f"{name}.npy"
    return plain if plain.is_file() else prefixed


def _labels(data, path: Path) -> set[str]:
    """Class names of an ActivityNet annotation file: the leaves of its ``taxonomy`` when it has one (the
    official file does; no video's annotations are read), else every label the annotations use."""
    if not isinstance(data, dict) or not isinstance(data.get("database"), dict):
        raise ValueError(f"{path}: not an ActivityNet-style annotation file (no 'database' object)")
    taxonomy = data.get("taxonomy")
    if isinstance(taxonomy, list) and taxonomy and all(isinstance(node, dict) for node in taxonomy):
        parents = {str(node.get("parentName")) for node in taxonomy}
        leaves = {str(node["nodeName"]) for node in taxonomy if "nodeName" in node} - parents
        if leaves:
            return leaves
    labels = set()
    for record in data["database"].values():
        for item in (record.get("annotations") or []) if isinstance(record, dict) else []:
            if isinstance(item, dict) and "label" in item:
                labels.add(str(item["label"]))
    labels.discard("Ambiguous")
    return labels


def open_activitynet(root: Path, subset: str, *, streams: str = "two", skip_missing: bool = False,
                     **_: object) -> FeatureDataset:
    root = Path(root)
    gt_path = root / ANNOTATION_FILE
    data = read_json(gt_path)
    native = SUBSETS[subset]
    # the class list is the same for both subsets; only this subset's entries are parsed
    classes = sorted(_labels(data, gt_path))
    entries = parse_database(data, gt_path, keep=lambda name, record: str(record.get("subset", "")) == native)
    chosen = list(entries.values())
    for entry in chosen:
        if entry.duration is None:
            raise ValueError(f"{gt_path}: video {entry.name} has no duration")
    features = root / "features"
    two_streams = (features / "rgb").is_dir() or (features / "flow").is_dir()

    def paths_of(entry: Entry) -> dict[str, Path]:
        if two_streams:
            return {stream: _feature_path(features / stream, entry.name) for stream in ("rgb", "flow")}
        return {"joint": _feature_path(features, entry.name)}

    where = f"activitynet ({subset}, {root})"
    videos, dims, loader = attach_feature_files(
        chosen, paths_of, lambda entry, t: entry.duration / t, skip_missing=skip_missing, where=where
    )
    if not videos:
        raise ValueError(f"{where}: the dataset is empty")
    version = str(data.get("version", "VERSION 1.3")) if isinstance(data, dict) else "VERSION 1.3"
    return FeatureDataset("activitynet", subset, classes, videos, loader, dims,
                          streams=streams, version=version)
