"""Evaluation of a :class:`~wsl_image.model.CamModel` on a mask dataset (OpenImages): PxAP and PIoU.

The localization map of the ground-truth class is taken at the 224 x 224 evaluation size (bilinear from the
network input size when that differs, clipped to [0, 1]) and scored against the mask of
:func:`wsl_image.data.masks.load_eval_mask` by :class:`wsl.metrics.pixel.PixelPrecisionRecall`, as the
benchmark's ``MaskEvaluator`` does. Classification (``top1_cls``, ``top5_cls``) is reported beside them.
All numbers are fractions in [0, 1]. Under ``torch.distributed`` the histograms and counts are summed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from wsl.metrics.pixel import PixelPrecisionRecall
from wsl_image.data.masks import EVAL_SIZE

__all__ = ["MaskMeter", "mask_meter", "eval_size_maps", "save_score_maps"]


def eval_size_maps(maps: torch.Tensor, size: int = EVAL_SIZE) -> torch.Tensor:
    """maps (B, H, W) in [0, 1] -> (B, size, size): bilinear when H, W differ from ``size``, clipped to [0, 1]."""
    if tuple(maps.shape[-2:]) == (size, size):
        return maps
    resized = F.interpolate(maps[:, None].float(), size=(size, size), mode="bilinear", align_corners=False)
    return resized[:, 0].clamp(0.0, 1.0)


def save_score_maps(folder: str | Path, image_ids: Iterable[str], maps: np.ndarray) -> None:
    """Write each map (ndarray[size, size] float32) as ``folder/<image_id>.npy`` (atomically), the layout that
    ``wsl-image evaluate-maps`` reads."""
    from wsl.utils.io import atomic_writer

    folder = Path(folder)
    for image_id, score_map in zip(image_ids, maps):
        with atomic_writer(folder / f"{image_id}.npy", "wb") as handle:
            np.save(handle, np.asarray(score_map, dtype=np.float32), allow_pickle=False)


class MaskMeter:
    """Streaming PxAP / PIoU histograms and classification counts; ``reduce`` sums over ranks."""

    def __init__(self, curve_interval: float = 0.01) -> None:
        self.pixels = PixelPrecisionRecall(curve_interval)
        self.top1 = 0
        self.top5 = 0
        self.num_images = 0

    def update(self, maps: np.ndarray, masks: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> None:
        """maps (N, 224, 224) true-class maps in [0, 1]; masks (N, 224, 224) uint8; scores (N, K); labels (N,)."""
        if len(maps) == 0:
            return
        self.pixels.update(maps, masks)
        ranked = np.argsort(-scores, axis=1, kind="stable")
        self.top1 += int((ranked[:, 0] == labels).sum())
        self.top5 += int((ranked[:, : min(5, scores.shape[1])] == labels[:, None]).any(axis=1).sum())
        self.num_images += len(maps)

    def reduce(self) -> None:
        """Sum over all ranks of the default process group (no-op without one)."""
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return
        backend = torch.distributed.get_backend()
        device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
        flat = np.concatenate([self.pixels.foreground, self.pixels.background,
                               [self.top1, self.top5, self.num_images]]).astype(np.int64)
        tensor = torch.from_numpy(flat).to(device)
        torch.distributed.all_reduce(tensor)
        flat = tensor.cpu().numpy()
        bins = len(self.pixels.foreground)
        self.pixels.foreground = flat[:bins].copy()
        self.pixels.background = flat[bins:2 * bins].copy()
        self.top1, self.top5, self.num_images = (int(v) for v in flat[2 * bins:])

    def compute(self) -> dict:
        """``pxap``, ``piou``, ``piou_threshold``, ``top1_cls``, ``top5_cls``, ``num_images`` (fractions)."""
        if self.num_images == 0:
            raise ValueError("no image was evaluated")
        return {
            **self.pixels.compute(),
            "top1_cls": self.top1 / self.num_images,
            "top5_cls": self.top5 / self.num_images,
            "num_images": int(self.num_images),
        }


@torch.no_grad()
def mask_meter(
    model: torch.nn.Module,
    batches: Iterable[dict],
    *,
    device: torch.device | str = "cpu",
    amp: bool = False,
    progress: bool = False,
    description: str = "evaluate",
    maps_dir: str | Path | None = None,
) -> MaskMeter:
    """The :class:`MaskMeter` of ``model`` over batches of ``collate_boxes`` that carry ``mask``; with
    ``maps_dir`` the 224 x 224 maps are also saved there as ``<image_id>.npy``."""
    from tqdm import tqdm

    model = getattr(model, "module", model)
    was_training = model.training
    model.eval()
    device = torch.device(device)
    meter = MaskMeter()
    for batch in tqdm(batches, desc=description, disable=not progress, leave=False):
        if "mask" not in batch:
            raise ValueError("the evaluated split has no masks")
        images = batch["image"].to(device, non_blocking=True)
        labels = batch["label"].to(device)
        with torch.autocast(device_type=device.type, enabled=amp and device.type == "cuda"):
            logits, maps = model.localize(images, classes=labels)
        maps = eval_size_maps(maps[:, 0].float()).cpu().numpy()
        if maps_dir is not None:
            save_score_maps(maps_dir, batch["image_id"], maps)
        meter.update(maps, batch["mask"].numpy(), logits.float().cpu().numpy(), labels.cpu().numpy())
    model.train(was_training)
    meter.reduce()
    return meter
