"""BaS-Net layout (THUMOS14): ``features/{train,test}/{rgb,flow}/<video>.npy`` (``(T, D)`` each),
``gt.json`` (ActivityNet style; segment times may be strings) and optional ``split_{train,test}.txt``.
"""

from __future__ import annotations

from pathlib import Path

from wsl_video.data.layouts.common import open_thumos_gt_json
from wsl_video.data.records import FeatureDataset

__all__ = ["open_bas"]


def open_bas(root: Path, subset: str, *, streams: str = "two", skip_missing: bool = False,
             test_videos: int = 212, seconds_per_snippet: float = 16 / 25) -> FeatureDataset:
    folder = Path(root) / "features" / subset
    return open_thumos_gt_json(
        root, subset, "bas", lambda entry: {s: folder / s / f"{entry.name}.npy" for s in ("rgb", "flow")},
        streams=streams, skip_missing=skip_missing, test_videos=test_videos,
        seconds_per_snippet=seconds_per_snippet,
    )
