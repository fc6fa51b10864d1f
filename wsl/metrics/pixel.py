"""Pixel-level WSOL metrics on ground-truth masks: PxAP and PIoU (Choe et al., CVPR 2020 / TPAMI 2022).

Score maps in [0, 1] are compared with masks whose pixels are foreground (1), background (0) or
ignored (255: the ignore region is the ignore box minus the foreground, see :func:`compose_mask`).
Scores are binned, foreground and background separately, with the left edges
``0, interval, 2 interval, ..., < 1`` followed by 1, 2 and 3 (so a score of exactly 1 has a bin of its own),
and accumulated over all images; each bin edge read from the top is a threshold ``tau``:

* ``pxap``: the area under the pixel precision-recall curve, ``sum_i precision_i (recall_i - recall_{i-1})``
  over the thresholds in decreasing order, thresholds that select no pixel left out;
* ``piou``: the best pixel IoU ``TP / (TP + FP + FN)`` over the thresholds, and ``piou_threshold`` its ``tau``.

Both are fractions in [0, 1] (printing alone scales to percent). The binning reproduces the reference
evaluator's histograms exactly, so both numbers agree with it to rounding for any input.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["PixelPrecisionRecall", "pxap", "piou", "compose_mask", "curve_thresholds", "FOREGROUND", "IGNORE"]

FOREGROUND = 1
IGNORE = 255


def curve_thresholds(interval: float = 0.01) -> np.ndarray:
    """The score-map thresholds ``0, interval, 2 interval, ...`` below 1 (float64)."""
    if not (isinstance(interval, (int, float)) and 0 < interval < 1):
        raise ValueError(f"curve interval must lie in (0, 1), got {interval!r}")
    return np.arange(0, 1, interval)


def compose_mask(foreground: Sequence[np.ndarray], ignore_box: np.ndarray | None = None) -> np.ndarray:
    """One evaluation mask from the instance masks of an image and its ignore-box mask.

    Args:
        foreground: boolean masks (each ndarray[H, W]) of the instances; their union is the foreground.
        ignore_box: boolean ndarray[H, W] of the region to leave out, or None.

    Returns:
        ndarray[H, W] uint8: 1 foreground, 255 ignored (ignore box minus foreground), 0 background.
    """
    if len(foreground) == 0:
        raise ValueError("an evaluation mask needs at least one foreground mask")
    masks = [np.asarray(mask, dtype=bool) for mask in foreground]
    shape = masks[0].shape
    if len(shape) != 2 or any(mask.shape != shape for mask in masks):
        raise ValueError(f"foreground masks must share one 2-D shape, got {[mask.shape for mask in masks]}")
    union = np.logical_or.reduce(masks)
    out = union.astype(np.uint8)
    if ignore_box is not None:
        ignore_box = np.asarray(ignore_box, dtype=bool)
        if ignore_box.shape != shape:
            raise ValueError(f"ignore mask has shape {ignore_box.shape}, foreground {shape}")
        out[ignore_box & ~union] = IGNORE
    return out


def _as_maps(score_maps: Any, masks: Any) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(score_maps, "detach"):
        score_maps = score_maps.detach().cpu().numpy()
    if hasattr(masks, "detach"):
        masks = masks.detach().cpu().numpy()
    scores, labels = np.asarray(score_maps), np.asarray(masks)
    if scores.ndim == 2:
        scores = scores[None]
    if labels.ndim == 2:
        labels = labels[None]
    if scores.ndim != 3 or scores.shape != labels.shape:
        raise ValueError(f"score maps (N, H, W) and masks must have one shape, got {scores.shape} and {labels.shape}")
    if not np.issubdtype(scores.dtype, np.floating):
        raise ValueError(f"score maps must be floating point, got {scores.dtype}")
    if not np.isfinite(scores).all():
        raise ValueError("score maps hold NaN or infinite values")
    if scores.size and (scores.min() < 0 or scores.max() > 1):
        raise ValueError(f"score maps must lie in [0, 1], got values in [{scores.min()}, {scores.max()}]")
    if not np.isin(labels, (0, FOREGROUND, IGNORE)).all():
        raise ValueError("masks may only hold 0 (background), 1 (foreground) and 255 (ignored)")
    return scores, labels


class PixelPrecisionRecall:
    """Accumulates PxAP / PIoU histograms over batches of score maps; :meth:`compute` gives the metrics.

    Args:
        curve_interval: distance between consecutive score thresholds (0.01 as in the benchmark's
            evaluation command; 0.001 is finer and slower to print, not to compute).
    """

    def __init__(self, curve_interval: float = 0.01) -> None:
        thresholds = curve_thresholds(curve_interval)
        self.curve_interval = float(curve_interval)
        self.edges = np.append(thresholds, [1.0, 2.0, 3.0])
        self.reset()

    def reset(self) -> None:
        bins = len(self.edges) - 1
        self.foreground = np.zeros(bins, dtype=np.int64)
        self.background = np.zeros(bins, dtype=np.int64)

    def _histogram(self, values: np.ndarray) -> np.ndarray:
        index = np.searchsorted(self.edges, values.astype(np.float64, copy=False), side="right") - 1
        return np.bincount(index, minlength=len(self.edges) - 1)

    def update(self, score_maps: Any, masks: Any) -> PixelPrecisionRecall:
        """Add score maps (ndarray or Tensor [N, H, W] or [H, W], in [0, 1]) and their masks (same shape)."""
        scores, labels = _as_maps(score_maps, masks)
        self.foreground += self._histogram(scores[labels == FOREGROUND])
        self.background += self._histogram(scores[labels == 0])
        return self

    def curves(self) -> dict[str, np.ndarray]:
        """``thresholds`` (decreasing), ``tp``, ``fp``, ``fn`` counts at each, from "nothing" to "everything"."""
        tp = self.foreground[::-1].cumsum()
        fp = self.background[::-1].cumsum()
        fn = self.foreground.sum() - tp
        return {"thresholds": self.edges[-2::-1], "tp": tp, "fp": fp, "fn": fn}

    def compute(self) -> dict[str, float]:
        """``pxap``, ``piou`` and ``piou_threshold``.

        Raises:
            ValueError: no foreground pixel was seen, or no threshold selects any pixel.
        """
        curves = self.curves()
        tp, fp, fn = (curves[key].astype(np.float64) for key in ("tp", "fp", "fn"))
        if not (tp + fn > 0).any():
            raise ValueError("no foreground pixel in the evaluated masks")
        selected = tp + fp > 0
        if not selected.any():
            raise ValueError("no pixel is selected at any threshold")
        precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=selected)
        recall = tp / (tp + fn)
        area = float((precision[1:] * np.diff(recall))[selected[1:]].sum())
        iou = tp / (tp + fp + fn)
        best = int(np.argmax(iou))
        return {"pxap": area, "piou": float(iou[best]), "piou_threshold": float(curves["thresholds"][best])}


def pxap(score_maps: Any, masks: Any, curve_interval: float = 0.01) -> float:
    """PxAP of score maps (ndarray[N, H, W] in [0, 1]) against masks (ndarray[N, H, W] of 0 / 1 / 255)."""
    return PixelPrecisionRecall(curve_interval).update(score_maps, masks).compute()["pxap"]


def piou(score_maps: Any, masks: Any, curve_interval: float = 0.01) -> float:
    """PIoU: the best pixel IoU over the thresholds (same inputs as :func:`pxap`)."""
    return PixelPrecisionRecall(curve_interval).update(score_maps, masks).compute()["piou"]
