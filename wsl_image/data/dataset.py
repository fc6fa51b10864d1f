"""A torch ``Dataset`` over :class:`~wsl_image.data.metadata.CubMetadata`."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from wsl_image.data.masks import MaskSet
from wsl_image.data.metadata import CubMetadata, check_boxes_inside
from wsl_image.data.transforms import build_transforms, resize_boxes

__all__ = ["CubDataset", "collate_boxes", "load_rgb"]


def load_rgb(path, image_id: str):
    """Decode an image file as a PIL RGB image; errors name the image id and file."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError as error:
        raise FileNotFoundError(f"image {image_id}: file not found: {path}") from error
    except Exception as error:  # PIL raises several types for corrupt files
        raise ValueError(f"image {image_id}: cannot decode {path}: {error}") from error


class CubDataset(Dataset):
    """Images of a :class:`CubMetadata` for training or evaluation.

    Args:
        meta: the images (e.g. ``load_cub(root).split("train")``).
        train: training transforms (random crop, flip) or evaluation ones (resize the whole image).
        image_size: side ``S`` of the square network input.
        crop: training crop, see :func:`~wsl_image.data.transforms.build_transforms`.
        transform: replaces the default transform (PIL RGB image -> Tensor[3, S, S]); boxes are still
            scaled to ``S x S``, so it must not crop in evaluation.
        masks: the ground-truth masks of a mask dataset (OpenImages); evaluation items then carry ``mask``.

    Each item is a dict: ``image`` (Tensor[3, S, S]), ``label`` (int), ``boxes`` (Tensor[M, 4] float32:
    ground-truth ``(x0, y0, x1, y1)`` scaled to ``S x S`` and truncated to integers in evaluation, empty
    (0, 4) in training since crops move the object), ``image_id`` (str) and ``size`` (original ``(W, H)``);
    with ``masks`` in evaluation also ``mask`` (Tensor[224, 224] uint8: 1 object, 255 ignored, 0 background).
    """

    def __init__(
        self,
        meta: CubMetadata,
        *,
        train: bool,
        image_size: int = 224,
        crop: str = "random_resized",
        transform: Callable | None = None,
        masks: MaskSet | None = None,
    ) -> None:
        if len(meta) == 0:
            raise ValueError("CubDataset: the metadata holds no image")
        self.meta = meta
        self.train = bool(train)
        self.image_size = int(image_size)
        self.masks = masks
        self.transform = transform if transform is not None else build_transforms(
            self.train, self.image_size, crop=crop
        )

    def __len__(self) -> int:
        return len(self.meta)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_id = self.meta.image_ids[index]
        image = load_rgb(self.meta.paths[index], image_id)
        size = (int(image.width), int(image.height))
        boxes = self.meta.boxes[index]
        if self.meta.sizes is not None and tuple(int(v) for v in self.meta.sizes[index]) != size:
            raise ValueError(
                f"image {image_id}: metadata says {tuple(self.meta.sizes[index])} but "
                f"{self.meta.paths[index]} is {size[0]}x{size[1]}"
            )
        if self.train:
            scaled = np.zeros((0, 4), dtype=np.float32)
        else:
            check_boxes_inside(boxes, size, f"image {image_id} ({self.meta.paths[index]})")
            scaled = resize_boxes(boxes, size, (self.image_size, self.image_size))
        item = {
            "image": self.transform(image),
            "label": int(self.meta.labels[index]),
            "boxes": torch.from_numpy(scaled),
            "image_id": image_id,
            "size": size,
        }
        if self.masks is not None and not self.train:
            item["mask"] = torch.from_numpy(self.masks.load(image_id))
        return item


def collate_boxes(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Collate :class:`CubDataset` items with a variable number of boxes.

    Returns:
        dict: ``image`` (Tensor[B, 3, S, S]), ``label`` (Tensor[B] int64), ``boxes`` (list of B
        Tensor[M_i, 4]), ``image_id`` (list of B str), ``size`` (Tensor[B, 2] int64 as ``(W, H)``) and, when
        the items have masks, ``mask`` (Tensor[B, 224, 224] uint8).
    """
    if len(batch) == 0:
        raise ValueError("collate_boxes: empty batch")
    collated = {
        "image": torch.stack([item["image"] for item in batch]),
        "label": torch.tensor([item["label"] for item in batch], dtype=torch.int64),
        "boxes": [item["boxes"] for item in batch],
        "image_id": [item["image_id"] for item in batch],
        "size": torch.tensor([item["size"] for item in batch], dtype=torch.int64),
    }
    if "mask" in batch[0]:
        collated["mask"] = torch.stack([item["mask"] for item in batch])
    return collated
