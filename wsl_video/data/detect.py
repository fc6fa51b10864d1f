"""Recognising the on-disk layout of a feature folder."""

from __future__ import annotations

from pathlib import Path

from wsl_video.data.layouts.activitynet import ANNOTATION_FILE
from wsl_video.data.layouts.wtalc import ANET12_ANNOTATIONS_DIR, ANET12_FEATURES_FILE, ANNOTATIONS_DIR, FEATURES_FILE

__all__ = ["THUMOS14_LAYOUTS", "detect_layout"]

THUMOS14_LAYOUTS = ("wtalc", "bas", "acm")

_DESCRIPTION = {
    "wtalc": f"{FEATURES_FILE} and {ANNOTATIONS_DIR}/",
    "bas": "gt.json and features/{train,test}/{rgb,flow}/<video>.npy",
    "acm": "gt.json and {train,test}/<video>.npy",
    "activitynet": f"{ANNOTATION_FILE} and features/",
    "activitynet1.2": f"{ANET12_FEATURES_FILE} and {ANET12_ANNOTATIONS_DIR}/",
}


def _matches(root: Path, layout: str) -> bool:
    if layout == "wtalc":
        return (root / FEATURES_FILE).is_file() or (root / ANNOTATIONS_DIR).is_dir()
    if layout == "bas":
        return (root / "gt.json").is_file() and (root / "features").is_dir()
    if layout == "acm":
        return (root / "gt.json").is_file() and ((root / "train").is_dir() or (root / "test").is_dir())
    if layout == "activitynet1.2":
        return (root / ANET12_FEATURES_FILE).is_file() or (root / ANET12_ANNOTATIONS_DIR).is_dir()
    if layout == "activitynet":
        return (root / ANNOTATION_FILE).is_file()
    raise ValueError(f"unknown layout {layout!r}")


def detect_layout(root: str | Path, candidates: tuple[str, ...] = THUMOS14_LAYOUTS) -> str:
    """Name of the first layout in ``candidates`` whose files sit directly under ``root``.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: no candidate matches; the message lists what each layout expects.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data folder not found")
    for layout in candidates:
        if _matches(root, layout):
            return layout
    expected = "; ".join(f"{layout}: {_DESCRIPTION[layout]}" for layout in candidates)
    raise ValueError(f"{root}: no known feature layout found (expected {expected})")
