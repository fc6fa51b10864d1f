"""Evaluation of a :class:`~wsl_image.model.CamModel` on a CUB split (streaming, DDP-aware).

Reported as fractions in [0, 1], as the video metrics (the commands print percent): classic CAM
localization at one CAM threshold (``top1_loc``, ``top5_loc``, ``gt_known_loc``; IoU >= 0.5 with the
box of the largest contour), classification (``top1_cls``, ``top5_cls``), ``max_box_acc`` (MaxBoxAcc,
IoU 0.5, largest contour, best threshold) and ``max_box_acc_v2`` (MaxBoxAccV2: all contours, mean over
IoU 0.3 / 0.5 / 0.7) of Choe et al. (2020).
Localization maps are those of the ground-truth class (only that class can be correct).
Under ``torch.distributed`` every rank evaluates its shard and the counts are summed.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch

__all__ = ["evaluate_model", "localization_meter", "evaluate_run", "format_metrics", "LocalizationMeter",
           "ShardSampler", "METRIC_UNITS"]

METRIC_UNITS = "fractions in [0, 1] (accuracies; CAM thresholds relative to the map's maximum); tables print percent"
_LOC_KEYS = ("top1_loc", "top5_loc", "gt_known_loc", "top1_cls", "top5_cls")


class ShardSampler(torch.utils.data.Sampler):
    """Indices ``rank, rank + world, ...`` of a dataset: every item exactly once over all ranks."""

    def __init__(self, dataset_size: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = list(range(rank, dataset_size, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _stored_count(fraction: float, count: int) -> float:
    """Correct images of a batch from its accuracy, rounded through percent as metrics.json always stored them
    (so that the same run writes byte-identical files)."""
    return fraction * 100.0 * count / 100.0


def _stored_box_accuracy(metric) -> dict:
    """:meth:`BoxAccuracy.compute` accuracies (fractions) rounded through percent as metrics.json always stored
    them: ``{delta: acc, ..., "mean": acc}``."""
    percent = metric.num_correct * 100.0 / metric.num_images
    best = {delta: float(percent[row].max()) for row, delta in enumerate(metric.iou_thresholds)}
    result = {delta: value / 100.0 for delta, value in best.items()}
    result["mean"] = float(np.mean(list(best.values()))) / 100.0
    return result


class LocalizationMeter:
    """Streaming counts of every metric; ``reduce`` sums them over the ranks, ``compute`` gives fractions.

    Args:
        cam_thresholds: fixed thresholds for the classic CAM protocol (e.g. ``(0.2,)`` or ``(0.2, tau_val)``).
        iou_threshold: IoU needed for a correct box in the classic protocol.
    """

    def __init__(self, cam_thresholds: Sequence[float] = (0.2,), iou_threshold: float = 0.5) -> None:
        from wsl.metrics import BoxAccuracy

        self.cam_thresholds = tuple(float(t) for t in cam_thresholds)
        self.iou_threshold = float(iou_threshold)
        self.box_acc = BoxAccuracy(iou_thresholds=(iou_threshold,), multi_contour=False)
        self.box_acc_v2 = BoxAccuracy(multi_contour=True)
        self.loc_counts = np.zeros((len(self.cam_thresholds), len(_LOC_KEYS)), dtype=np.float64)
        self.num_images = 0

    def update(self, cams: np.ndarray, gt_boxes: Sequence[np.ndarray], scores: np.ndarray, labels: np.ndarray) -> None:
        """cams (N, H, W) true-class maps in [0, 1]; gt_boxes N x (M_i, 4); scores (N, K); labels (N,)."""
        from wsl.metrics import localization_accuracy, update_box_accuracies

        count = len(cams)
        if count == 0:
            return
        for row, threshold in enumerate(self.cam_thresholds):
            result = localization_accuracy(
                cams, gt_boxes, scores, labels, cam_threshold=threshold, iou_threshold=self.iou_threshold
            )
            self.loc_counts[row] += [_stored_count(result[key], count) for key in _LOC_KEYS]
        update_box_accuracies([self.box_acc, self.box_acc_v2], cams, gt_boxes)  # one contour search for both
        self.num_images += count

    def reduce(self) -> None:
        """Sum the counts over all ranks of the default process group (no-op without one)."""
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return
        for holder, name in (
            (self, "loc_counts"),
            (self, "num_images"),
            (self.box_acc, "num_correct"),
            (self.box_acc, "num_images"),
            (self.box_acc_v2, "num_correct"),
            (self.box_acc_v2, "num_images"),
        ):
            value = getattr(holder, name)
            array = np.asarray(value)
            tensor = torch.from_numpy(np.array(array, dtype=np.float64))
            backend = torch.distributed.get_backend()
            device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
            tensor = tensor.to(device)
            torch.distributed.all_reduce(tensor)
            reduced = tensor.cpu().numpy().astype(array.dtype)
            setattr(holder, name, reduced if array.ndim else reduced.item())

    def compute(self) -> dict:
        """Metrics as fractions in [0, 1]; ``at_threshold`` holds the classic protocol at every fixed threshold."""
        if self.num_images == 0:
            raise ValueError("no image was evaluated")
        per_threshold = {
            threshold: {
                key: float(self.loc_counts[row, col] / self.num_images) for col, key in enumerate(_LOC_KEYS)
            }
            for row, threshold in enumerate(self.cam_thresholds)
        }
        v1 = _stored_box_accuracy(self.box_acc)
        v2 = _stored_box_accuracy(self.box_acc_v2)
        metrics = dict(per_threshold[self.cam_thresholds[0]])
        metrics["max_box_acc"] = v1[self.iou_threshold]
        metrics["max_box_acc_v2"] = v2["mean"]
        metrics["max_box_acc_v2_per_iou"] = {str(k): v2[k] for k in self.box_acc_v2.iou_thresholds}
        metrics["max_box_acc_threshold"] = self.box_acc.compute()["best_threshold"][self.iou_threshold]
        metrics["num_images"] = int(self.num_images)
        metrics["at_threshold"] = {f"{threshold:g}": values for threshold, values in per_threshold.items()}
        return metrics


@torch.no_grad()
def localization_meter(
    model: torch.nn.Module,
    batches: Iterable[dict],
    *,
    device: torch.device | str = "cpu",
    cam_thresholds: Sequence[float] = (0.2,),
    iou_threshold: float = 0.5,
    amp: bool = False,
    progress: bool = False,
    description: str = "evaluate",
    maps_dir=None,
) -> LocalizationMeter:
    """The :class:`LocalizationMeter` of ``model`` (a CamModel, possibly DDP-wrapped) over batches of
    ``wsl_image.data.collate_boxes``, summed over ranks under torch.distributed; its ``box_acc`` and
    ``box_acc_v2`` hold the accuracy at every CAM threshold (``curves()``). With ``maps_dir`` the maps are
    also saved there at 224 x 224 as ``<image_id>.npy`` (the input of ``wsl-image evaluate-maps``)."""
    from tqdm import tqdm

    model = getattr(model, "module", model)
    was_training = model.training
    model.eval()
    device = torch.device(device)
    meter = LocalizationMeter(cam_thresholds, iou_threshold)
    for batch in tqdm(batches, desc=description, disable=not progress, leave=False):
        images = batch["image"].to(device, non_blocking=True)
        labels = batch["label"].to(device)
        with torch.autocast(device_type=device.type, enabled=amp and device.type == "cuda"):
            logits, maps = model.localize(images, classes=labels)
        if maps_dir is not None:
            from wsl_image.mask_evaluation import eval_size_maps, save_score_maps

            save_score_maps(maps_dir, batch["image_id"], eval_size_maps(maps[:, 0].float()).cpu().numpy())
        meter.update(
            maps[:, 0].float().cpu().numpy(),
            [np.asarray(boxes, dtype=np.float64).reshape(-1, 4) for boxes in batch["boxes"]],
            logits.float().cpu().numpy(),
            labels.cpu().numpy(),
        )
    model.train(was_training)
    meter.reduce()
    return meter


def evaluate_model(
    model: torch.nn.Module,
    batches: Iterable[dict],
    *,
    device: torch.device | str = "cpu",
    cam_thresholds: Sequence[float] = (0.2,),
    iou_threshold: float = 0.5,
    amp: bool = False,
    progress: bool = False,
    description: str = "evaluate",
    maps_dir=None,
) -> dict:
    """Evaluate ``model`` (a CamModel, possibly DDP-wrapped) on batches of ``wsl_image.data.collate_boxes``.

    Returns the dict of :meth:`LocalizationMeter.compute` (summed over ranks under torch.distributed).
    """
    return localization_meter(model, batches, device=device, cam_thresholds=cam_thresholds,
                              iou_threshold=iou_threshold, amp=amp, progress=progress,
                              description=description, maps_dir=maps_dir).compute()


def evaluate_run(
    model: torch.nn.Module,
    config,
    splits: dict,
    *,
    device: torch.device,
    rank: int = 0,
    world_size: int = 1,
    split: str = "test",
    progress: bool = True,
    maps_dir=None,
) -> dict:
    """Metrics of ``model`` on ``splits[split]`` at ``config.cam_threshold`` and, when ``splits["val"]``
    exists, at the threshold chosen on it (best MaxBoxAcc at ``config.iou_threshold``); on a mask dataset
    (OpenImages) PxAP, PIoU and classification instead (:mod:`wsl_image.mask_evaluation`).

    ``splits`` as returned by ``wsl_image.data.splits.build_splits``; under torch.distributed each of the
    ``world_size`` ranks evaluates its shard and all get the summed metrics. ``maps_dir``: also save the
    evaluated maps there (224 x 224 ``<image_id>.npy``).
    """
    if split not in splits or splits[split] is None:
        raise ValueError(f"the data has no {split} split")
    batch_size = config.eval_batch_size or config.batch_size
    use_amp = config.amp and device.type == "cuda"

    from wsl_image.data import collate_boxes

    def loader(dataset):
        sampler = ShardSampler(len(dataset), rank, world_size)
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=config.workers,
            collate_fn=collate_boxes,
        )

    if getattr(config, "dataset", "CUB") == "OpenImages":
        from wsl_image.mask_evaluation import mask_meter

        if getattr(splits[split], "masks", None) is None:
            raise ValueError(f"the {split} split of {config.dataset} has no masks to evaluate against")
        metrics = mask_meter(model, loader(splits[split]), device=device, amp=use_amp,
                             progress=progress and rank == 0, description=split, maps_dir=maps_dir).compute()
        metrics.update(split=split, dataset=config.dataset, threshold_note=splits.get("val_note", ""),
                       aggregator=config.aggregator,
                       cam_score=getattr(model, "module", model).resolved_cam_score, backbone=config.backbone,
                       grid=config.grid, units=METRIC_UNITS)
        return metrics
    val_threshold = None
    if splits.get("val") is not None and split != "val":
        val_metrics = evaluate_model(
            model,
            loader(splits["val"]),
            device=device,
            cam_thresholds=(config.cam_threshold,),
            iou_threshold=config.iou_threshold,
            amp=use_amp,
            progress=progress and rank == 0,
            description="val",
        )
        val_threshold = float(val_metrics["max_box_acc_threshold"])
    thresholds = (config.cam_threshold,) if val_threshold is None else (config.cam_threshold, val_threshold)
    metrics = evaluate_model(
        model,
        loader(splits[split]),
        device=device,
        cam_thresholds=thresholds,
        iou_threshold=config.iou_threshold,
        amp=use_amp,
        progress=progress and rank == 0,
        description=split,
        maps_dir=maps_dir,
    )
    at_val = metrics["at_threshold"][f"{val_threshold:g}"] if val_threshold is not None else None
    metrics.update(
        split=split,
        cam_threshold=config.cam_threshold,
        iou_threshold=config.iou_threshold,
        val_cam_threshold=val_threshold,
        at_val_threshold=at_val,
        threshold_note=splits.get("val_note", ""),
        aggregator=config.aggregator,
        cam_score=getattr(model, "module", model).resolved_cam_score,
        backbone=config.backbone,
        grid=config.grid,
        units=METRIC_UNITS,
    )
    return metrics


def format_metrics(metrics: dict) -> str:
    """One-line summary of the main metrics, in percent."""
    if "pxap" in metrics:
        parts = [f"{name} {100 * metrics[key]:.2f}"
                 for name, key in (("PxAP", "pxap"), ("PIoU", "piou"), ("top1_cls", "top1_cls"),
                                   ("top5_cls", "top5_cls"))]
        return f"{metrics.get('split', 'test')} (%): " + "  ".join(parts)
    parts = [
        f"{key} {100 * metrics[key]:.2f}"
        for key in (
            "top1_loc",
            "top5_loc",
            "gt_known_loc",
            "max_box_acc",
            "max_box_acc_v2",
            "top1_cls",
            "top5_cls",
        )
    ]
    return f"{metrics.get('split', 'test')} (%): " + "  ".join(parts)
