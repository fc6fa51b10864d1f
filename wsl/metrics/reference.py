"""Slow, loop-based reference implementations of the evaluation metrics and 1-D suppression.

They follow the textbook definitions one prediction at a time and serve as test oracles and as
the baseline of ``benchmarks/evaluation.py``; use :mod:`wsl.metrics.detection`,
:mod:`wsl.metrics.classification` and :mod:`wsl.localization.temporal` in practice.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

__all__ = [
    "segment_iou_reference",
    "temporal_iou_reference",
    "nms_1d_reference",
    "soft_nms_1d_reference",
    "interpolated_ap_reference",
    "detection_map_reference",
    "average_precision_reference",
    "classification_map_reference",
]


def segment_iou_reference(a: Sequence[float], b: Sequence[float]) -> float:
    """tIoU of two (start, end) segments; 0 when the union has zero length."""
    intersection = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - intersection
    return intersection / union if union > 0 else 0.0


def temporal_iou_reference(segments, targets) -> list[list[float]]:
    """Pairwise tIoU, as nested lists [N][M]."""
    return [[segment_iou_reference(s, t) for t in targets] for s in segments]


def _by_score(items: list, score_of) -> list:
    # Python's sort is stable: equal scores keep their input order.
    return sorted(items, key=lambda item: -score_of(item))


def nms_1d_reference(proposals, iou_threshold: float) -> list[tuple[float, float, float]]:
    """Hard NMS: keep the best, drop everything overlapping it by more than the threshold, repeat."""
    remaining = _by_score([tuple(map(float, p)) for p in proposals], lambda p: p[2])
    kept = []
    while remaining:
        best = remaining.pop(0)
        kept.append(best)
        remaining = [p for p in remaining if segment_iou_reference(best, p) <= iou_threshold]
    return kept


def soft_nms_1d_reference(proposals, sigma: float = 0.5, score_threshold: float = 1e-3):
    """Gaussian soft-NMS, one proposal at a time."""
    import math

    remaining = [[float(p[0]), float(p[1]), float(p[2]), i] for i, p in enumerate(proposals)]
    remaining = [p for p in remaining if p[2] >= score_threshold]
    kept = []
    while remaining:
        best = remaining[0]
        for p in remaining[1:]:
            if p[2] > best[2]:
                best = p
        remaining.remove(best)
        kept.append((best[0], best[1], best[2]))
        for p in remaining:
            p[2] *= math.exp(-(segment_iou_reference(best, p) ** 2) / sigma)
        remaining = [p for p in remaining if p[2] >= score_threshold]
    return kept


def interpolated_ap_reference(is_true_positive: Sequence[bool], num_positive: int) -> float:
    """All-point interpolated AP (VOC 2011) of a ranked list of hits and misses."""
    hits = misses = 0
    recalls, precisions = [], []
    for hit in is_true_positive:
        hits += bool(hit)
        misses += not hit
        recalls.append(hits / num_positive)
        precisions.append(hits / (hits + misses))
    ap = 0.0
    previous_recall = 0.0
    for i, recall in enumerate(recalls):
        if recall != previous_recall:
            ap += (recall - previous_recall) * max(precisions[i:])
        previous_recall = recall
    return ap


def detection_map_reference(
    ground_truth: Mapping,
    predictions: Mapping,
    tiou_thresholds: Sequence[float],
    *,
    subset: str | None = None,
    ambiguous: Mapping[str, Iterable[tuple[float, float]]] | None = None,
) -> dict:
    """Detection mAP one class, one threshold and one prediction at a time.

    Same conventions as :func:`wsl.metrics.detection_map` (ties: input order; ground truth with
    equal tIoU: file order; false positives overlapping an ambiguous segment are ignored).
    Returns ``{"mAP": [T], "per_class_ap": {label: [T]}}``.
    """
    gt_by_class: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for video, entry in ground_truth["database"].items():
        if subset is not None and entry.get("subset") != subset:
            continue
        for annotation in entry["annotations"]:
            segment = (float(annotation["segment"][0]), float(annotation["segment"][1]))
            gt_by_class.setdefault(annotation["label"], {}).setdefault(video, []).append(segment)
    ambiguous = ambiguous or {}

    per_class_ap = {}
    for label in sorted(gt_by_class):
        class_gt = gt_by_class[label]
        num_positive = sum(len(segments) for segments in class_gt.values())
        class_predictions = [
            (video, float(p["segment"][0]), float(p["segment"][1]), float(p["score"]))
            for video, entries in predictions["results"].items()
            for p in entries
            if p["label"] == label
        ]
        class_predictions = _by_score(class_predictions, lambda p: p[3])
        aps = []
        for threshold in tiou_thresholds:
            used = {video: [False] * len(segments) for video, segments in class_gt.items()}
            ranked_hits = []
            for video, start, end, _ in class_predictions:
                segments = class_gt.get(video, [])
                ious = [segment_iou_reference((start, end), g) for g in segments]
                # Try segments by decreasing tIoU, ties in file order.
                candidates = sorted(range(len(segments)), key=lambda j: -ious[j])
                hit = False
                for j in candidates:
                    if ious[j] < threshold:
                        break
                    if used[video][j]:
                        continue
                    used[video][j] = True
                    hit = True
                    break
                if not hit and any(
                    min(end, a_end) - max(start, a_start) > 0 for a_start, a_end in ambiguous.get(video, [])
                ):
                    continue  # a would-be false positive on an ambiguous segment is ignored
                ranked_hits.append(hit)
            aps.append(interpolated_ap_reference(ranked_hits, num_positive))
        per_class_ap[label] = aps
    mean_ap = [
        sum(per_class_ap[label][t] for label in per_class_ap) / len(per_class_ap) for t in range(len(tiou_thresholds))
    ]
    return {"mAP": mean_ap, "per_class_ap": per_class_ap}


def average_precision_reference(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Non-interpolated AP: mean over positives of the precision at their score.

    Precision at score ``s`` counts every item scoring at least ``s``, so tied items share one
    operating point.
    """
    positives = [s for s, y in zip(scores, labels) if y]
    total = 0.0
    for s in positives:
        retrieved = [y for t, y in zip(scores, labels) if t >= s]
        total += sum(retrieved) / len(retrieved)
    return total / len(positives)


def classification_map_reference(scores, labels) -> float:
    """Mean of :func:`average_precision_reference` over the classes (columns) with a positive."""
    columns = range(len(scores[0]))
    aps = []
    for k in columns:
        column_labels = [int(row[k]) for row in labels]
        if any(column_labels):
            aps.append(average_precision_reference([float(row[k]) for row in scores], column_labels))
    return sum(aps) / len(aps)
