"""Bounding boxes from 2-D localization maps (CAM thresholding).

The conventions follow the WSOL evaluation protocol of Choe et al. (CVPR 2020, "Evaluating
Weakly Supervised Object Localization Methods Right"), so that scores are comparable with
published MaxBoxAcc / MaxBoxAccV2 numbers:

* the map (float in ``[0, 1]``) is quantised to ``uint8`` as ``(heatmap * 255).astype(uint8)``;
* a pixel is foreground when its quantised value is strictly above ``int(threshold * max)``,
  where ``max`` is the largest quantised value of the map;
* contours are found with OpenCV (``RETR_TREE``, ``CHAIN_APPROX_SIMPLE``); the box of a contour
  is ``(x, y, x + w, y + h)`` from ``cv2.boundingRect`` with ``x1``/``y1`` clipped to ``W - 1``/``H - 1``;
* without any contour the box is ``[0, 0, 0, 0]``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["boxes_from_map", "boxes_from_map_thresholds", "quantize_map", "threshold_cutoffs"]

_EMPTY_BOX = np.zeros((1, 4), dtype=np.int64)


def quantize_map(heatmap: np.ndarray, name: str = "heatmap") -> np.ndarray:
    """Check a localization map and quantise it to ``uint8``.

    Args:
        heatmap (ndarray[H, W]): float map with values in ``[0, 1]``.
        name: how the map is called in error messages (e.g. ``"cam of image 12"``).

    Returns:
        ndarray[H, W] uint8: ``(heatmap * 255)`` truncated.
    """
    heatmap = np.asarray(heatmap)
    if heatmap.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) array, got shape {heatmap.shape}")
    if heatmap.size == 0:
        raise ValueError(f"{name} is empty (shape {heatmap.shape})")
    if not np.issubdtype(heatmap.dtype, np.floating):
        heatmap = heatmap.astype(np.float64)
    if not np.isfinite(heatmap).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    low, high = float(heatmap.min()), float(heatmap.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(f"{name} must have values in [0, 1], got range [{low:g}, {high:g}]")
    return (heatmap * 255).astype(np.uint8)


def threshold_cutoffs(quantized: np.ndarray, thresholds: Sequence[float] | np.ndarray) -> np.ndarray:
    """``int(threshold * max(quantized))`` for each threshold: ndarray[T] int64."""
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    return (thresholds * float(quantized.max())).astype(np.int64)


def _cv2():
    """OpenCV (contours), from the ``[image]`` extra."""
    from wsl.utils.extras import require

    return require("cv2", "image", "wsl.localization box estimation (OpenCV contours)")


def _contour_boxes(mask: np.ndarray, multi_contour: bool) -> np.ndarray:
    cv2 = _cv2()

    height, width = mask.shape
    contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
    if len(contours) == 0:
        return _EMPTY_BOX.copy()
    if not multi_contour:
        contours = [max(contours, key=cv2.contourArea)]
    boxes = np.empty((len(contours), 4), dtype=np.int64)
    for index, contour in enumerate(contours):
        x, y, w, h = cv2.boundingRect(contour)
        boxes[index] = (x, y, min(x + w, width - 1), min(y + h, height - 1))
    return boxes


def boxes_from_map(heatmap: np.ndarray, threshold: float, *, multi_contour: bool = False) -> np.ndarray:
    """Boxes around the regions of ``heatmap`` above ``threshold`` times its maximum.

    Args:
        heatmap (ndarray[H, W]): float map in ``[0, 1]``.
        threshold: relative threshold in ``[0, 1]``.
        multi_contour: return every contour's box instead of only the largest contour's.

    Returns:
        boxes (ndarray[N, 4] int64): ``(x0, y0, x1, y1)``; ``[[0, 0, 0, 0]]`` when nothing is above threshold.
    """
    return boxes_from_map_thresholds(heatmap, [threshold], multi_contour=multi_contour)[0]


def boxes_from_map_thresholds(
    heatmap: np.ndarray,
    thresholds: Sequence[float] | np.ndarray,
    *,
    multi_contour: bool = False,
    name: str = "heatmap",
) -> list[np.ndarray]:
    """:func:`boxes_from_map` at many thresholds (one check and quantisation of the map).

    Thresholds that give the same integer cut-off share one binarisation and contour search.

    Returns:
        list of T arrays (ndarray[N_t, 4] int64), one per threshold.
    """
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if not np.isfinite(thresholds).all():
        raise ValueError(f"thresholds must be finite, got {thresholds.tolist()}")
    cv2 = _cv2()

    quantized = quantize_map(heatmap, name)
    cutoffs = threshold_cutoffs(quantized, thresholds)
    unique_cutoffs, inverse = np.unique(cutoffs, return_inverse=True)
    unique_boxes = []
    for cutoff in unique_cutoffs.tolist():
        if cutoff < 0:
            mask = np.full_like(quantized, 255)
        elif cutoff >= 255:
            mask = np.zeros_like(quantized)
        else:  # strictly above the cut-off, OpenCV's SIMD binarisation
            mask = cv2.threshold(quantized, cutoff, 255, cv2.THRESH_BINARY)[1]
        unique_boxes.append(_contour_boxes(mask, multi_contour))
    return [unique_boxes[index] for index in inverse.reshape(-1)]
