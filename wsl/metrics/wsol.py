"""Weakly-supervised object localization metrics: box IoU, MaxBoxAcc(V2), top-k localization.

* :func:`max_box_acc` / :class:`BoxAccuracy`: the threshold-free box accuracy of Choe et al.
  (CVPR 2020). For every CAM threshold ``tau`` the fraction of images whose estimated box has
  IoU >= delta with some ground-truth box is computed; the score is the maximum over ``tau``.
  ``multi_contour=False`` is MaxBoxAcc (box of the largest contour, usually reported at delta = 0.5);
  ``multi_contour=True`` is MaxBoxAccV2 (best box over all contours, mean over delta in {0.3, 0.5, 0.7}).
* :func:`localization_accuracy`: the classic CAM protocol at one fixed threshold (0.2 of the maximum
  by default, or the ``tau`` chosen on a validation split): top-1 / top-5 localization, GT-known
  localization and top-1 / top-5 classification.

Boxes are ``(x0, y0, x1, y1)`` in pixels of the map; IoU uses the +1-pixel convention
(``width = x1 - x0 + 1``), as in the reference evaluation code. Accuracies are fractions in ``[0, 1]``,
as every function of :mod:`wsl.metrics` returns; only printing scales them to percent.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import numpy as np

from wsl.localization.boxes import (
    largest_contour_box,
    level_boxes,
    quantize_map,
    threshold_cutoffs,
    union_boxes,
)
from wsl.utils.jit import numba_available

__all__ = [
    "box_iou", "max_box_acc", "BoxAccuracy", "localization_accuracy", "best_ious_per_threshold",
    "update_box_accuracies",
]

DEFAULT_CAM_THRESHOLDS = np.arange(0, 1, 0.01)
DEFAULT_IOU_THRESHOLDS = (0.3, 0.5, 0.7)


def _as_boxes(boxes: Any, name: str) -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float64)
    if array.ndim == 1 and array.size == 4:
        array = array.reshape(1, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) as (x0, y0, x1, y1), got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    if (array[:, 2] < array[:, 0]).any() or (array[:, 3] < array[:, 1]).any():
        bad = int(np.nonzero((array[:, 2] < array[:, 0]) | (array[:, 3] < array[:, 1]))[0][0])
        raise ValueError(
            f"{name}[{bad}] = {array[bad].tolist()} is not (x0, y0, x1, y1) with x1 >= x0 and y1 >= y0"
        )
    return array


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU with the +1-pixel convention.

    Args:
        boxes_a (ndarray[N, 4]): ``(x0, y0, x1, y1)``.
        boxes_b (ndarray[M, 4]): ``(x0, y0, x1, y1)``.

    Returns:
        ndarray[N, M] float64; 0 where the union is not positive.
    """
    a = _as_boxes(boxes_a, "boxes_a")
    b = _as_boxes(boxes_b, "boxes_b")
    inter_w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1
    inter_h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1
    intersection = np.clip(inter_w, 0, None) * np.clip(inter_h, 0, None)
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    union = area_a[:, None] + area_b[None, :] - intersection
    valid = union > 0
    return np.where(valid, intersection / np.where(valid, union, 1.0), 0.0)


def _iou_rows(boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Best IoU of each box (ndarray[R, 4]) with any ground-truth box, :func:`box_iou` without the checks."""
    inter_w = np.minimum(boxes[:, None, 2], gt[None, :, 2]) - np.maximum(boxes[:, None, 0], gt[None, :, 0]) + 1
    inter_h = np.minimum(boxes[:, None, 3], gt[None, :, 3]) - np.maximum(boxes[:, None, 1], gt[None, :, 1]) + 1
    intersection = np.clip(inter_w, 0, None) * np.clip(inter_h, 0, None)
    area_a = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    area_b = (gt[:, 2] - gt[:, 0] + 1) * (gt[:, 3] - gt[:, 1] + 1)
    union = area_a[:, None] + area_b[None, :] - intersection
    valid = union > 0
    return np.where(valid, intersection / np.where(valid, union, 1.0), 0.0).max(axis=1)


def _best_ious(
    cam: np.ndarray, gt: np.ndarray, cam_thresholds: np.ndarray, name: str, floor: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Best IoU per threshold of the largest contour's box and of any contour's box (ndarray[T] each).

    With numba (:func:`wsl.utils.jit.numba_available`), :func:`wsl.localization.contour_sweep.sweep_level_ious`
    gives every value from one sweep over the pixels and ``floor`` is not used. Otherwise, with ``floor``,
    thresholds where no box inside the box of all foreground pixels can reach an IoU of
    ``floor`` with a ground-truth box skip the contour search and report 0 (an upper bound that is exact
    in floating point: the IoU of a box ``b`` is at most ``|b & g| / |g| <= |union & g| / |g|``).
    """
    if numba_available():  # one sweep over the pixels; OpenCV only where nested components hide the largest
        from wsl.localization.contour_sweep import evaluate_map

        largest, every, fallback = evaluate_map(cam, cam_thresholds, gt, name)
        if fallback.any():
            quantized = quantize_map(cam, name)
            cutoffs = threshold_cutoffs(quantized, cam_thresholds)
            for index in np.flatnonzero(fallback).tolist():
                largest[index] = _iou_rows(largest_contour_box(quantized, int(cutoffs[index]))[None], gt)[0]
        return largest, every
    quantized = quantize_map(cam, name)
    cutoffs, inverse = np.unique(threshold_cutoffs(quantized, cam_thresholds), return_inverse=True)
    inverse = inverse.reshape(-1)
    needed = None
    if floor is not None:
        union = union_boxes(quantized, cutoffs).astype(np.float64)
        inter_w = np.minimum(union[:, None, 2], gt[None, :, 2]) - np.maximum(union[:, None, 0], gt[None, :, 0]) + 1
        inter_h = np.minimum(union[:, None, 3], gt[None, :, 3]) - np.maximum(union[:, None, 1], gt[None, :, 1]) + 1
        covered = np.clip(inter_w, 0, None) * np.clip(inter_h, 0, None)
        area = (gt[:, 2] - gt[:, 0] + 1) * (gt[:, 3] - gt[:, 1] + 1)
        reachable = (covered / np.where(area > 0, area, 1.0)).max(axis=1)
        empty = union[:, 2] < union[:, 0]  # no pixel above: the [0, 0, 0, 0] box is scored as the reference does
        needed = empty | (reachable >= floor - 1e-9)
    found = level_boxes(quantized, cutoffs, needed)
    every = np.maximum.reduceat(_iou_rows(found.boxes, gt), found.starts)
    largest = _iou_rows(found.largest, gt)
    if needed is not None:
        every[~needed] = 0.0
        largest[~needed] = 0.0
    return largest[inverse], every[inverse]


def best_ious_per_threshold(
    cam: np.ndarray,
    gt_boxes: np.ndarray,
    cam_thresholds: Sequence[float] | np.ndarray,
    *,
    multi_contour: bool,
    name: str = "cam",
) -> np.ndarray:
    """Best IoU between the boxes estimated at each threshold and any ground-truth box.

    Args:
        cam (ndarray[H, W]): map in ``[0, 1]``.
        gt_boxes (ndarray[M, 4]): ground-truth boxes in the map's pixels, ``M >= 1``.
        cam_thresholds (ndarray[T]): relative thresholds.

    Returns:
        ndarray[T] float64.
    """
    gt = _checked_gt(gt_boxes, name)
    thresholds = _checked_thresholds(cam_thresholds)
    largest, every = _best_ious(cam, gt, thresholds, name)
    return every if multi_contour else largest


def _checked_gt(gt_boxes: Any, name: str) -> np.ndarray:
    gt = _as_boxes(gt_boxes, f"ground-truth boxes of {name}")
    if len(gt) == 0:
        raise ValueError(f"{name} has no ground-truth box")
    return gt


def _checked_thresholds(cam_thresholds: Any) -> np.ndarray:
    thresholds = np.asarray(cam_thresholds, dtype=np.float64).reshape(-1)
    if not np.isfinite(thresholds).all():
        raise ValueError(f"thresholds must be finite, got {thresholds.tolist()}")
    return thresholds


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _iter_cams(cams: Any) -> list[np.ndarray]:
    if isinstance(cams, np.ndarray):
        if cams.ndim == 2:
            return [cams]
        if cams.ndim != 3:
            raise ValueError(f"cams must be (N, H, W) or a sequence of (H, W) maps, got shape {cams.shape}")
        return list(cams)
    if hasattr(cams, "detach"):
        return _iter_cams(_to_numpy(cams))
    return [_to_numpy(cam) for cam in cams]


def _iter_boxes(gt_boxes: Any, count: int) -> list[np.ndarray]:
    boxes = [_to_numpy(b) for b in gt_boxes]
    if len(boxes) != count:
        raise ValueError(f"got {count} cams but {len(boxes)} ground-truth box lists")
    return boxes


class BoxAccuracy:
    """Streaming MaxBoxAcc / MaxBoxAccV2: call :meth:`update` batch by batch, then :meth:`compute`.

    Args:
        cam_thresholds: relative CAM thresholds ``tau`` (default ``0, 0.01, ..., 0.99``).
        iou_thresholds: IoU thresholds ``delta`` (default ``0.3, 0.5, 0.7``).
        multi_contour: True for MaxBoxAccV2 (all contours), False for MaxBoxAcc (largest contour).
    """

    def __init__(
        self,
        cam_thresholds: Sequence[float] | np.ndarray = DEFAULT_CAM_THRESHOLDS,
        iou_thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS,
        *,
        multi_contour: bool = True,
    ) -> None:
        self.cam_thresholds = np.asarray(cam_thresholds, dtype=np.float64).reshape(-1)
        self.iou_thresholds = tuple(float(t) for t in iou_thresholds)
        if self.cam_thresholds.size == 0:
            raise ValueError("cam_thresholds is empty")
        if not self.iou_thresholds:
            raise ValueError("iou_thresholds is empty")
        if any(not 0.0 <= t <= 1.0 for t in self.iou_thresholds):
            raise ValueError(f"iou_thresholds must lie in [0, 1], got {self.iou_thresholds}")
        self.multi_contour = bool(multi_contour)
        self.reset()

    def reset(self) -> None:
        """Forget every image seen so far."""
        self.num_images = 0
        self.num_correct = np.zeros((len(self.iou_thresholds), len(self.cam_thresholds)), dtype=np.int64)

    def update(self, cams: Any, gt_boxes: Sequence[np.ndarray]) -> BoxAccuracy:
        """Add a batch.

        Args:
            cams (ndarray[N, H, W] | sequence of ndarray[H, W]): maps in ``[0, 1]``.
            gt_boxes (sequence of ndarray[M_i, 4]): ground-truth boxes in each map's pixels.
        """
        update_box_accuracies([self], cams, gt_boxes)
        return self

    def curves(self) -> np.ndarray:
        """Box accuracy (fraction in [0, 1]) at every CAM threshold: ndarray[len(iou_thresholds), T]."""
        if self.num_images == 0:
            raise ValueError("no image was added: call update() before compute()")
        return self.num_correct / self.num_images

    def compute(self) -> dict:
        """``{delta: max accuracy (fraction), ..., "mean": mean over deltas, "best_threshold": {delta: tau}}``.

        ``best_threshold`` is the first CAM threshold reaching the maximum.
        """
        curves = self.curves()
        best_index = curves.argmax(axis=1)
        result: dict = {}
        for row, delta in enumerate(self.iou_thresholds):
            result[delta] = float(curves[row, best_index[row]])
        result["mean"] = float(np.mean([result[delta] for delta in self.iou_thresholds]))
        result["best_threshold"] = {
            delta: float(self.cam_thresholds[best_index[row]])
            for row, delta in enumerate(self.iou_thresholds)
        }
        return result


def _evaluation_threads() -> int:
    """Threads for the maps of one batch: the usable cores with the compiled sweep (``WSL_EVAL_THREADS`` caps
    them), else 1 (OpenCV's contour search gains little from Python threads)."""
    if not numba_available():
        return 1
    setting = os.environ.get("WSL_EVAL_THREADS", "").strip()
    if setting:
        try:
            value = int(setting)
        except ValueError:
            raise ValueError(f"WSL_EVAL_THREADS must be a positive integer, got {setting!r}") from None
        if value < 1:
            raise ValueError(f"WSL_EVAL_THREADS must be a positive integer, got {setting!r}")
        return value
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def update_box_accuracies(metrics: Sequence[BoxAccuracy], cams: Any, gt_boxes: Sequence[np.ndarray]) -> None:
    """Add a batch to several :class:`BoxAccuracy` metrics that share their CAM thresholds.

    The boxes of each map at every threshold come from one sweep over its pixels
    (:func:`wsl.localization.contour_sweep.sweep_level_ious`, with numba) or one contour search per threshold
    (OpenCV), for all the metrics at once (MaxBoxAcc and MaxBoxAccV2 together cost one); the counts are exactly
    those of separate updates. With numba the maps of a batch are evaluated on several threads (all usable
    cores; the environment variable ``WSL_EVAL_THREADS`` sets the number): pass maps in batches.

    Args:
        metrics: the metrics to update (each keeps its own ``multi_contour`` and IoU thresholds).
        cams (ndarray[N, H, W] | sequence of ndarray[H, W]): maps in ``[0, 1]``.
        gt_boxes (sequence of ndarray[M_i, 4]): ground-truth boxes in each map's pixels.
    """
    metrics = list(metrics)
    if not metrics:
        return
    thresholds = metrics[0].cam_thresholds
    if any(not np.array_equal(metric.cam_thresholds, thresholds) for metric in metrics[1:]):
        raise ValueError("update_box_accuracies needs metrics with the same cam_thresholds")
    cam_list = _iter_cams(cams)
    box_list = _iter_boxes(gt_boxes, len(cam_list))
    thresholds = _checked_thresholds(thresholds)
    floor = min(min(metric.iou_thresholds) for metric in metrics)
    limits = [np.asarray(metric.iou_thresholds)[:, None] for metric in metrics]
    added = [np.zeros_like(metric.num_correct) for metric in metrics]
    start = metrics[0].num_images

    def best(index: int) -> tuple[np.ndarray, np.ndarray]:
        name = f"cam {start + index}"
        return _best_ious(cam_list[index], _checked_gt(box_list[index], name), thresholds, name, floor=floor)

    workers = min(len(cam_list), _evaluation_threads())
    if workers > 1:  # the compiled sweep releases the GIL: maps of a batch run side by side
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(best, range(len(cam_list))))
    else:
        results = [best(index) for index in range(len(cam_list))]
    for largest, every in results:
        for metric, limit, counts in zip(metrics, limits, added):
            counts += (every if metric.multi_contour else largest)[None, :] >= limit
    for metric, counts in zip(metrics, added):  # only once every map of the batch was valid
        metric.num_correct += counts
        metric.num_images += len(cam_list)


def max_box_acc(
    cams: Any,
    gt_boxes: Sequence[np.ndarray],
    *,
    cam_thresholds: Sequence[float] | np.ndarray = DEFAULT_CAM_THRESHOLDS,
    iou_thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS,
    multi_contour: bool = True,
) -> dict:
    """MaxBoxAcc (``multi_contour=False``) or MaxBoxAccV2 (``multi_contour=True``) as fractions in [0, 1].

    Args:
        cams (ndarray[N, H, W] | sequence of ndarray[H, W]): maps in ``[0, 1]`` of the ground-truth class.
        gt_boxes (sequence of ndarray[M_i, 4]): ground-truth boxes in each map's pixels.

    Returns:
        ``{0.3: acc, 0.5: acc, 0.7: acc, "mean": acc, "best_threshold": {0.3: tau, ...}}``.
    """
    metric = BoxAccuracy(cam_thresholds, iou_thresholds, multi_contour=multi_contour)
    return metric.update(cams, gt_boxes).compute()


def localization_accuracy(
    cams: Any,
    gt_boxes: Sequence[np.ndarray],
    class_scores: np.ndarray,
    labels: np.ndarray,
    *,
    cam_threshold: float = 0.2,
    iou_threshold: float = 0.5,
    multi_contour: bool = False,
) -> dict:
    """Classic CAM localization accuracy at one threshold, as fractions in [0, 1].

    An image is GT-known correct when the box estimated from the ground-truth class's map overlaps a
    ground-truth box with IoU >= ``iou_threshold``; top-1 (top-5) localization also needs the label to be
    the top-1 (among the top-5) predicted class. Since only the prediction of the true class can be
    correct, the ground-truth class's map is the only one needed.

    Args:
        cams (ndarray[N, H, W] | sequence of ndarray[H, W]): maps of the ground-truth class, in ``[0, 1]``.
        gt_boxes (sequence of ndarray[M_i, 4]): ground-truth boxes in each map's pixels.
        class_scores (ndarray[N, K]): classification scores (logits or probabilities).
        labels (ndarray[N]): ground-truth classes in ``[0, K)``.
        cam_threshold: relative CAM threshold (0.2 is the classic CAM rule).

    Returns:
        ``{"top1_loc", "top5_loc", "gt_known_loc", "top1_cls", "top5_cls"}`` as fractions in [0, 1].
    """
    cam_list = _iter_cams(cams)
    box_list = _iter_boxes(gt_boxes, len(cam_list))
    scores = _to_numpy(class_scores)
    labels = _to_numpy(labels).reshape(-1)
    if scores.ndim != 2 or scores.shape[0] != len(cam_list):
        raise ValueError(f"class_scores must have shape ({len(cam_list)}, K), got {scores.shape}")
    if labels.shape[0] != len(cam_list):
        raise ValueError(f"labels must have {len(cam_list)} entries, got {labels.shape[0]}")
    if not np.isfinite(scores).all():
        raise ValueError("class_scores contains NaN or infinite values")
    num_classes = scores.shape[1]
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got range [{labels.min()}, {labels.max()}]")
    if len(cam_list) == 0:
        raise ValueError("no image given")
    gt_known = np.array([
        best_ious_per_threshold(cam, boxes, [cam_threshold], multi_contour=multi_contour, name=f"cam {i}")[0]
        >= iou_threshold
        for i, (cam, boxes) in enumerate(zip(cam_list, box_list))
    ])
    ranking = np.argsort(-scores, axis=1, kind="stable")
    top1 = ranking[:, 0] == labels
    top5 = (ranking[:, : min(5, num_classes)] == labels[:, None]).any(axis=1)
    return {
        "top1_loc": float(np.mean(gt_known & top1)),
        "top5_loc": float(np.mean(gt_known & top5)),
        "gt_known_loc": float(np.mean(gt_known)),
        "top1_cls": float(np.mean(top1)),
        "top5_cls": float(np.mean(top5)),
    }
