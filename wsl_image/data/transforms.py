"""Image transforms and box rescaling for CUB-style training and evaluation."""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "CROP_MODES", "build_transforms", "resize_boxes", "denormalize",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_MODES = ("random_resized", "resize_random", "none")


def build_transforms(
    train: bool,
    image_size: int = 224,
    *,
    crop: str = "random_resized",
    scale: tuple[float, float] = (0.25, 1.0),
):
    """torchvision transforms from a PIL RGB image to a normalised tensor (3, S, S).

    Training (``train=True``), by ``crop``:

    * ``"random_resized"``: ``RandomResizedCrop(S, scale)`` (default),
    * ``"resize_random"``: resize to ``(S * 8 / 7)`` squared then ``RandomCrop(S)`` (256 -> 224, as in
      the wsolevaluation recipe),
    * ``"none"``: resize the whole image to ``S x S``;

    then a random horizontal flip and ImageNet normalisation. Evaluation resizes the whole image to
    ``S x S`` (no crop, so ground-truth boxes only need scaling) and normalises.
    """
    from torchvision import transforms as T

    if image_size < 8:
        raise ValueError(f"image_size must be >= 8, got {image_size}")
    if crop not in CROP_MODES:
        raise ValueError(f"unknown crop {crop!r}; expected one of {', '.join(CROP_MODES)}")
    finish = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if not train:
        return T.Compose([T.Resize((image_size, image_size)), *finish])
    if crop == "random_resized":
        geometry = [T.RandomResizedCrop(image_size, scale=scale)]
    elif crop == "resize_random":
        resize = int(round(image_size * 8 / 7))
        geometry = [T.Resize((resize, resize)), T.RandomCrop(image_size)]
    else:
        geometry = [T.Resize((image_size, image_size))]
    return T.Compose([*geometry, T.RandomHorizontalFlip(), *finish])


def resize_boxes(boxes: np.ndarray, size: Sequence[int], new_size: Sequence[int]) -> np.ndarray:
    """Scale ``(x0, y0, x1, y1)`` boxes from an image of ``size`` to one of ``new_size``.

    Coordinates are truncated to integers after scaling, as the wsolevaluation protocol does for its
    224 x 224 ground truth.

    Args:
        boxes (ndarray[M, 4]): boxes in the original image.
        size: ``(width, height)`` of the original image.
        new_size: ``(width, height)`` of the resized image.

    Returns:
        ndarray[M, 4] float32 holding integer values.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    width, height = (float(v) for v in size)
    new_width, new_height = (float(v) for v in new_size)
    if width <= 0 or height <= 0 or new_width <= 0 or new_height <= 0:
        raise ValueError(f"image sizes must be positive, got {tuple(size)} -> {tuple(new_size)}")
    factors = np.array([new_width / width, new_height / height, new_width / width, new_height / height])
    return np.trunc(boxes * factors).astype(np.float32)


def denormalize(image):
    """Undo ImageNet normalisation: Tensor[..., 3, H, W] -> values in ``[0, 1]``."""
    import torch

    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image * std + mean).clamp(0.0, 1.0)
