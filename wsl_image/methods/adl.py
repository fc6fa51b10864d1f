"""Attention-based Dropout Layer (Choe & Shim, CVPR 2019): CAM with ADL layers inside the backbone.

An ADL layer takes a feature map f (B, C, h, w) in training only: the self-attention is the channel mean
``a = mean_c f`` (B, 1, h, w); the *drop mask* is 0 where ``a >= gamma * max(a)`` (per image) and 1 elsewhere;
the *importance map* is ``sigmoid(a)``. Each forward draws once, for the whole batch, whether the layer
multiplies f by the drop mask (probability ``drop_rate``) or by the importance map. In evaluation it is the
identity. The layers have no parameters, so the model's weights are CAM's.

Insertion points (after the output of these backbone modules; ``adl_layers`` overrides them):

* timm ResNets (``timm.models.resnet.ResNet``): ``layer3.0``, ``layer4.0`` and the last block of ``layer4``
  (ResNet50: ``layer4.2``), as the WSOL benchmark of Choe et al. (CVPR 2020) places them in ResNet50;
* timm VGGs (``timm.models.vgg.VGG``): after the third max-pool and after the last ReLU before the fourth and
  the fifth max-pool (VGG16: ``features.16``, ``features.22``, ``features.29``), the benchmark's VGG16 places;
* timm Inception-v3: ``Mixed_5d`` and ``Mixed_6e`` as in the benchmark, and ``Mixed_7c`` in place of the
  benchmark's third layer (after its added convolution head, which timm's model does not have);
* any other timm backbone: the modules of the last two entries of ``backbone.feature_info`` (the outputs of
  the two last stages). The modules must output feature maps (B, C, h, w); token outputs are refused.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import TunableOption
from .cam import CAM
from .registry import register_method

__all__ = ["ADL", "AttentionDropout", "adl_insertion_points", "insert_adl"]


class AttentionDropout(nn.Module):
    """The ADL layer: Tensor[B, C, h, w] -> the same shape (identity in eval mode); see the module docstring.

    Args:
        drop_rate: probability of the drop-mask branch per forward, in [0, 1].
        threshold: gamma: positions with attention ``>= gamma * max`` are dropped, in [0, 1].
    """

    def __init__(self, drop_rate: float = 0.75, threshold: float = 0.9) -> None:
        super().__init__()
        if not 0.0 <= drop_rate <= 1.0:
            raise ValueError(f"drop_rate must be in [0, 1], got {drop_rate}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.drop_rate = float(drop_rate)
        self.threshold = float(threshold)

    def drop_mask(self, attention: torch.Tensor) -> torch.Tensor:
        """attention (B, 1, h, w) -> 0/1 mask (B, 1, h, w): 0 where ``attention >= threshold * max``."""
        peak = attention.flatten(1).max(dim=1).values.view(-1, 1, 1, 1)
        return (attention < self.threshold * peak).to(attention.dtype)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() != 4:
            raise ValueError(f"ADL needs feature maps (B, C, h, w), got shape {tuple(features.shape)}")
        if not self.training:
            return features
        attention = features.mean(dim=1, keepdim=True)
        if float(torch.rand(())) < self.drop_rate:
            return features * self.drop_mask(attention)
        return features * torch.sigmoid(attention)

    def extra_repr(self) -> str:
        return f"drop_rate={self.drop_rate}, threshold={self.threshold}"


def adl_insertion_points(backbone: nn.Module) -> list[str]:
    """Names (of ``backbone.named_modules()``) whose outputs go through an ADL layer; the rule of the module
    docstring."""
    from timm.models.inception_v3 import InceptionV3
    from timm.models.resnet import ResNet
    from timm.models.vgg import VGG

    if isinstance(backbone, ResNet):
        names = ["layer3.0", "layer4.0", f"layer4.{len(backbone.layer4) - 1}"]
    elif isinstance(backbone, VGG):
        pools = [index for index, layer in enumerate(backbone.features) if isinstance(layer, nn.MaxPool2d)]
        if len(pools) < 5:
            raise ValueError(f"expected 5 max-pools in the VGG features, found {len(pools)}; set adl_layers")
        names = [f"features.{pools[2]}", f"features.{pools[3] - 1}", f"features.{pools[4] - 1}"]
    elif isinstance(backbone, InceptionV3):
        names = ["Mixed_5d", "Mixed_6e", "Mixed_7c"]
    else:
        stages = [entry["module"] for entry in getattr(backbone, "feature_info", [])]
        if not stages:
            raise ValueError(f"{type(backbone).__name__} has no feature_info to place ADL layers; set adl_layers")
        names = stages[-2:]
    return list(dict.fromkeys(names))  # without repeats (a last stage of one block)


def insert_adl(model: nn.Module, names: list[str] | None, *, drop_rate: float, threshold: float,
               image_size: int) -> nn.Module:
    """Put an :class:`AttentionDropout` after each module ``names`` of ``model.backbone`` (the rule of
    :func:`adl_insertion_points` when None), through forward hooks; the layers are ``model.adl_layers``.

    A probe forward (``image_size``, as the model probes its channels) checks that every chosen module outputs
    a feature map.
    Returns ``model``.
    """
    modules = dict(model.backbone.named_modules())
    names = list(names) if names else adl_insertion_points(model.backbone)
    unknown = [name for name in names if not name or name not in modules]
    if unknown:
        raise ValueError(f"adl_layers: no module {', '.join(map(repr, unknown))} in backbone "
                         f"{getattr(model, 'backbone_name', type(model.backbone).__name__)!r}")
    model.adl_layers = nn.ModuleList(AttentionDropout(drop_rate, threshold) for _ in names)
    model.adl_layer_names = names
    for name, layer in zip(names, model.adl_layers):
        modules[name].register_forward_hook(lambda module, inputs, output, layer=layer: layer(output))
    model.adl_layers.eval()  # the probe draws nothing: a seed gives the same weights as CAM's
    try:
        model._probe_channels(image_size)
    except ValueError as error:
        raise ValueError(f"adl_layers {names}: {error}") from None
    model.adl_layers.train(model.training)
    return model


@register_method("adl")
class ADL(CAM):
    """ADL: CAM with attention-based dropout layers in the backbone, training only (Choe & Shim, CVPR 2019).

    Options (config keys, null = the default here): ``adl_drop_rate`` (probability of the drop mask),
    ``adl_threshold`` (gamma: drop where the attention is >= gamma x its maximum) and ``adl_layers`` (backbone
    module names; null: the benchmark's places for ResNet / VGG / Inception-v3, the last two stages otherwise).
    """

    defaults = {"adl_drop_rate": 0.75, "adl_threshold": 0.9}
    tunable = {
        "adl_drop_rate": TunableOption("adl: probability of the drop mask (adl_drop_rate)", {"low": 0.0, "high": 1.0}),
        "adl_threshold": TunableOption("adl: drop threshold gamma, relative to the maximum (adl_threshold)",
                                       {"low": 0.0, "high": 1.0}),
    }

    def build_model(self, config: Any, num_classes: int, *, pretrained: bool):
        config = self.resolve(config)
        model = super().build_model(config, num_classes, pretrained=pretrained)
        return insert_adl(model, config.adl_layers, drop_rate=config.adl_drop_rate, threshold=config.adl_threshold,
                          image_size=config.image_size)
