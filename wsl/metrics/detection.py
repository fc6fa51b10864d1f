"""Temporal action detection mAP, as computed by the ActivityNet detection evaluator.

The algorithm (ActivityNet ``Evaluation/eval_detection.py``), per class and per tIoU threshold:

1. predictions are ranked by decreasing score;
2. each prediction tries the ground-truth segments of the same class in its video in order of
   decreasing tIoU: a tIoU below the threshold makes it a false positive, a segment already matched
   at this threshold is skipped, the first free one makes it a true positive and is locked;
3. predictions in videos without ground truth of that class (including videos outside the subset)
   are false positives;
4. AP is the all-point interpolated area under the precision/recall curve (VOC 2011 style);
   a class without predictions scores 0 and still counts in the mean over classes.

Ties, which the reference evaluator leaves to ``argsort``, are resolved deterministically here:
predictions with equal scores keep their input order (videos in the order of the predictions
file, then the order of each video's list), and ground-truth segments with equal tIoU are tried
in their order in the ground-truth file.

Optionally, detections that would be false positives and overlap an "Ambiguous" segment of their
video (any positive intersection) are removed from the ranking, as in the THUMOS14 evaluation kit.

The matching is vectorised over thresholds and over all (class, video) groups at once: the
sequential part only runs over the rank of a prediction inside its (class, video) group.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from wsl.utils.numbers import finite_float

from ._parsing import parse_segment

__all__ = [
    "detection_map",
    "ACTIVITYNET_TIOU_THRESHOLDS",
    "THUMOS14_TIOU_THRESHOLDS",
    "THUMOS14_REPORTED_TIOU_THRESHOLDS",
    "summary_keys",
]

ACTIVITYNET_TIOU_THRESHOLDS = tuple(float(t) for t in np.linspace(0.5, 0.95, 10))
THUMOS14_TIOU_THRESHOLDS = tuple(float(t) for t in np.linspace(0.1, 0.9, 9))
THUMOS14_REPORTED_TIOU_THRESHOLDS = tuple(float(t) for t in np.linspace(0.1, 0.7, 7))


def _mapping(value: Any, what: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _parse_ground_truth(ground_truth: Mapping, subset: str | None):
    database = _mapping(_mapping(ground_truth, "ground truth").get("database"), "ground truth 'database'")
    videos, labels, starts, ends = [], [], [], []
    known_labels: set[str] = set()
    subset_videos: list[str] = []
    for video, entry in database.items():
        entry = _mapping(entry, f"ground truth video {video}")
        annotations = entry.get("annotations", [])
        if not isinstance(annotations, list):
            raise ValueError(f"ground truth video {video}: 'annotations' must be a list")
        in_subset = subset is None or entry.get("subset") == subset
        if in_subset:
            subset_videos.append(video)
        for annotation in annotations:
            annotation = _mapping(annotation, f"ground truth video {video}: annotation")
            if "label" not in annotation or "segment" not in annotation:
                raise ValueError(f"ground truth video {video}: annotation without 'label' or 'segment'")
            label = str(annotation["label"])
            known_labels.add(label)
            if in_subset:
                start, end = parse_segment(annotation["segment"], f"ground truth video {video}")
                videos.append(video)
                labels.append(label)
                starts.append(start)
                ends.append(end)
    return subset_videos, videos, labels, np.asarray(starts), np.asarray(ends), known_labels


def _check_prediction(entry: Any, video: str) -> None:
    """Raise the precise ValueError for a malformed prediction (slow path)."""
    entry = _mapping(entry, f"prediction in video {video}")
    if "label" not in entry or "segment" not in entry or "score" not in entry:
        raise ValueError(f"prediction in video {video} needs 'label', 'segment' and 'score'")
    parse_segment(entry["segment"], f"prediction in video {video}")
    finite_float(entry["score"], f"prediction score in video {video}")


def _parse_predictions(predictions: Mapping):
    """Flatten ``{"results": {video: [entry]}}`` into per-prediction lists and arrays."""
    results = _mapping(_mapping(predictions, "predictions").get("results"), "predictions 'results'")
    video_names, counts, labels, starts, ends, scores = [], [], [], [], [], []
    infinity = math.inf
    for video, entries in results.items():
        if not isinstance(entries, list):
            raise ValueError(f"predictions for video {video} must be a list")
        for entry in entries:
            # Fast path; anything unusual is re-checked by _check_prediction for a precise message.
            try:
                segment = entry["segment"]
                if len(segment) != 2:
                    raise ValueError
                start, end, score = float(segment[0]), float(segment[1]), float(entry["score"])
                label = entry["label"]
            except (TypeError, KeyError, ValueError, IndexError):
                _check_prediction(entry, video)
                raise
            if not (-infinity < start <= end < infinity and -infinity < score < infinity):
                _check_prediction(entry, video)
            labels.append(label if label.__class__ is str else str(label))
            starts.append(start)
            ends.append(end)
            scores.append(score)
        video_names.append(video)
        counts.append(len(entries))
    videos = np.repeat(np.arange(len(video_names)), counts)
    return (
        video_names,
        videos,
        labels,
        np.asarray(starts, dtype=np.float64),
        np.asarray(ends, dtype=np.float64),
        np.asarray(scores, dtype=np.float64),
    )


def _overlaps_ambiguous(
    video_index: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    video_ids: Mapping[str, int],
    ambiguous: Mapping[str, Iterable[tuple[float, float]]],
) -> np.ndarray:
    """bool[N]: the prediction has a positive intersection with an ambiguous segment of its video."""
    overlaps = np.zeros(len(video_index), dtype=bool)
    if not ambiguous or len(video_index) == 0:
        return overlaps
    order = np.argsort(video_index, kind="stable")
    sorted_videos = video_index[order]
    for video, segments in ambiguous.items():
        if video not in video_ids:
            continue
        vid = video_ids[video]
        lo, hi = np.searchsorted(sorted_videos, [vid, vid + 1])
        if lo == hi:
            continue
        members = order[lo:hi]
        segments = np.asarray([parse_segment(s, f"ambiguous segment of video {video}") for s in segments])
        if segments.size == 0:
            continue
        inter = np.minimum(ends[members, None], segments[None, :, 1]) - np.maximum(
            starts[members, None], segments[None, :, 0]
        )
        overlaps[members] = (inter > 0).any(axis=1)
    return overlaps


def _match(
    pred_key: np.ndarray,
    pred_rank_order: np.ndarray,
    pred_start: np.ndarray,
    pred_end: np.ndarray,
    gt_key: np.ndarray,
    gt_start: np.ndarray,
    gt_end: np.ndarray,
    thresholds: np.ndarray,
) -> np.ndarray:
    """True positives bool[N, T] of the greedy matching.

    ``pred_key``/``gt_key`` identify the (class, video) group; ``pred_rank_order`` lists the
    predictions by decreasing score (ties resolved already); ground truth is sorted by key,
    ties in file order.
    """
    num_pred, num_thr = len(pred_key), len(thresholds)
    tp = np.zeros((num_pred, num_thr), dtype=bool)
    if num_pred == 0 or len(gt_key) == 0:
        return tp
    group_keys, group_first, group_count = np.unique(gt_key, return_index=True, return_counts=True)
    group = np.searchsorted(group_keys, pred_key)
    group = np.minimum(group, len(group_keys) - 1)
    has_gt = group_keys[group] == pred_key

    # Predictions that have ground truth of their class in their video, in score order.
    ranked = pred_rank_order[has_gt[pred_rank_order]]
    if ranked.size == 0:
        return tp
    counts = group_count[group[ranked]]
    pair_owner = np.repeat(np.arange(len(ranked)), counts)
    first_pair = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pair_gt = group_first[group[ranked]][pair_owner] + (np.arange(counts.sum()) - first_pair[pair_owner])
    pair_pred = ranked[pair_owner]
    inter = np.minimum(pred_end[pair_pred], gt_end[pair_gt]) - np.maximum(pred_start[pair_pred], gt_start[pair_gt])
    inter = np.clip(inter, 0.0, None)
    union = (pred_end[pair_pred] - pred_start[pair_pred]) + (gt_end[pair_gt] - gt_start[pair_gt]) - inter
    pair_iou = np.zeros_like(inter)
    np.divide(inter, union, out=pair_iou, where=union > 0)

    # A prediction whose best tIoU is below every threshold never locks anything: drop it early.
    best_iou = np.maximum.reduceat(pair_iou, first_pair)
    candidate = best_iou >= thresholds.min()
    if not candidate.any():
        return tp
    keep_pair = candidate[pair_owner]
    ranked = ranked[candidate]
    pair_iou, pair_gt = pair_iou[keep_pair], pair_gt[keep_pair]
    counts = counts[candidate]
    pair_owner = np.repeat(np.arange(len(ranked)), counts)

    # Rank of each candidate inside its (class, video) group; step through ranks, all groups at once.
    ranked_group = group[ranked]
    by_group = np.argsort(ranked_group, kind="stable")  # score order kept inside a group
    sorted_groups = ranked_group[by_group]
    group_start_pos = np.searchsorted(sorted_groups, sorted_groups)
    rank = np.empty(len(ranked), dtype=np.int64)
    rank[by_group] = np.arange(len(ranked)) - group_start_pos
    step_order = np.lexsort((ranked_group, rank))  # by rank, then group
    # Reorder pairs to follow step_order so each step is a contiguous slice.
    pair_first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    new_counts = counts[step_order]
    new_first = np.concatenate([[0], np.cumsum(new_counts)[:-1]])
    new_owner = np.repeat(np.arange(len(ranked)), new_counts)
    gather = pair_first[step_order][new_owner] + (np.arange(new_counts.sum()) - new_first[new_owner])
    pair_iou, pair_gt = pair_iou[gather], pair_gt[gather]
    ranked, rank = ranked[step_order], rank[step_order]

    step_bounds = np.searchsorted(rank, np.arange(rank.max() + 2))
    locked = np.zeros((len(gt_key), num_thr), dtype=bool)
    meets = pair_iou[:, None] >= thresholds[None, :]
    for step in range(len(step_bounds) - 1):
        lo, hi = step_bounds[step], step_bounds[step + 1]
        if lo == hi:
            continue
        p_lo, p_hi = new_first[lo], new_first[hi - 1] + new_counts[hi - 1]
        gts = pair_gt[p_lo:p_hi]
        valid = meets[p_lo:p_hi] & ~locked[gts]
        key = np.where(valid, pair_iou[p_lo:p_hi, None], -1.0)
        starts = new_first[lo:hi] - p_lo
        owner = new_owner[p_lo:p_hi] - lo
        best = np.maximum.reduceat(key, starts, axis=0)
        is_best = valid & (key == best[owner])
        position = np.where(is_best, np.arange(p_hi - p_lo)[:, None], p_hi - p_lo)
        first = np.minimum.reduceat(position, starts, axis=0)
        matched = first < p_hi - p_lo
        rows, cols = np.nonzero(matched)
        tp[ranked[lo + rows], cols] = True
        locked[gts[first[rows, cols]], cols] = True
    return tp


def _interpolated_ap(
    pred_class: np.ndarray,
    order: np.ndarray,
    tp: np.ndarray,
    included: np.ndarray,
    num_positive: np.ndarray,
) -> np.ndarray:
    """All-point interpolated AP float[K, T] of each class; ``order`` ranks predictions class by class."""
    num_classes, num_thr = len(num_positive), tp.shape[1]
    ap = np.zeros((num_classes, num_thr))
    if len(order) == 0:
        return ap
    cls = pred_class[order]
    tp_s = tp[order].astype(np.float64)
    fp_s = (included[order] & ~tp[order]).astype(np.float64)
    segment_start = np.flatnonzero(np.concatenate([[True], cls[1:] != cls[:-1]]))
    segment_id = np.cumsum(np.concatenate([[False], cls[1:] != cls[:-1]]))
    tp_cum = np.cumsum(tp_s, axis=0)
    fp_cum = np.cumsum(fp_s, axis=0)
    tp_before = np.where(segment_start[:, None] > 0, tp_cum[segment_start - 1], 0.0)
    fp_before = np.where(segment_start[:, None] > 0, fp_cum[segment_start - 1], 0.0)
    tp_cum -= tp_before[segment_id]
    fp_cum -= fp_before[segment_id]
    denominator = tp_cum + fp_cum
    precision = np.zeros_like(tp_cum)
    np.divide(tp_cum, denominator, out=precision, where=included[order] & (denominator > 0))
    # Interpolated precision: maximum precision at this rank or any later rank of the same class.
    envelope = np.empty_like(precision)
    segment_end = np.append(segment_start[1:], len(cls))
    for first, last in zip(segment_start, segment_end):
        envelope[first:last] = np.maximum.accumulate(precision[first:last][::-1], axis=0)[::-1]
    recall = tp_cum / num_positive[cls][:, None]
    previous = np.vstack([np.zeros((1, num_thr)), recall[:-1]])
    previous[segment_start] = 0.0
    contribution = np.where(recall != previous, (recall - previous) * envelope, 0.0)
    for column in range(num_thr):
        ap[:, column] = np.bincount(cls, weights=contribution[:, column], minlength=num_classes)
    return ap


def summary_keys(thresholds: Sequence[float], mean_ap: Sequence[float]) -> dict[str, float]:
    """Extra averages: ``average_mAP_0.1_0.7`` when all of 0.1, 0.2, ..., 0.7 were evaluated."""
    thresholds = np.asarray(thresholds, dtype=np.float64)
    extra = {}
    reported = np.asarray(THUMOS14_REPORTED_TIOU_THRESHOLDS)
    matches = np.isclose(thresholds[:, None], reported[None, :], atol=1e-9)
    if matches.any(axis=0).all():
        columns = [int(np.flatnonzero(matches[:, j])[0]) for j in range(len(reported))]
        extra["average_mAP_0.1_0.7"] = float(np.mean(np.asarray(mean_ap)[columns]))
    return extra


def detection_map(
    ground_truth: Mapping,
    predictions: Mapping,
    tiou_thresholds: Sequence[float],
    *,
    subset: str | None = None,
    ambiguous: Mapping[str, Iterable[tuple[float, float]]] | None = None,
    unknown_labels: str = "error",
) -> dict:
    """Mean average precision of temporal action detections at several tIoU thresholds.

    Args:
        ground_truth: ActivityNet-style ``{"database": {video: {"subset", "annotations":
            [{"segment": [start, end], "label"}]}}}``.
        predictions: ``{"results": {video: [{"label", "segment": [start, end], "score"}]}}``.
        tiou_thresholds: thresholds in (0, 1].
        subset: evaluate only the videos of this subset (all videos when None).
        ambiguous: ``{video: [(start, end), ...]}``; detections that are not true positives and
            overlap one of these segments are ignored (THUMOS14 evaluation kit).
        unknown_labels: a predicted label that no ground-truth annotation has is an error (``"error"``,
            as in the reference evaluator), or such predictions are left out (``"ignore"``; their count
            is returned as ``"num_ignored_predictions"``), e.g. for ground truth of a few videos only.

    Returns:
        ``{"tiou_thresholds": [T], "mAP": [T], "average_mAP": float, "per_class_ap": {label: [T]},
        "num_classes", "num_ground_truth", "num_predictions"}`` with fractions in [0, 1];
        ``"average_mAP_0.1_0.7"`` too when 0.1, ..., 0.7 are among the thresholds.
    """
    thresholds = np.asarray([float(t) for t in tiou_thresholds], dtype=np.float64)
    if thresholds.ndim != 1 or thresholds.size == 0:
        raise ValueError("tiou_thresholds must be a non-empty list of numbers")
    if not ((thresholds > 0) & (thresholds <= 1)).all():
        raise ValueError(f"tiou_thresholds must lie in (0, 1], got {thresholds.tolist()}")

    subset_videos, gt_videos, gt_labels, gt_start, gt_end, known_labels = _parse_ground_truth(ground_truth, subset)
    if not gt_labels:
        where = f"subset {subset!r}" if subset is not None else "the ground truth"
        raise ValueError(f"no ground-truth annotations in {where}")
    classes = sorted(set(gt_labels))
    class_ids = {label: i for i, label in enumerate(classes)}
    pred_names, pred_video_pos, pred_labels, pred_start, pred_end, pred_score = _parse_predictions(predictions)
    if unknown_labels not in ("error", "ignore"):
        raise ValueError(f"unknown_labels must be 'error' or 'ignore', got {unknown_labels!r}")
    unknown = set(pred_labels) - known_labels
    if unknown and unknown_labels == "error":
        first = next(i for i, label in enumerate(pred_labels) if label in unknown)
        video, label = pred_names[pred_video_pos[first]], pred_labels[first]
        raise ValueError(
            f"prediction in video {video} has label {label!r} unknown to the ground truth "
            f"(to leave such predictions out, pass --ignore-unknown-labels / unknown_labels='ignore')"
        )
    num_ignored = sum(1 for label in pred_labels if label in unknown) if unknown else 0

    video_ids: dict[str, int] = {}
    for video in subset_videos:
        video_ids.setdefault(video, len(video_ids))
    for video in pred_names:
        video_ids.setdefault(video, len(video_ids))
    num_videos = max(len(video_ids), 1)

    gt_class = np.asarray([class_ids[label] for label in gt_labels], dtype=np.int64)
    gt_video = np.asarray([video_ids[video] for video in gt_videos], dtype=np.int64)
    # Labels known to the ground truth but absent from the evaluated subset have no class: dropped.
    pred_class = np.asarray([class_ids.get(label, -1) for label in pred_labels], dtype=np.int64)
    name_ids = np.asarray([video_ids[video] for video in pred_names], dtype=np.int64)
    pred_video = name_ids[pred_video_pos] if len(pred_video_pos) else np.zeros(0, dtype=np.int64)
    keep = np.flatnonzero(pred_class >= 0)
    pred_class, pred_video = pred_class[keep], pred_video[keep]
    pred_start, pred_end, pred_score = pred_start[keep], pred_end[keep], pred_score[keep]

    gt_order = np.lexsort((gt_video, gt_class))  # stable: file order among equal keys
    gt_key = gt_class[gt_order] * num_videos + gt_video[gt_order]
    pred_key = pred_class * num_videos + pred_video
    # Ranking of each class: decreasing score, ties in input order (lexsort is stable).
    order = np.lexsort((-pred_score, pred_class))
    tp = _match(pred_key, order, pred_start, pred_end, gt_key, gt_start[gt_order], gt_end[gt_order], thresholds)
    included = np.ones_like(tp)
    if ambiguous:
        overlap = _overlaps_ambiguous(pred_video, pred_start, pred_end, video_ids, ambiguous)
        included = ~(overlap[:, None] & ~tp)
    num_positive = np.bincount(gt_class, minlength=len(classes)).astype(np.float64)
    ap = _interpolated_ap(pred_class, order, tp, included, num_positive)
    mean_ap = ap.mean(axis=0)
    metrics = {
        "tiou_thresholds": [round(float(t), 12) for t in thresholds],
        "mAP": mean_ap.tolist(),
        "average_mAP": float(mean_ap.mean()),
    }
    metrics.update(summary_keys(thresholds, mean_ap))
    metrics["per_class_ap"] = {label: ap[i].tolist() for i, label in enumerate(classes)}
    metrics["num_classes"] = len(classes)
    metrics["num_ground_truth"] = len(gt_labels)
    metrics["num_predictions"] = int(len(keep))
    if unknown_labels == "ignore":
        metrics["num_ignored_predictions"] = num_ignored
    return metrics
