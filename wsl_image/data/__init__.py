"""Image data: CUB-200-2011 in both layouts, ILSVRC and OpenImages (boxes, masks) in the wsolevaluation layout,
the dataset and its transforms."""

from wsl_image.data.cub import load_cub
from wsl_image.data.dataset import CubDataset, collate_boxes, load_rgb
from wsl_image.data.masks import MaskSet, load_eval_mask, read_mask_set
from wsl_image.data.metadata import SPLITS, CubMetadata
from wsl_image.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_transforms,
    denormalize,
    resize_boxes,
)
from wsl_image.data.wsol_metadata import load_wsol_metadata, write_wsol_metadata

__all__ = [
    "CubDataset", "CubMetadata", "IMAGENET_MEAN", "IMAGENET_STD", "MaskSet", "SPLITS", "build_transforms",
    "collate_boxes", "denormalize", "load_cub", "load_eval_mask", "load_rgb", "load_wsol_metadata", "read_mask_set",
    "resize_boxes", "write_wsol_metadata",
]
