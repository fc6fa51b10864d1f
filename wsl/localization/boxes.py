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

from typing import NamedTuple, Sequence

import numpy as np

__all__ = [
    "boxes_from_map", "boxes_from_map_thresholds", "largest_contour_box", "level_boxes", "LevelBoxes", "quantize_map",
    "threshold_cutoffs", "union_boxes",
]

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


class LevelBoxes(NamedTuple):
    """Contour boxes of one map at several cut-offs (rows grouped by cut-off, in OpenCV's contour order).

    Attributes:
        boxes (ndarray[R, 4] int64): every contour's box; a cut-off without contour has one ``[0, 0, 0, 0]`` row.
        starts (ndarray[K] int64): index of the first row of each cut-off (rows ``starts[k]:starts[k + 1]``).
        largest (ndarray[K, 4] int64): box of the contour of largest ``cv2.contourArea`` (the first one on ties),
            ``[0, 0, 0, 0]`` without contour.
    """

    boxes: np.ndarray
    starts: np.ndarray
    largest: np.ndarray


def _contour_arrays(contours: list, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (ndarray[C, 4]) and twice the polygon areas (ndarray[C] int64) of OpenCV contours, vectorised.

    ``cv2.boundingRect`` is the extent of the points and ``cv2.contourArea`` the absolute shoelace area of
    the polygon through them; both are exact on integer points, so the results are OpenCV's.
    """
    lengths = np.fromiter(map(len, contours), dtype=np.int64, count=len(contours))
    points = np.concatenate(contours).reshape(-1, 2).astype(np.int64)
    starts = np.cumsum(lengths) - lengths
    x, y = points[:, 0], points[:, 1]
    boxes = np.stack([
        np.minimum.reduceat(x, starts),
        np.minimum.reduceat(y, starts),
        np.minimum(np.maximum.reduceat(x, starts) + 1, width - 1),
        np.minimum(np.maximum.reduceat(y, starts) + 1, height - 1),
    ], axis=1)
    following = np.arange(1, len(points) + 1)
    following[starts + lengths - 1] = starts
    cross = x * y[following] - x[following] * y
    return boxes, np.abs(np.add.reduceat(cross, starts))


def level_boxes(quantized: np.ndarray, cutoffs: np.ndarray, needed: np.ndarray | None = None) -> LevelBoxes:
    """Every contour's box and the largest contour's box of ``quantized > cutoff`` for each cut-off.

    One OpenCV contour search per distinct binary mask serves both MaxBoxAcc (largest contour) and
    MaxBoxAccV2 (all contours); the boxes, areas and largest contours of all cut-offs are then computed
    in a few vectorised steps instead of a Python loop over contours. Cut-offs whose masks are equal
    (no pixel between them) share one search.

    Args:
        quantized (ndarray[H, W] uint8): the map from :func:`quantize_map`.
        cutoffs (ndarray[K] int): integer cut-offs (:func:`threshold_cutoffs`); a pixel is inside when above.
        needed (ndarray[K] bool): cut-offs to search; the others are reported without contour.

    Returns:
        :class:`LevelBoxes`.
    """
    cv2 = _cv2()
    height, width = quantized.shape
    cutoffs = np.asarray(cutoffs, dtype=np.int64).reshape(-1)
    inside = quantized.size - np.cumsum(np.bincount(quantized.ravel(), minlength=256))  # pixels above 0..255
    crops = _pixel_extents(quantized, cutoffs)
    contours: list = []
    counts = np.zeros(len(cutoffs), dtype=np.int64)
    previous_inside, previous = -1, ()
    for index, cutoff in enumerate(cutoffs.tolist()):
        count = int(inside[cutoff]) if 0 <= cutoff < 256 else (quantized.size if cutoff < 0 else 0)
        if count == 0 or (needed is not None and not needed[index]):
            continue
        if count != previous_inside:  # nested masks of equal size are equal
            # only the box of the pixels above the cut-off is searched (contours do not depend on the
            # empty rows and columns around it; OpenCV pads the image with background)
            x0, y0, x1, y1 = crops[index].tolist()
            window = quantized[y0 : y1 + 1, x0 : x1 + 1]
            if cutoff < 0:
                mask = np.full_like(window, 255)
            else:  # strictly above the cut-off, OpenCV's SIMD binarisation
                mask = cv2.threshold(window, cutoff, 255, cv2.THRESH_BINARY)[1]
            previous = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0))[-2]
            previous_inside = count
        contours.extend(previous)
        counts[index] = len(previous)
    rows = np.maximum(counts, 1)
    starts = np.cumsum(rows) - rows
    boxes = np.zeros((int(rows.sum()), 4), dtype=np.int64)
    largest = np.zeros((len(cutoffs), 4), dtype=np.int64)
    if contours:
        contour_boxes, areas = _contour_arrays(contours, height, width)
        found = np.flatnonzero(counts)
        owner = np.repeat(found, counts[found])
        first_contour = np.cumsum(counts) - counts
        boxes[starts[owner] + np.arange(len(owner)) - first_contour[owner]] = contour_boxes
        segment = first_contour[found]
        biggest = np.maximum.reduceat(areas, segment)
        candidates = np.where(areas == np.repeat(biggest, counts[found]), np.arange(len(areas)), len(areas))
        largest[found] = contour_boxes[np.minimum.reduceat(candidates, segment)]
    return LevelBoxes(boxes, starts, largest)


def largest_contour_box(quantized: np.ndarray, cutoff: int) -> np.ndarray:
    """The box of the contour of largest ``cv2.contourArea`` (the first one on ties) of ``quantized > cutoff``.

    Returns:
        ndarray[4] int64; ``[0, 0, 0, 0]`` without contour.
    """
    cv2 = _cv2()
    height, width = quantized.shape
    mask = cv2.threshold(np.ascontiguousarray(quantized), int(cutoff), 255, cv2.THRESH_BINARY)[1]
    contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
    if not contours:
        return np.zeros(4, dtype=np.int64)
    x, y, w, h = cv2.boundingRect(max(contours, key=cv2.contourArea))
    return np.array([x, y, min(x + w, width - 1), min(y + h, height - 1)], dtype=np.int64)


def _pixel_extents(quantized: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
    """ndarray[K, 4] int64: ``(x0, y0, x1, y1)`` of the pixels above each cut-off; ``x1 < x0`` when there are none."""
    cutoffs = np.asarray(cutoffs, dtype=np.int64).reshape(-1, 1)
    columns = quantized.max(axis=0).astype(np.int64)[None, :] > cutoffs
    rows = quantized.max(axis=1).astype(np.int64)[None, :] > cutoffs
    extents = np.stack([
        columns.argmax(axis=1),
        rows.argmax(axis=1),
        quantized.shape[1] - 1 - columns[:, ::-1].argmax(axis=1),
        quantized.shape[0] - 1 - rows[:, ::-1].argmax(axis=1),
    ], axis=1)
    extents[~columns.any(axis=1)] = (0, 0, -1, -1)
    return extents


def union_boxes(quantized: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
    """For each cut-off, the box (same convention) of all pixels above it, which holds every contour's box.

    Returns:
        ndarray[K, 4] int64; ``[0, 0, -1, -1]`` where no pixel is above the cut-off.
    """
    height, width = quantized.shape
    extents = _pixel_extents(quantized, cutoffs)
    union = np.stack([extents[:, 0], extents[:, 1], np.minimum(extents[:, 2] + 1, width - 1),
                      np.minimum(extents[:, 3] + 1, height - 1)], axis=1)
    union[extents[:, 2] < extents[:, 0]] = (0, 0, -1, -1)
    return union


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

    Thresholds that give the same binary mask share one contour search (:func:`level_boxes`).

    Returns:
        list of T arrays (ndarray[N_t, 4] int64), one per threshold.
    """
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if not np.isfinite(thresholds).all():
        raise ValueError(f"thresholds must be finite, got {thresholds.tolist()}")
    quantized = quantize_map(heatmap, name)
    unique_cutoffs, inverse = np.unique(threshold_cutoffs(quantized, thresholds), return_inverse=True)
    found = level_boxes(quantized, unique_cutoffs)
    if multi_contour:
        ends = np.append(found.starts[1:], len(found.boxes))
        per_cutoff = [found.boxes[start:end] for start, end in zip(found.starts.tolist(), ends.tolist())]
    else:
        per_cutoff = [found.largest[index : index + 1] for index in range(len(unique_cutoffs))]
    return [per_cutoff[index].copy() for index in inverse.reshape(-1)]
