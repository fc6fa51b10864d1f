"""ACM-Net layout (THUMOS14): ``{train,test}/<video>.npy`` joint ``(T, 2D)`` features (RGB then flow),
``gt.json`` (ActivityNet style, subsets ``validation``/``test``) and ``split_{train,test}.txt``.
"""

from __future__ import annotations

from pathlib import Path

from wsl_video.data.layouts.common import open_thumos_gt_json
from wsl_video.data.records import FeatureDataset

__all__ = ["open_acm"]


def open_acm(root: Path, subset: str, *, streams: str = "two", skip_missing: bool = False,
             test_videos: int = 212, seconds_per_snippet: float = 16 / 25) -> FeatureDataset:
    root = Path(root)
    return open_thumos_gt_json(
        root, subset, "acm", lambda entry: {"joint": root / subset / f"{entry.name}.npy"},
        streams=streams, skip_missing=skip_missing, test_videos=test_videos,
        seconds_per_snippet=seconds_per_snippet,
    )
