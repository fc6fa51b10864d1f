"""The datasets of a ``wsl-image`` run: train / test and the val split that chooses the CAM threshold.

CUB comes in the official layout or the wsolevaluation metadata; ILSVRC and OpenImages in the wsolevaluation
metadata (``metadata/<dataset>/{train,val,test}``), OpenImages with the masks of its val and test splits.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wsl_image.config import TrainConfig

__all__ = ["build_splits", "check_wsol_paths", "dataset_metadata", "MASK_DATASETS"]

MASK_DATASETS = ("OpenImages",)


def check_wsol_paths(config: Any) -> None:
    """ValueError unless an ILSVRC / OpenImages run names its image folder and its metadata folder."""
    dataset = config.dataset
    if not config.data_root:
        raise ValueError(f"--data-root is required (the {dataset} image folder the metadata's image ids are "
                         "relative to)")
    if not config.metadata:
        raise ValueError(f"--metadata is required for --dataset {dataset} (the wsolevaluation metadata folder)")


def dataset_metadata(metadata: str | Path, dataset: str) -> Path:
    """The metadata folder of ``dataset``: ``metadata/<dataset>`` when it exists, else ``metadata`` itself."""
    root = Path(metadata)
    if not root.is_dir():
        raise FileNotFoundError(f"metadata folder not found: {root}")
    return root / dataset if (root / dataset).is_dir() else root


def build_splits(config: TrainConfig) -> dict:
    """Datasets of the run: ``{"train", "test", "val" (or None), "num_classes", "class_names", "val_note"}``.

    Every metadata file, and for OpenImages every mask file's header, is checked here, before a run writes
    anything; errors name the file and line.
    """
    if config.proxy_train and config.dataset != "ILSVRC":
        raise ValueError(f"--proxy-train applies to ILSVRC only, not {config.dataset}")
    if config.mask_root and config.dataset not in MASK_DATASETS:
        raise ValueError(f"--mask-root applies to OpenImages only, not {config.dataset}")
    if config.dataset != "CUB":
        return _wsol_splits(config)
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


def _wsol_splits(config: TrainConfig) -> dict:
    """ILSVRC / OpenImages in the wsolevaluation layout."""
    from wsl_image.data.dataset import CubDataset
    from wsl_image.data.masks import read_mask_set
    from wsl_image.data.wsol_metadata import load_wsol_metadata

    dataset = config.dataset
    check_wsol_paths(config)
    if config.val_per_class:
        raise ValueError(f"--val-per-class applies to CUB only: {dataset} has its own val split")
    root = Path(config.data_root)
    if not root.is_dir():
        raise FileNotFoundError(f"data root not found: {root}")
    folder = dataset_metadata(config.metadata, dataset)
    masks = dataset in MASK_DATASETS
    meta = load_wsol_metadata(folder, root, proxy_train=config.proxy_train, boxes=not masks)
    size = config.image_size
    result = {"num_classes": meta.num_classes, "class_names": list(meta.class_names)}
    mask_root = None
    if masks:
        from wsl_image.evaluate_maps import mask_folder

        mask_root = mask_folder(config.mask_root or config.data_root)
    for name in ("train", "val", "test"):
        if name not in meta.available_splits():
            if name == "val":
                result["val"] = None
                continue
            raise FileNotFoundError(f"{folder / name}: the {name} split of the {dataset} metadata is missing")
        part = meta.split(name)
        mask_set = None
        if masks and name != "train":
            mask_set = read_mask_set(folder / name, mask_root, part.image_ids)
        result[name] = CubDataset(part, train=name == "train", image_size=size, masks=mask_set)
    if masks:
        result["val_note"] = "PxAP and PIoU need no fixed CAM threshold (PIoU takes the best one on the split)"
    elif result["val"] is None:
        result["val_note"] = f"metadata {folder} has no val split: the fixed CAM threshold is used"
    else:
        result["val_note"] = "CAM threshold chosen on the val split (best MaxBoxAcc at IoU 0.5)"
    return result
