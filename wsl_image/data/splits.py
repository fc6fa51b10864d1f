"""The datasets of a ``wsl-image`` run: CUB train / test and the val split that chooses the CAM threshold."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wsl_image.config import TrainConfig

__all__ = ["build_splits"]


def build_splits(config: TrainConfig) -> dict:
    """Datasets of the run: ``{"train", "test", "val" (or None), "num_classes", "val_note"}``."""
    from wsl_image.data.cub import load_cub
    from wsl_image.data.dataset import CubDataset
    from wsl_image.data.wsol_metadata import load_wsol_metadata

    root = Path(config.data_root)
    if not config.data_root:
        raise ValueError("--data-root is required (the CUB_200_2011 folder)")
    if not root.is_dir():
        raise FileNotFoundError(f"data root not found: {root}")
    if config.metadata:
        image_root = root / "images" if (root / "images").is_dir() else root
        meta = load_wsol_metadata(config.metadata, image_root)
    else:
        meta = load_cub(root)
    held_out = False
    if config.val_per_class:
        if "val" in meta.available_splits():
            raise ValueError(f"metadata {config.metadata} already has a val split; drop --val-per-class")
        meta = meta.holdout_val(config.val_per_class, seed=config.seed)
        held_out = True
    train_meta = meta.split("train")
    test_meta = meta.split("test")
    val_meta = None
    val_note = "no validation split (CUB train/test split only): the fixed CAM threshold is used"
    if held_out:
        val_meta = meta.split("val")
        val_note = (
            f"CAM threshold chosen on {config.val_per_class} training image(s) per class held out as a val split "
            "(best MaxBoxAcc at IoU 0.5)"
        )
    elif config.metadata:
        try:
            val_meta = meta.split("val")
        except (KeyError, ValueError):
            val_meta = None
        if val_meta is not None and len(val_meta) == 0:
            val_meta = None
        if val_meta is None:
            val_note = f"metadata {config.metadata} has no val split: the fixed CAM threshold is used"
        else:
            val_note = "CAM threshold chosen on the val split (best MaxBoxAcc at IoU 0.5)"
    num_classes = meta.num_classes
    size = config.image_size
    return {
        "train": CubDataset(train_meta, train=True, image_size=size),
        "test": CubDataset(test_meta, train=False, image_size=size),
        "val": None if val_meta is None else CubDataset(val_meta, train=False, image_size=size),
        "num_classes": num_classes,
        "class_names": list(meta.class_names),
        "val_note": val_note,
    }
