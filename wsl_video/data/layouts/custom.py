"""The ``custom`` dataset: a user's own videos, their features as ``wsl-video extract`` writes them, and
an ActivityNet-style ``annotations.json``::

    <root>/annotations.json                  {"database": {<stem>: {"subset": "train" | "test", "duration",
                                                                    "annotations": [{"label", "segment"}]}}}
    <root>/manifest.json                     extractor settings and, per video, num_snippets and
                                             seconds_per_snippet (see :mod:`wsl_video.data.manifest`)
    <root>/features/rgb/<stem>.npy           (T, D_rgb) float32
    <root>/features/flow/<stem>.npy          (T, D_flow) float32; absent for RGB-only backbones

The classes are the sorted labels of ``annotations.json`` (both subsets); every label is a class (there
are no ``Ambiguous`` segments). Only the opened subset's entries are parsed. Snippet times come from the
manifest, and each feature file must hold exactly the manifest's ``num_snippets`` rows. Feature files
without an annotation entry are ignored.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from wsl_video.data.annotations import Entry, parse_database
from wsl_video.data.files import read_json
from wsl_video.data.layouts.common import attach_feature_files
from wsl_video.data.manifest import MANIFEST_FILE, read_manifest
from wsl_video.data.records import FeatureDataset

__all__ = ["ANNOTATION_FILE", "FEATURES_DIR", "SUBSETS", "open_custom"]

ANNOTATION_FILE = "annotations.json"
FEATURES_DIR = "features"
SUBSETS = ("train", "test")
# Subset names of other annotation files, and what to write instead.
_HINTS = {"training": "write 'train' instead", "testing": "write 'test' instead",
          "validation": "it is the training split of THUMOS14 but the test split of ActivityNet: write 'train' "
                        "or 'test'"}
_HINTS["val"] = _HINTS["validation"]


def _check_subset(gt_path: Path, name: str, record: object) -> None:
    subset = record.get("subset") if isinstance(record, dict) else None
    if subset in SUBSETS:
        return
    if subset is None or subset == "":
        raise ValueError(f"{gt_path}: video {name} has no subset; the subset must be 'train' or 'test'")
    text = str(subset)
    hint = f"write {text.lower()!r} instead" if text.lower() in SUBSETS else _HINTS.get(text.lower())
    raise ValueError(f"{gt_path}: video {name} has subset {subset!r}; the subset must be 'train' or 'test'"
                     + (f" ({hint})" if hint else ""))


def open_custom(root: Path, subset: str, *, streams: str = "two", skip_missing: bool = False,
                **_: object) -> FeatureDataset:
    """Open the ``train`` or ``test`` videos of a ``custom`` dataset folder (layout above).

    Raises:
        FileNotFoundError: ``root``, ``annotations.json``, ``manifest.json`` or (unless ``skip_missing``)
            a feature file of an annotated video is missing.
        ValueError: corrupt JSON, a subset other than ``train``/``test``, an annotated video with
            features but no manifest record, a feature file whose row count differs from the manifest's
            ``num_snippets``, or an empty subset; every message names the file and the video.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data folder not found")
    gt_path = root / ANNOTATION_FILE
    data = read_json(gt_path)
    if not isinstance(data, dict) or not isinstance(data.get("database"), dict):
        raise ValueError(f"{gt_path}: not an ActivityNet-style annotation file (no 'database' object)")
    for name, record in data["database"].items():
        _check_subset(gt_path, str(name), record)
    # the class list is the labels of both subsets; only this subset's entries are parsed
    classes = sorted({str(item["label"]) for record in data["database"].values()
                      for item in record.get("annotations") or [] if isinstance(item, dict) and "label" in item})
    entries = parse_database(data, gt_path, ambiguous_label=None,
                             keep=lambda name, record: record.get("subset") == subset)
    if not classes:
        raise ValueError(f"{gt_path}: no annotated action in any video, so no class to learn")
    manifest = read_manifest(root / MANIFEST_FILE)
    chosen = list(entries.values())
    where = f"custom ({subset}, {root})"
    if not chosen:
        raise ValueError(f"{gt_path}: no video has subset {subset!r}")
    folder = root / FEATURES_DIR

    def paths_of(entry: Entry) -> dict[str, Path]:
        return {stream: folder / stream / f"{entry.name}.npy" for stream in manifest.streams}

    def check_file(entry: Entry, stream: str, path: Path, length: int, dim: int) -> None:
        if entry.name not in manifest:
            raise ValueError(f"{manifest.path}: video {entry.name} is not in the manifest, but {path} exists "
                             "(were its features written by another extraction?)")
        expected = manifest.video(entry.name).num_snippets
        if length != expected:
            raise ValueError(f"{path}: {stream} features of video {entry.name} have {length} snippets, "
                             f"but {manifest.path} gives num_snippets {expected}")
        if stream in manifest.feature_dims and dim != manifest.feature_dims[stream]:
            raise ValueError(f"{path}: {stream} features of video {entry.name} have {dim} dims, "
                             f"but {manifest.path} gives feature_dims {manifest.feature_dims[stream]}")

    videos, dims, loader = attach_feature_files(
        chosen, paths_of, lambda entry, t: manifest.video(entry.name).seconds_per_snippet,
        skip_missing=skip_missing, where=where, check_file=check_file,
    )
    if not videos:
        raise ValueError(f"{where}: the dataset is empty")
    videos = [video if video.duration is not None
              else dataclasses.replace(video, duration=manifest.video(video.name).duration)
              for video in videos]
    version = data.get("version") if isinstance(data.get("version"), str) else "custom"
    return FeatureDataset("custom", subset, classes, videos, loader, dims, streams=streams,
                          version=version, extractor=manifest.extractor)
