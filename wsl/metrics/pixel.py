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

With numba installed (the ``[image]`` extra, see :mod:`wsl.utils.jit`), one compiled pass over the pixels
checks the inputs and counts both histograms; batches of maps (``update`` with [N, H, W]) of at least
:data:`PARALLEL_PIXELS` pixels are split between numba's threads (``NUMBA_NUM_THREADS=1`` keeps one).
Otherwise OpenCV bins the scores, else numpy does; all paths give the same counts and the same errors.
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

import numpy as np

from wsl.utils.jit import numba_available

__all__ = ["PixelPrecisionRecall", "pxap", "piou", "compose_mask", "curve_thresholds", "FOREGROUND", "IGNORE",
           "PARALLEL_PIXELS"]

FOREGROUND = 1
IGNORE = 255
PARALLEL_PIXELS = 1 << 21
"""Pixels of one ``update`` from which the compiled kernel splits the work between numba's threads."""


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
    if scores.size:
        low, high = scores.min(), scores.max()  # NaN propagates to both
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ValueError("score maps hold NaN or infinite values")
        if low < 0 or high > 1:
            raise ValueError(f"score maps must lie in [0, 1], got values in [{low}, {high}]")
    return scores, labels


_BAD_MASK = "masks may only hold 0 (background), 1 (foreground) and 255 (ignored)"


_PARALLEL_LOCK = threading.Lock()  # one parallel launch at a time (numba's workqueue layer is not thread-safe)


def _kernel_parameters(edges: np.ndarray, interval: float) -> tuple[float, float, int, int] | None:
    """(inverse, delta, last, shift) of the compiled kernel for these edges, or None where it would not be exact.

    ``last`` is the bin of a score of 1 (the number of thresholds), ``1 << shift`` the key stride (> last).
    Exact when the thresholds are ``i * delta`` in float64, ``last * delta >= 1`` (so no score below 1
    passes the last threshold) and ``int(score * inverse)`` is every score's bin or the one below: checked
    on the smallest and the largest score of each bin (the guess is monotonic in the score), for
    ``inverse`` from ``1 / delta`` down by at most 64 ulps.
    """
    delta = float(interval)
    thresholds = edges[:-3]
    count = len(thresholds)
    if count == 0 or not np.array_equal(thresholds, np.arange(count) * delta) or not count * delta >= 1.0:
        return None
    if not (np.all(np.diff(edges) > 0) and edges[count] == 1.0) or count > 1 << 20 or 1.0 / delta >= 2**30:
        return None  # (int32 keys and guesses; at most a million thresholds)
    smallest = thresholds
    largest = np.nextafter(edges[1 : count + 1], -np.inf)
    bins = np.arange(count)
    inverse = 1.0 / delta
    for _ in range(64):
        low, high = np.floor(smallest * inverse) - bins, np.floor(largest * inverse) - bins
        if low.min() >= -1 and high.max() <= 0:  # (and so low <= high <= 0, -1 <= low <= high)
            return inverse, delta, count, int(count).bit_length()
        inverse = float(np.nextafter(inverse, 0.0))
    return None


def _opencv():
    """OpenCV when installed (the ``[image]`` extra): it bins the scores with SIMD instructions."""
    try:
        import cv2
    except ImportError:  # the core package works without it
        return None
    return cv2


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
        # OpenCV binning tables: the edges around each guessed bin, and the histogram offset of each label
        self._lower_edge = np.full(max(256, len(self.edges)), np.inf)
        self._lower_edge[: len(self.edges)] = self.edges
        self._upper_edge = np.full(max(256, len(self.edges)), np.inf)
        self._upper_edge[: len(self.edges) - 1] = self.edges[1:]
        self._label_code = np.full(256, 255, dtype=np.uint8)
        self._label_code[0], self._label_code[FOREGROUND], self._label_code[IGNORE] = 0, 128, 127
        self._rounding: str | None = None
        self._kernel = _kernel_parameters(self.edges, self.curve_interval)
        self.reset()

    def reset(self) -> None:
        bins = len(self.edges) - 1
        self.foreground = np.zeros(bins, dtype=np.int64)
        self.background = np.zeros(bins, dtype=np.int64)

    def _bin_index(self, scores: np.ndarray) -> np.ndarray:
        """Bin of each score (float64 array): the last edge ``<=`` it, exactly as ``np.histogram``'s edges.

        ``floor(score / interval)`` is within one of the bin; one comparison with each neighbouring edge
        corrects it, so the bins are those of a binary search, at a fraction of its cost.
        """
        guess = np.minimum((scores * (1.0 / self.curve_interval)).astype(np.intp), len(self.edges) - 2)
        guess -= scores < self.edges[guess]
        guess += scores >= self.edges[guess + 1]
        return guess

    def _rounding_fix(self, cv2) -> str | None:
        """How to correct OpenCV's rounded ``score / interval`` into the bin, decided once per interval.

        ``"lower"``: the guess is the bin or one above (one comparison fixes it); ``"both"``: one off either
        way (two comparisons); None: further off (the numpy path is used). Rounding is monotonic, so the
        smallest and the largest score of every bin decide it.
        """
        if self._rounding is None:
            bins = int(np.count_nonzero(self.edges <= 1.0))  # the bins a score in [0, 1] can fall into
            smallest = self.edges[:bins]
            largest = np.minimum(np.nextafter(self.edges[1 : bins + 1], -np.inf), 1.0)
            both = np.stack([smallest, largest])
            offset = cv2.convertScaleAbs(both, alpha=1.0 / self.curve_interval).astype(np.int64) - np.arange(bins)
            if ((offset >= 0) & (offset <= 1)).all():
                self._rounding = "lower"
            elif (np.abs(offset) <= 1).all():
                self._rounding = "both"
            else:
                self._rounding = "none"
        return None if self._rounding == "none" else self._rounding

    def _counts_opencv(self, cv2, scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Foreground and background bin counts with OpenCV (uint8 masks, at most 127 bins), else None.

        One uint8 histogram holds everything: background bins from 0, foreground bins from 128, ignored
        pixels in 127 and pixels of any other label in 255.
        """
        bins = len(self.edges) - 1
        if labels.dtype != np.uint8 or bins > 127 or scores.size == 0 or scores.size >= 1 << 24:
            return None  # (calcHist counts in float32, exact below 2**24)
        scores = np.ascontiguousarray(scores, dtype=np.float64).reshape(-1, scores.shape[-1])
        labels = np.ascontiguousarray(labels).reshape(scores.shape)
        fix = self._rounding_fix(cv2)
        if fix is None:
            return None
        guess = cv2.convertScaleAbs(scores, alpha=1.0 / self.curve_interval)
        lower = cv2.compare(scores, cv2.LUT(guess, self._lower_edge), cv2.CMP_LT)
        index = cv2.subtract(guess, cv2.bitwise_and(lower, 1))
        if fix == "both":
            upper = cv2.compare(scores, cv2.LUT(guess, self._upper_edge), cv2.CMP_GE)
            index = cv2.add(index, cv2.bitwise_and(upper, 1))
        keys = cv2.bitwise_or(index, cv2.LUT(labels, self._label_code))
        counts = cv2.calcHist([keys], [0], None, [256], [0, 256]).reshape(-1).astype(np.int64)
        if counts[255]:
            raise ValueError(_BAD_MASK)
        return counts[128 : 128 + bins], counts[:bins]

    def _update_numba(self, score_maps: Any, masks: Any) -> bool:
        """Adds the counts with the compiled kernel; False (nothing added) where it does not apply.

        Applies to float32 / float64 maps with integer or boolean masks of the same shape (2-D or 3-D).
        Bad scores or labels raise the numpy path's errors (that path's checks are rerun to word them).
        """
        scores, labels = score_maps, masks
        if type(scores) is not np.ndarray and hasattr(scores, "detach"):
            scores = scores.detach().cpu().numpy()
        if type(labels) is not np.ndarray and hasattr(labels, "detach"):
            labels = labels.detach().cpu().numpy()
        if not (isinstance(scores, np.ndarray) and isinstance(labels, np.ndarray)):
            return False
        if scores.dtype.char not in "fd" or scores.shape != labels.shape or scores.ndim not in (2, 3):
            return False
        if labels.dtype.char == "B":  # uint8: as it is
            pass
        elif labels.dtype == np.bool_:
            labels = labels.view(np.uint8)
        elif labels.dtype.kind in "iu" and labels.dtype != np.uint8:  # the kernel reads uint8: 2 marks bad labels
            valid = (labels == 0) | (labels == FOREGROUND) | (labels == IGNORE)
            labels = np.where(valid, labels, 2).astype(np.uint8)
        else:
            return False
        from wsl.metrics.pixel_kernels import update_parallel, update_serial

        flat_scores = np.ascontiguousarray(scores).reshape(-1)
        flat_labels = np.ascontiguousarray(labels).reshape(-1)
        parts = 1
        if flat_scores.size >= PARALLEL_PIXELS:
            import numba

            parts = int(numba.get_num_threads())
        if parts > 1:
            with _PARALLEL_LOCK:
                error = update_parallel(flat_scores, flat_labels, *self._kernel, parts, self.foreground,
                                         self.background)
        else:
            error = update_serial(flat_scores, flat_labels, *self._kernel, self.foreground, self.background)
        if error:  # nothing was added
            _as_maps(score_maps, masks)  # raises the error about the scores, if any
            raise ValueError(_BAD_MASK)
        return True

    def update(self, score_maps: Any, masks: Any) -> PixelPrecisionRecall:
        """Add score maps (ndarray or Tensor [N, H, W] or [H, W], in [0, 1]) and their masks (same shape).

        With numba, a whole batch is one compiled call (split between numba's threads from
        :data:`PARALLEL_PIXELS` pixels): passing [N, H, W] batches is faster than one map per call.
        A bad score or label raises ``ValueError`` and adds nothing.
        """
        if self._kernel is not None and numba_available() and self._update_numba(score_maps, masks):
            return self
        scores, labels = _as_maps(score_maps, masks)
        cv2 = _opencv()
        counts = None if cv2 is None else self._counts_opencv(cv2, scores, labels)
        if counts is None:
            if not np.isin(labels, (0, FOREGROUND, IGNORE)).all():
                raise ValueError(_BAD_MASK)
            bins = len(self.edges) - 1
            index = self._bin_index(scores.astype(np.float64, copy=False).reshape(-1))
            role = labels.reshape(-1)
            counts = (np.bincount(index[role == FOREGROUND], minlength=bins),
                      np.bincount(index[role == 0], minlength=bins))
        self.foreground += counts[0]
        self.background += counts[1]
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
