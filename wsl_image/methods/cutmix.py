"""CutMix (Yun et al., ICCV 2019): CAM trained on images with a box pasted from another image of the batch.

With probability ``cutmix_prob`` a batch is mixed: ``lambda ~ Beta(beta, beta)``, a box of sides
``H sqrt(1 - lambda)`` x ``W sqrt(1 - lambda)`` (truncated to pixels) centred at a uniform position and cut
at the border is copied from a permutation of the batch, ``lambda`` is recomputed as the kept fraction of
the image, and the loss is ``lambda CE(logits, y) + (1 - lambda) CE(logits, y_perm)``. Evaluation sees whole
images; the model and the maps are CAM's (any aggregator).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from .base import TunableOption
from .cam import CAM
from .registry import register_method

__all__ = ["CutMix", "MixedTargets", "cutmix_box", "cutmix_images"]


class MixedTargets(NamedTuple):
    """The targets of a mixed batch: ``labels`` (LongTensor[B]) weighted ``lam``, ``other`` weighted ``1 - lam``."""

    labels: torch.Tensor
    other: torch.Tensor
    lam: float


def cutmix_box(height: int, width: int, lam: float) -> tuple[int, int, int, int]:
    """A box ``(y0, y1, x0, x1)`` (rows ``y0:y1``, columns ``x0:x1``) covering about ``1 - lam`` of the image.

    Sides ``int(H sqrt(1 - lam))`` and ``int(W sqrt(1 - lam))``, centre ``(cy, cx)`` drawn uniformly from the
    pixels (``torch.randint``, rows first), corners ``centre -/+ side // 2`` clipped to the image.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    ratio = (1.0 - lam) ** 0.5
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy = int(torch.randint(height, ()))
    cx = int(torch.randint(width, ()))
    y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    return y0, y1, x0, x1


def cutmix_images(images: torch.Tensor, labels: torch.Tensor, beta: float) -> tuple[torch.Tensor, MixedTargets]:
    """Mix a batch: ``images`` (Tensor[B, C, H, W]) with a :func:`cutmix_box` copied from ``images[perm]``.

    Draws ``lambda ~ Beta(beta, beta)``, the permutation (``torch.randperm``) and the box from torch's global
    (CPU) RNG. Returns the mixed images (a new tensor) and :class:`MixedTargets` whose ``lam`` is the fraction
    of each image outside the box.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    concentration = torch.tensor(float(beta))
    lam = float(torch.distributions.Beta(concentration, concentration).sample())
    perm = torch.randperm(images.shape[0]).to(images.device)
    height, width = images.shape[-2:]
    y0, y1, x0, x1 = cutmix_box(height, width, lam)
    mixed = images.clone()
    mixed[:, :, y0:y1, x0:x1] = images[perm][:, :, y0:y1, x0:x1]
    lam = 1.0 - (y1 - y0) * (x1 - x0) / float(height * width)
    return mixed, MixedTargets(labels, labels[perm], lam)


@register_method("cutmix")
class CutMix(CAM):
    """CutMix: CAM trained on batches mixed by pasting boxes between images, labels mixed by area (Yun et al. 2019).

    Options (config keys, null = the default here): ``cutmix_beta`` (lambda ~ Beta(beta, beta); 0 never mixes)
    and ``cutmix_prob`` (probability that a batch is mixed).
    """

    defaults = {"cutmix_beta": 1.0, "cutmix_prob": 1.0}
    tunable = {
        "cutmix_beta": TunableOption("cutmix: lambda ~ Beta(beta, beta) (cutmix_beta)",
                                     {"low": 0.25, "high": 4.0, "log": True}),
        "cutmix_prob": TunableOption("cutmix: probability that a batch is mixed (cutmix_prob)",
                                     {"low": 0.0, "high": 1.0}),
    }

    def training_batch(self, images, labels, config: Any):
        if config.cutmix_beta > 0 and float(torch.rand(())) < config.cutmix_prob:
            return cutmix_images(images, labels, config.cutmix_beta)
        return images, labels

    def loss(self, outputs, labels, config: Any):
        if isinstance(labels, MixedTargets):
            return (labels.lam * super().loss(outputs, labels.labels, config)
                    + (1.0 - labels.lam) * super().loss(outputs, labels.other, config))
        return super().loss(outputs, labels, config)
