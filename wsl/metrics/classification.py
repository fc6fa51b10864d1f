"""Video-level classification mAP ("Cls mAP" of MAAN, STPN and W-TALC)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["average_precision", "classification_map", "video_classification_map"]


def average_precision(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Non-interpolated average precision of each column.

    AP is the mean, over the positives, of the precision among all items scoring at least as
    high as that positive; tied scores therefore form a single operating point (as in
    scikit-learn's ``average_precision_score``), which makes AP independent of the input order.

    Args:
        scores: ndarray[N, K] confidence of each item for each class.
        labels: ndarray[N, K] binary ground truth.

    Returns:
        ndarray[K]; NaN for a column without positives.
    """
    scores, labels = _check(scores, labels)
    num_items = scores.shape[0]
    order = np.argsort(-scores, axis=0, kind="stable")
    sorted_scores = np.take_along_axis(scores, order, axis=0)
    sorted_labels = np.take_along_axis(labels, order, axis=0).astype(np.float64)
    hits = np.cumsum(sorted_labels, axis=0)
    # Each rank looks up the last rank of its block of tied scores.
    block_end = np.ones_like(sorted_scores, dtype=bool)
    block_end[:-1] = sorted_scores[1:] != sorted_scores[:-1]
    index = np.where(block_end, np.arange(num_items)[:, None], num_items)
    last = np.minimum.accumulate(index[::-1], axis=0)[::-1]
    precision = np.take_along_axis(hits, last, axis=0) / (last + 1)
    num_positive = sorted_labels.sum(axis=0)
    total = (precision * sorted_labels).sum(axis=0)
    ap = np.full(scores.shape[1], np.nan)
    np.divide(total, num_positive, out=ap, where=num_positive > 0)
    return ap


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2 or labels.shape != scores.shape:
        raise ValueError(
            f"scores and labels must both have shape (N, K); got {tuple(scores.shape)} and {tuple(labels.shape)}"
        )
    if scores.shape[0] == 0:
        raise ValueError("scores and labels are empty (no items)")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be binary (0 or 1)")
    return scores, labels.astype(bool)


def classification_map(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean of :func:`average_precision` over the classes with at least one positive.

    Args:
        scores: ndarray[N, K] video-level class scores.
        labels: ndarray[N, K] binary video-level labels.

    Returns:
        float in [0, 1].
    """
    ap = average_precision(scores, labels)
    if np.isnan(ap).all():
        raise ValueError("no class has a positive video: classification mAP is undefined")
    return float(np.nanmean(ap))


def video_classification_map(
    ground_truth: Mapping,
    video_scores: Mapping[str, Mapping[str, float]],
    *,
    subset: str | None = None,
    unknown_labels: str = "error",
) -> float:
    """Classification mAP of video-level scores against an ActivityNet-style ground truth.

    A video is positive for every label it has an annotation of. Every video of the subset is
    ranked; a missing video or label scores 0. Classes are the labels of the subset.

    Args:
        ground_truth: ``{"database": {video: {"subset", "annotations": [{"label", ...}]}}}``.
        video_scores: ``{video: {label: probability}}``.
        subset: subset to evaluate (all videos when None).
        unknown_labels: a label no ground-truth annotation has is an error (``"error"``) or is left
            out (``"ignore"``), as in :func:`wsl.metrics.detection_map`.
    """
    if unknown_labels not in ("error", "ignore"):
        raise ValueError(f"unknown_labels must be 'error' or 'ignore', got {unknown_labels!r}")
    database = ground_truth["database"]
    videos = [v for v, entry in database.items() if subset is None or entry.get("subset") == subset]
    known = {str(a["label"]) for entry in database.values() for a in entry.get("annotations", [])}
    classes = sorted({str(a["label"]) for v in videos for a in database[v].get("annotations", [])})
    if not classes:
        raise ValueError(f"no annotated video in subset {subset!r}: classification mAP is undefined")
    column = {label: k for k, label in enumerate(classes)}
    scores = np.zeros((len(videos), len(classes)))
    labels = np.zeros((len(videos), len(classes)), dtype=np.int64)
    row_of = {video: i for i, video in enumerate(videos)}
    for video, i in row_of.items():
        for annotation in database[video].get("annotations", []):
            labels[i, column[str(annotation["label"])]] = 1
    for video, per_label in video_scores.items():
        if not isinstance(per_label, Mapping):
            raise ValueError(f"video_scores of video {video} must map labels to scores")
        for label, score in per_label.items():
            if label not in known and unknown_labels == "error":
                raise ValueError(f"video_scores of video {video} has label {label!r} unknown to the ground truth")
            if video in row_of and label in column:
                try:
                    scores[row_of[video], column[label]] = float(score)
                except (TypeError, ValueError):
                    message = f"video_scores of video {video}: score {score!r} is not a number"
                    raise ValueError(message) from None
    if not np.isfinite(scores).all():
        raise ValueError("video_scores contain NaN or infinite values")
    return classification_map(scores, labels)
