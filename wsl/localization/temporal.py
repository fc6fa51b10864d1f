"""Temporal localization from a class activation sequence (CAS).

Everything works on numpy arrays and all times are in seconds. A snippet ``t`` of a video whose
features are sampled every ``seconds_per_snippet`` seconds spans ``[t * sps, (t + 1) * sps]``.

The pipeline of weakly-supervised temporal action localization (MAAN, STPN, W-TALC):
threshold the CAS of each class at fractions of its maximum, take the connected components above
the threshold as proposals (:func:`segments_from_cas`), score them, suppress duplicates
(:func:`nms_1d` or :func:`soft_nms_1d`) and keep the best detections of the video
(:func:`detect_actions`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

__all__ = [
    "temporal_iou",
    "segments_from_cas",
    "nms_1d",
    "soft_nms_1d",
    "detect_actions",
    "rank_detections",
    "SCORINGS",
    "NMS_METHODS",
]

SCORINGS = ("mean", "outer_inner")
NMS_METHODS = ("hard", "soft", "none")
OUTER_MARGIN = 0.25  # outer region of the outer-inner score: 25% of the proposal length on each side


def _as_segments(array: np.ndarray, name: str, columns: int = 2) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.size == 0:
        return array.reshape(0, columns)
    if array.ndim != 2 or array.shape[1] != columns:
        raise ValueError(f"{name} must have shape (N, {columns}), got {tuple(array.shape)}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def temporal_iou(segments: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Temporal intersection over union of every segment with every target.

    Args:
        segments: ndarray[N, 2] of (start, end).
        targets: ndarray[M, 2] of (start, end).

    Returns:
        ndarray[N, M] in [0, 1]; a pair whose union has zero length (two identical points) scores 0.
    """
    segments = _as_segments(segments, "segments")
    targets = _as_segments(targets, "targets")
    start = np.maximum(segments[:, None, 0], targets[None, :, 0])
    end = np.minimum(segments[:, None, 1], targets[None, :, 1])
    intersection = np.clip(end - start, 0.0, None)
    lengths = segments[:, 1] - segments[:, 0], targets[:, 1] - targets[:, 0]
    union = lengths[0][:, None] + lengths[1][None, :] - intersection
    iou = np.zeros_like(intersection)
    np.divide(intersection, union, out=iou, where=union > 0)
    return iou


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last index (inclusive) of every run of True in a 1-D boolean mask."""
    padded = np.concatenate([[False], mask, [False]])
    changes = np.flatnonzero(padded[1:] != padded[:-1])
    return changes[0::2], changes[1::2] - 1


def segments_from_cas(
    cas: np.ndarray,
    thresholds: Sequence[float],
    seconds_per_snippet: float,
    *,
    scoring: str = "mean",
    duration: float | None = None,
) -> np.ndarray:
    """Proposals from a 1-D class activation sequence.

    For each threshold ``thr`` (a fraction of ``max(cas)``) every connected run of snippets with
    ``cas >= thr * max(cas)`` becomes a proposal. Its score is

    * ``"mean"``: the mean CAS inside the run;
    * ``"outer_inner"``: the mean inside minus the mean over the surrounding region, which extends
      ``ceil(0.25 * length)`` snippets on each side (clipped to the video; 0 when that region is empty).

    Args:
        cas: ndarray[T] class activation of one class.
        thresholds: fractions of the maximum, each in [0, 1].
        seconds_per_snippet: duration covered by one snippet.
        scoring: ``"mean"`` or ``"outer_inner"``.
        duration: video duration in seconds; segments are clipped to it (and dropped when empty).

    Returns:
        ndarray[P, 3] of (start, end, score), threshold by threshold, runs in temporal order.
        Empty when the CAS is empty or its maximum is not positive.
    """
    cas = np.asarray(cas, dtype=np.float64)
    if cas.ndim != 1:
        raise ValueError(f"cas must be 1-D (T,), got shape {tuple(cas.shape)}")
    if not np.isfinite(cas).all():
        raise ValueError("cas contains NaN or infinite values")
    if scoring not in SCORINGS:
        raise ValueError(f"unknown scoring {scoring!r}; expected one of {', '.join(SCORINGS)}")
    if not seconds_per_snippet > 0:
        raise ValueError(f"seconds_per_snippet must be positive, got {seconds_per_snippet}")
    if duration is not None and not duration > 0:
        raise ValueError(f"duration must be positive, got {duration}")
    thresholds = [float(t) for t in thresholds]
    for threshold in thresholds:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"thresholds are fractions of max(cas) in [0, 1], got {threshold}")
    if cas.size == 0 or cas.max() <= 0:
        return np.zeros((0, 3))

    peak = cas.max()
    cumulative = np.concatenate([[0.0], np.cumsum(cas)])
    length_total = cas.size
    proposals = []
    for threshold in thresholds:
        first, last = _runs(cas >= threshold * peak)
        if first.size == 0:
            continue
        count = last - first + 1
        inner = (cumulative[last + 1] - cumulative[first]) / count
        if scoring == "outer_inner":
            margin = np.ceil(OUTER_MARGIN * count).astype(np.int64)
            outer_first = np.maximum(first - margin, 0)
            outer_last = np.minimum(last + margin, length_total - 1)
            outer_sum = (cumulative[first] - cumulative[outer_first]) + (
                cumulative[outer_last + 1] - cumulative[last + 1]
            )
            outer_count = (first - outer_first) + (outer_last - last)
            outer = np.divide(outer_sum, outer_count, out=np.zeros_like(outer_sum), where=outer_count > 0)
            score = inner - outer
        else:
            score = inner
        start = first * seconds_per_snippet
        end = (last + 1) * seconds_per_snippet
        if duration is not None:  # runs that start at or after the end of the video are dropped
            start = np.minimum(start, duration)
            end = np.minimum(end, duration)
        proposal = np.stack([start, end, score], axis=1)
        proposals.append(proposal[end > start])
    if not proposals:
        return np.zeros((0, 3))
    return np.concatenate(proposals, axis=0)


def _score_order(scores: np.ndarray) -> np.ndarray:
    """Indices by decreasing score; equal scores keep their input order."""
    return np.argsort(-scores, kind="stable")


def _overlapping_pairs(segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(i, j)``, ``i != j``, of segments whose intersection is longer than zero (each pair once).

    A sweep by start: the segments starting at or after segment ``a`` (in start order) and before its end.
    """
    count = len(segments)
    if count < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    by_start = np.argsort(segments[:, 0], kind="stable")
    starts, ends = segments[by_start, 0], segments[by_start, 1]
    stop = np.searchsorted(starts, ends, side="left")  # positions of the segments starting before each end
    lengths = np.maximum(stop - np.arange(count) - 1, 0)
    first = np.repeat(np.arange(count), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    second = first + 1 + offsets
    overlap = np.minimum(ends[first], ends[second]) > np.maximum(starts[first], starts[second])
    return by_start[first[overlap]], by_start[second[overlap]]


def nms_1d(proposals: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Hard non-maximum suppression of temporal proposals.

    Proposals are visited by decreasing score (ties: input order); each kept proposal removes
    every remaining one whose tIoU with it is strictly greater than ``iou_threshold``.

    Args:
        proposals: ndarray[P, 3] of (start, end, score).
        iou_threshold: suppression threshold in [0, 1].

    Returns:
        ndarray[Q, 3], the kept proposals by decreasing score.
    """
    proposals = _as_segments(proposals, "proposals", columns=3)
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    ordered = proposals[_score_order(proposals[:, 2])]
    first, second = _overlapping_pairs(ordered[:, :2])
    # only overlapping pairs can have tIoU > threshold >= 0: the same formula as temporal_iou, on those
    starts, ends = ordered[:, 0], ordered[:, 1]
    intersection = np.minimum(ends[first], ends[second]) - np.maximum(starts[first], starts[second])
    union = (ends[first] - starts[first]) + (ends[second] - starts[second]) - intersection
    iou = np.zeros_like(intersection)
    np.divide(intersection, union, out=iou, where=union > 0)
    conflict = iou > iou_threshold
    first, second = first[conflict], second[conflict]
    # each kept proposal suppresses the later (lower-scored) ones it conflicts with
    earlier, later = np.minimum(first, second), np.maximum(first, second)
    order = np.argsort(earlier, kind="stable")
    earlier, later = earlier[order], later[order]
    bounds = np.searchsorted(earlier, np.arange(len(ordered) + 1))
    suppressed = np.zeros(len(ordered), dtype=bool)
    keep = []
    for index in range(len(ordered)):
        if suppressed[index]:
            continue
        keep.append(index)
        suppressed[later[bounds[index]:bounds[index + 1]]] = True
    return ordered[np.asarray(keep, dtype=np.int64)].reshape(-1, 3)


def soft_nms_1d(proposals: np.ndarray, sigma: float = 0.5, score_threshold: float = 1e-3) -> np.ndarray:
    """Gaussian soft non-maximum suppression (Bodla et al., 2017) of temporal proposals.

    Repeatedly keeps the highest-scoring remaining proposal (ties: input order) and decays every
    other remaining score by ``exp(-iou**2 / sigma)``; proposals whose score falls below
    ``score_threshold`` are dropped.

    Args:
        proposals: ndarray[P, 3] of (start, end, score).
        sigma: width of the Gaussian decay (> 0).
        score_threshold: minimum decayed score to stay.

    Returns:
        ndarray[Q, 3] with decayed scores, in selection order (scores non-increasing).
    """
    proposals = _as_segments(proposals, "proposals", columns=3)
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    segments = proposals[:, :2]
    scores = proposals[:, 2].copy()
    remaining = np.flatnonzero(scores >= score_threshold)
    kept_index, kept_score = [], []
    while remaining.size:
        position = int(np.argmax(scores[remaining]))  # first maximum: lowest input index among ties
        best = remaining[position]
        kept_index.append(best)
        kept_score.append(scores[best])
        remaining = np.delete(remaining, position)
        if remaining.size == 0:
            break
        iou = temporal_iou(segments[best : best + 1], segments[remaining])[0]
        scores[remaining] *= np.exp(-(iou**2) / sigma)
        remaining = remaining[scores[remaining] >= score_threshold]
    if not kept_index:
        return np.zeros((0, 3))
    kept = np.asarray(kept_index, dtype=np.int64)
    return np.concatenate([segments[kept], np.asarray(kept_score)[:, None]], axis=1)


def detect_actions(
    cas: np.ndarray,
    class_ids: Sequence[int],
    seconds_per_snippet: float,
    *,
    thresholds: Sequence[float] = (0.2,),
    scoring: str = "mean",
    nms: str = "hard",
    nms_iou: float = 0.5,
    soft_sigma: float = 0.5,
    duration: float | None = None,
    max_detections: int | None = 100,
) -> list[tuple[int, float, float, float]]:
    """Action detections of one video from its class activation sequence.

    For each class in ``class_ids``: proposals from :func:`segments_from_cas`, then per-class
    suppression (``"hard"``: :func:`nms_1d` at ``nms_iou``; ``"soft"``: :func:`soft_nms_1d` with
    ``soft_sigma``; ``"none"``). All classes are then ranked together by score (ties: class order,
    then proposal order) and the best ``max_detections`` are kept (all when None).

    Args:
        cas: ndarray[T, K] class activation sequence.
        class_ids: columns of ``cas`` to localize (typically the classes predicted at video level).

    Returns:
        list of (class_id, start, end, score), by decreasing score.
    """
    cas = np.asarray(cas, dtype=np.float64)
    if cas.ndim != 2:
        raise ValueError(f"cas must be 2-D (T, K), got shape {tuple(cas.shape)}")
    if nms not in NMS_METHODS:
        raise ValueError(f"unknown nms {nms!r}; expected one of {', '.join(NMS_METHODS)}")
    if max_detections is not None and max_detections < 0:
        raise ValueError(f"max_detections must be non-negative, got {max_detections}")
    proposals = {}
    for class_id in class_ids:
        class_id = int(class_id)
        if not 0 <= class_id < cas.shape[1]:
            raise ValueError(f"class id {class_id} out of range for a CAS with {cas.shape[1]} classes")
        proposals[class_id] = segments_from_cas(
            cas[:, class_id], thresholds, seconds_per_snippet, scoring=scoring, duration=duration
        )
    return rank_detections(proposals, nms=nms, nms_iou=nms_iou, soft_sigma=soft_sigma, max_detections=max_detections)


def rank_detections(
    proposals: Mapping[int, np.ndarray | Sequence[tuple[float, float, float]]],
    *,
    nms: str = "hard",
    nms_iou: float = 0.5,
    soft_sigma: float = 0.5,
    max_detections: int | None = 100,
) -> list[tuple[int, float, float, float]]:
    """Per-class suppression, then one ranking of all classes.

    Args:
        proposals: class id -> ndarray[M, 3] (or rows) of ``(start, end, score)``, in class order.
        nms: ``"hard"`` (:func:`nms_1d` at ``nms_iou``), ``"soft"`` (:func:`soft_nms_1d` with ``soft_sigma``)
            or ``"none"``.
        max_detections: keep the best this many (all when None).

    Returns:
        list of (class_id, start, end, score) by decreasing score; ties keep class order, then proposal order.
    """
    if nms not in NMS_METHODS:
        raise ValueError(f"unknown nms {nms!r}; expected one of {', '.join(NMS_METHODS)}")
    detections = []
    for class_id, found in proposals.items():
        found = np.asarray(found, dtype=np.float64).reshape(-1, 3)
        if not len(found):
            continue
        if nms == "hard":
            found = nms_1d(found, nms_iou)
        elif nms == "soft":
            found = soft_nms_1d(found, sigma=soft_sigma)
        detections.extend((int(class_id), float(start), float(end), float(score)) for start, end, score in found)
    order = _score_order(np.asarray([d[3] for d in detections], dtype=np.float64))
    detections = [detections[i] for i in order]
    if max_detections is not None:
        detections = detections[: int(max_detections)]
    return detections
