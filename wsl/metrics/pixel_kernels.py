"""The compiled PxAP/PIoU histogram kernels of :class:`wsl.metrics.PixelPrecisionRecall` (numba).

Imported only when numba runs (:func:`wsl.utils.jit.numba_available`), so that ``import wsl`` and the metrics
stay free of numba (and of what numba imports) otherwise.
"""

from __future__ import annotations

import numpy as np

from wsl.utils.jit import njit

try:  # the compiled kernel splits batches between threads with numba.prange
    from numba import prange
except ImportError:  # pragma: no cover - numba is optional (the [image] extra)
    prange = range

__all__ = ["update_serial", "update_parallel"]

# --------------------------------------------------------------------------- compiled kernel (numba)
# The kernel reads each score once and bins it arithmetically: the thresholds are exactly ``i * delta``
# (``np.arange(0, 1, delta)``, checked in ``_kernel_parameters``), ``int(score * inverse)``, with
# ``inverse`` ``1 / delta`` lowered by an ulp or a few, is the bin or the one below, and one comparison
# with the next threshold corrects it; a score of exactly 1 goes to the bin of the edge 1. Each
# pixel gets a key ``bin + (code << shift)`` (code 0 ignored, 1 background, 2 foreground, 3 any other
# label; ``1 << shift`` > the bins); the keys of a block of pixels are counted into 4 interleaved
# histograms (so that consecutive equal keys do not wait on each other's increments). The keys are
# unsigned and the histograms one flat array, so that indexing them needs no wraparound of negative
# indices: with the short blocks this made the kernel about a third faster than 8 two-dimensional lanes. Scores outside
# [0, 1] (NaN included) are clamped into it and counted as bad: the caller then raises the numpy path's
# error, as it does for any key of code 3.

_BLOCK = 512  # pixels whose keys are computed, then counted, at a time
_LANES = 4  # interleaved histograms
_FLUSH = 1 << 28  # pixels after which the uint32 histograms are added into the int64 counts


@njit(boundscheck=False, error_model="numpy")
def _block_keys(scores, labels, inverse, delta, last, shift, keys):  # pragma: no cover - compiled
    """Keys of a block of pixels into ``keys``; returns how many scores lie outside [0, 1] or are NaN."""
    bad = 0
    last_bin = np.int32(last)
    for i in range(scores.size):
        value = np.float64(scores[i])
        score = value if value >= 0.0 else 0.0  # NaN too
        score = score if score <= 1.0 else 1.0
        bad += np.int32(value != score)
        index = np.int32(score * inverse)  # floor (score >= 0): the bin or the one below
        index += np.int32(1) if score >= np.float64(index + 1) * delta else np.int32(0)
        index = last_bin if score >= 1.0 else index
        code = (np.int32(labels[i]) + np.int32(1)) & np.int32(255)  # 255 -> 0, 0 -> 1, 1 -> 2, others >= 3
        code = code if code < 3 else np.int32(3)
        keys[i] = np.uint32(index + (code << shift))
    return bad


@njit(boundscheck=False, error_model="numpy")
def _pixel_counts(scores, labels, inverse, delta, last, shift, out):  # pragma: no cover - compiled
    """Adds the key counts of flat ``scores`` / uint8 ``labels`` into ``out`` (int64[4 << shift]); returns the
    number of bad scores."""
    size = scores.size
    width = np.uint32(4 << shift)  # keys per histogram
    lanes = np.zeros(_LANES * (4 << shift), np.uint32)
    keys = np.zeros(_BLOCK, np.uint32)
    bad = 0
    pending = 0
    for start in range(0, size, _BLOCK):
        stop = min(size, start + _BLOCK)
        count = stop - start
        bad += _block_keys(scores[start:stop], labels[start:stop], inverse, delta, last, shift, keys)
        i = 0
        while i + 4 <= count:
            lanes[keys[i]] += 1
            lanes[width + keys[i + 1]] += 1
            lanes[np.uint32(2) * width + keys[i + 2]] += 1
            lanes[np.uint32(3) * width + keys[i + 3]] += 1
            i += 4
        while i < count:
            lanes[keys[i]] += 1
            i += 1
        pending += count
        if pending >= _FLUSH or stop == size:
            for lane in range(_LANES):
                for key in range(4 << shift):
                    out[key] += lanes[lane * (4 << shift) + key]
                    lanes[lane * (4 << shift) + key] = 0
            pending = 0
    return bad


@njit(boundscheck=False, parallel=True)
def _pixel_counts_parallel(scores, labels, inverse, delta, last, shift, outs):  # pragma: no cover - compiled
    """:func:`_pixel_counts` over ``len(outs)`` contiguous parts of the pixels, one per thread."""
    parts = outs.shape[0]
    size = scores.size
    step = (size + parts - 1) // parts
    bad = np.zeros(parts, np.int64)
    for part in prange(parts):
        start = min(size, part * step)
        stop = min(size, start + step)
        bad[part] = _pixel_counts(scores[start:stop], labels[start:stop], inverse, delta, last, shift, outs[part])
    return bad.sum()


@njit(boundscheck=False)
def _add_counts(out, last, shift, foreground, background):  # pragma: no cover - compiled
    """Adds the background and foreground keys of ``out`` into the histograms; False (nothing added) where
    a key has code 3 (a label other than 0, 1, 255)."""
    stride = 1 << shift
    for key in range(3 * stride, 4 * stride):
        if out[key]:
            return False
    for index in range(last + 1):  # (the bins from the edge 2 stay empty)
        background[index] += out[stride + index]
        foreground[index] += out[2 * stride + index]
    return True


@njit(boundscheck=False)
def update_serial(scores, labels, inverse, delta, last, shift, foreground, background):  # pragma: no cover
    """One thread: counts the pixels and adds them into the histograms; 0, or 1 (bad score), or 2 (bad label)."""
    out = np.zeros(4 << shift, np.int64)
    if _pixel_counts(scores, labels, inverse, delta, last, shift, out):
        return 1
    return 0 if _add_counts(out, last, shift, foreground, background) else 2


@njit(boundscheck=False)
def update_parallel(scores, labels, inverse, delta, last, shift, parts, foreground, background):  # pragma: no cover
    """:func:`update_serial` with the pixels split between ``parts`` threads."""
    outs = np.zeros((parts, 4 << shift), np.int64)
    if _pixel_counts_parallel(scores, labels, inverse, delta, last, shift, outs):
        return 1
    return 0 if _add_counts(outs.sum(axis=0), last, shift, foreground, background) else 2
