"""Hide-and-Seek (Singh & Lee, ICCV 2017): CAM trained on images with random grid patches hidden.

Each training image is cut into a grid of ``s x s`` pixel patches, ``s`` drawn per image from
``has_patch_sizes`` (0: the image is left whole), and every patch is hidden with probability
``has_hide_prob``: its pixels are set to 0 in the normalised input, i.e. to the normalisation mean.
Evaluation sees whole images; the model and the maps are CAM's (any aggregator).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from .base import TunableOption
from .cam import CAM
from .registry import register_method

__all__ = ["HideAndSeek", "hide_patches"]


def hide_patches(images: torch.Tensor, patch_sizes: Sequence[int], hide_prob: float) -> torch.Tensor:
    """``images`` with random grid patches set to 0 (a new tensor).

    For each image in turn, draws from torch's global (CPU) RNG: the index of its patch side ``s`` in
    ``patch_sizes`` (``torch.randint``), then, when ``s > 0``, one uniform number per patch of the
    ``ceil(H / s) x ceil(W / s)`` grid (``torch.rand``, row-major); a patch is hidden when its number is
    ``< hide_prob``. Patches on the right and bottom edges are cut at the image border.

    Args:
        images (Tensor[B, C, H, W]): normalised images.
        patch_sizes: patch sides in pixels, >= 0.
        hide_prob: probability that a patch is hidden, in [0, 1].

    Returns:
        Tensor[B, C, H, W].
    """
    if images.dim() != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    sizes = [int(size) for size in patch_sizes]
    if not sizes or min(sizes) < 0:
        raise ValueError(f"patch_sizes must be a non-empty list of sides >= 0, got {list(patch_sizes)}")
    if not 0.0 <= hide_prob <= 1.0:
        raise ValueError(f"hide_prob must be in [0, 1], got {hide_prob}")
    height, width = images.shape[-2:]
    keep = torch.ones(images.shape[0], 1, height, width, dtype=torch.bool)
    for index in range(images.shape[0]):
        side = sizes[int(torch.randint(len(sizes), ()))]
        if side == 0:
            continue
        hidden = torch.rand(math.ceil(height / side), math.ceil(width / side)) < hide_prob
        pixels = hidden.repeat_interleave(side, 0)[:height].repeat_interleave(side, 1)[:, :width]
        keep[index, 0] = ~pixels
    return images * keep.to(device=images.device, dtype=images.dtype)


@register_method("has")
class HideAndSeek(CAM):
    """Hide-and-Seek: CAM trained on images with random grid patches hidden (Singh & Lee, ICCV 2017).

    Options (config keys, null = the default here): ``has_patch_sizes`` (patch sides in pixels, one drawn per
    image; 0 hides nothing) and ``has_hide_prob`` (probability that a patch is hidden).
    """

    defaults = {"has_patch_sizes": [0, 16, 32, 44, 56], "has_hide_prob": 0.5}
    tunable = {
        "has_hide_prob": TunableOption("has: probability that a patch is hidden (has_hide_prob)",
                                       {"low": 0.0, "high": 1.0}),
        "has_patch_sizes": TunableOption("has: patch sides in pixels, one drawn per image (has_patch_sizes)",
                                         numeric=False),
    }

    def training_batch(self, images, labels, config: Any):
        return hide_patches(images, config.has_patch_sizes, config.has_hide_prob), labels
