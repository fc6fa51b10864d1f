"""ACM-Net layout (THUMOS14): ``{train,test}/<video>.npy`` joint ``(T, 2D)`` features (RGB then flow),
``gt.json`` (ActivityNet style, subsets ``validation``/``test``) and ``split_{train,test}.txt``.
"""

from __future__ import annotations

from pathlib import Path

from wsl_video.data.annotations import THUMOS14_CLASSES, parse_database, select_thumos
from wsl_video.data.files import read_json, read_lines
from wsl_video.data.layouts.common import attach_feature_files, collect_ambiguous
from wsl_video.data.records import FeatureDataset

__all__ = ["open_acm"]


def open_acm(root: Path, subset: str, *, streams: str = "two", skip_missing: bool = False,
             test_videos: int = 212, seconds_per_snippet: float = 16 / 25) -> FeatureDataset:
    root = Path(root)
    gt_path = root / "gt.json"
    entries = parse_database(read_json(gt_path), gt_path, THUMOS14_CLASSES)
    split_path = root / f"split_{subset}.txt"
    split = read_lines(split_path) if split_path.is_file() else None
    chosen = select_thumos(entries, subset, test_videos, split, split_path)
    where = f"thumos14 ({subset}, acm layout, {root})"
    videos, dims, loader = attach_feature_files(
        chosen,
        lambda entry: {"joint": root / subset / f"{entry.name}.npy"},
        lambda entry, t: seconds_per_snippet,
        skip_missing=skip_missing,
        where=where,
    )
    if not videos:
        raise ValueError(f"{where}: the dataset is empty")
    ambiguous = collect_ambiguous(entries, root)
    return FeatureDataset("thumos14", subset, THUMOS14_CLASSES, videos, loader, dims,
                          streams=streams, ambiguous=ambiguous, version="thumos14")
