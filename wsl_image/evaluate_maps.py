"""Score saved score maps the way the WSOL benchmark's evaluation command does.

Given ``<image_id>.npy`` files (ndarray[224, 224] in [0, 1], one per image of the split, named by
appending ``.npy`` to the image id) and the wsolevaluation metadata of the split:

* box datasets (``CUB``, ``ILSVRC``): the ground-truth boxes are scaled to the 224 x 224 map (coordinates
  truncated to integers, as the benchmark does) and the maps give MaxBoxAcc (largest contour, IoU 0.5)
  and MaxBoxAccV2 (all contours, mean over IoU 0.3 / 0.5 / 0.7);
* mask datasets (``OpenImages``): PxAP and PIoU against the masks (:mod:`wsl_image.data.masks`).

All numbers are fractions; printing alone scales them to percent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np

from wsl.metrics.pixel import PixelPrecisionRecall, curve_thresholds
from wsl_image.data.masks import EVAL_SIZE, load_eval_mask, read_mask_localization
from wsl_image.data.metadata import read_lines

__all__ = ["evaluate_score_maps", "split_folder", "mask_folder", "read_score_map", "DATASETS", "BOX_DATASETS"]

BOX_DATASETS = ("CUB", "ILSVRC")
MASK_BATCH = 256  # score maps per PixelPrecisionRecall.update (as benchmarks/wsol_evaluator.py times it)
DATASETS = (*BOX_DATASETS, "OpenImages")


def split_folder(metadata: str | Path, dataset: str, split: str) -> Path:
    """``metadata/<dataset>/<split>`` as in the benchmark, or ``metadata`` itself when it holds image_ids.txt."""
    root = Path(metadata)
    if (root / "image_ids.txt").is_file():
        return root
    folder = root / dataset / split
    if not (folder / "image_ids.txt").is_file():
        raise FileNotFoundError(f"{folder}: no image_ids.txt (expected the metadata of {dataset} {split} there)")
    return folder


def mask_folder(mask_root: str | Path) -> Path:
    """The folder mask paths are relative to: ``mask_root/OpenImages`` when it exists, else ``mask_root``."""
    root = Path(mask_root)
    if not root.is_dir():
        raise FileNotFoundError(f"mask root not found: {root}")
    return root / "OpenImages" if (root / "OpenImages").is_dir() else root


def read_score_map(path: Path, size: int = EVAL_SIZE) -> np.ndarray:
    """One score map: a numeric ndarray[size, size] with finite values in [0, 1], else ``ValueError`` naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"score map not found: {path}")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise ValueError(f"{path}: not a numeric .npy array") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        raise ValueError(f"{path}: not a numeric .npy array")
    if array.shape != (size, size):
        raise ValueError(f"{path}: score map of shape {array.shape}, expected ({size}, {size})")
    array = array.astype(np.float64, copy=False)
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise ValueError(f"{path}: score map values must be finite and lie in [0, 1]")
    return array


BOX_BATCH = 64
"""Score maps evaluated together (threads over the maps of a batch)."""


def _image_ids(folder: Path) -> list[str]:
    path = folder / "image_ids.txt"
    ids, seen = [], set()
    for number, line in read_lines(path, "image_ids.txt"):
        if "," in line:
            raise ValueError(f"{path}:{number}: malformed line {line!r}; expected '<path>'")
        if line in seen:
            raise ValueError(f"{path}:{number}: image {line!r} appears twice")
        seen.add(line)
        ids.append(line)
    if not ids:
        raise ValueError(f"{path}: no image listed")
    return ids


def _resized_boxes(folder: Path) -> Iterator[tuple[str, np.ndarray]]:
    from wsl_image.data.wsol_metadata import load_wsol_metadata

    meta = load_wsol_metadata(folder, folder, verify_images=False)
    if meta.sizes is None:
        raise FileNotFoundError(f"{folder / 'image_sizes.txt'} is missing: boxes cannot be scaled to the score maps")
    for image_id, boxes, (width, height) in zip(meta.image_ids, meta.boxes, meta.sizes):
        scale = np.array([EVAL_SIZE / width, EVAL_SIZE / height] * 2)
        yield image_id, np.trunc(boxes * scale)


def evaluate_score_maps(scoremaps: str | Path, metadata: str | Path, dataset: str, split: str = "test", *,
                        mask_root: str | Path | None = None, curve_interval: float = 0.01,
                        iou_thresholds: tuple[float, ...] = (0.3, 0.5, 0.7)) -> dict[str, Any]:
    """Metrics of the score maps under ``scoremaps`` for ``dataset`` / ``split`` (fractions).

    Returns:
        box datasets: ``max_box_acc`` (IoU 0.5), ``max_box_acc_v2``, ``max_box_acc_v2_per_iou``,
        ``max_box_acc_threshold``; mask datasets: ``pxap``, ``piou``, ``piou_threshold``; both ``num_images``.
    """
    from wsl.metrics import BoxAccuracy, update_box_accuracies

    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    scoremaps = Path(scoremaps)
    if not scoremaps.is_dir():
        raise FileNotFoundError(f"score map folder not found: {scoremaps}")
    folder = split_folder(metadata, dataset, split)
    thresholds = curve_thresholds(curve_interval)
    if dataset in BOX_DATASETS:
        if 0.5 not in iou_thresholds:
            raise ValueError("iou_thresholds must include 0.5 (MaxBoxAcc is reported there)")
        largest = BoxAccuracy(thresholds, iou_thresholds, multi_contour=False)
        every = BoxAccuracy(thresholds, iou_thresholds, multi_contour=True)
        count = 0
        batch_maps: list[np.ndarray] = []
        batch_boxes: list[np.ndarray] = []
        for image_id, boxes in _resized_boxes(folder):
            batch_maps.append(read_score_map(scoremaps / f"{image_id}.npy"))
            batch_boxes.append(boxes)
            count += 1
            if len(batch_maps) == BOX_BATCH:  # a batch is swept on all cores; both metrics from one sweep
                update_box_accuracies([largest, every], batch_maps, batch_boxes)
                batch_maps, batch_boxes = [], []
        if batch_maps:
            update_box_accuracies([largest, every], batch_maps, batch_boxes)
        first, second = largest.compute(), every.compute()
        return {
            "max_box_acc": first[0.5],
            "max_box_acc_v2": second["mean"],
            "max_box_acc_v2_per_iou": {str(delta): second[delta] for delta in iou_thresholds},
            "max_box_acc_threshold": first["best_threshold"][0.5],
            "num_images": count,
        }
    if mask_root is None:
        raise ValueError("mask evaluation needs the mask root (--mask-root)")
    root = mask_folder(mask_root)
    image_ids = _image_ids(folder)
    entries = read_mask_localization(folder / "localization.txt", image_ids)
    metric = PixelPrecisionRecall(curve_interval)
    # maps and masks are read into batches: one update per MASK_BATCH maps (the compiled kernel splits a
    # batch between numba's threads, see wsl.metrics.pixel)
    maps = np.empty((min(MASK_BATCH, len(image_ids)), EVAL_SIZE, EVAL_SIZE), dtype=np.float64)
    masks = np.empty(maps.shape, dtype=np.uint8)
    filled = 0
    for image_id in image_ids:
        masks[filled] = load_eval_mask(root, entries[image_id], image_id, folder / "localization.txt")
        maps[filled] = read_score_map(scoremaps / f"{image_id}.npy")
        filled += 1
        if filled == len(maps):
            metric.update(maps, masks)
            filled = 0
    if filled:
        metric.update(maps[:filled], masks[:filled])
    return {**metric.compute(), "num_images": len(image_ids)}

