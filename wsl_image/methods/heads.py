"""Parts of the image methods with several heads (``acol``, ``spg``): CAM heads, backbone families, taps.

* :class:`CamHead`: a classification branch on a feature map: optional convolutions, the aggregator (any
  registered one), a linear classifier; its class maps are :class:`~wsl_image.model.CamModel`'s.
* :class:`HeadModel`: a timm backbone with such heads; it shares ``CamModel``'s backbone handling (token
  reshaping, the VGG feature map), map options (``cam_score``, ``cam_clamp_negative``, ``cam_percentile``) and
  the upsampling of the maps.
* :func:`backbone_family`, :func:`end_inception_at_mixed_6e`, :class:`Taps`: where the benchmark of Choe et al.
  (CVPR 2020) attaches its heads in VGG16, ResNet50 and Inception-v3, and forward hooks that read them.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

import torch
from torch import nn

from wsl_image.model import CamModel, CamOutput, class_activation_maps, is_vgg

__all__ = ["CamHead", "HeadModel", "Taps", "backbone_family", "conv_layers", "end_inception_at_mixed_6e", "init_conv",
           "head_model_options", "scaled_width"]


def backbone_family(backbone: nn.Module) -> str | None:
    """``"vgg"``, ``"resnet"`` or ``"inception_v3"`` for timm's classes of the benchmark's three backbones, None
    for any other model."""
    from timm.models.inception_v3 import InceptionV3
    from timm.models.resnet import ResNet

    if is_vgg(backbone):
        return "vgg"
    if isinstance(backbone, ResNet):
        return "resnet"
    if isinstance(backbone, InceptionV3):
        return "inception_v3"
    return None


def end_inception_at_mixed_6e(backbone: nn.Module) -> nn.Module:
    """A timm Inception-v3 whose output is ``Mixed_6e`` (768 channels, stride 16), where the benchmark's
    Inception-v3 ends: ``Mixed_7a`` ... ``Mixed_7c`` become identities (and leave ``feature_info``)."""
    for name in ("Mixed_7a", "Mixed_7b", "Mixed_7c"):
        setattr(backbone, name, nn.Identity())
    backbone.feature_info = [info for info in backbone.feature_info if not info["module"].startswith("Mixed_7")]
    return backbone


def init_conv(module: nn.Module, mode: str) -> None:
    """The benchmark's initialisation of its new layers: every Conv2d and Linear of ``module`` gets ``xavier``
    (uniform) or ``he`` (normal, fan-out, ReLU gain) weights and zero biases. A Linear classifier so initialised
    is distributed as the 1 x 1 convolution it replaces."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            if mode == "he":
                nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            elif mode == "xavier":
                nn.init.xavier_uniform_(layer.weight)
            else:
                raise ValueError(f"init mode must be 'he' or 'xavier', got {mode!r}")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def scaled_width(width: int, scale: float) -> int:
    """``width`` channels times ``scale`` (> 0), rounded, at least 1: the width of a method's new convolution
    under the ``head_width_scale`` option."""
    if not scale > 0:
        raise ValueError(f"head_width_scale must be > 0, got {scale}")
    return max(1, round(width * scale))


def conv_layers(in_channels: int, widths: Iterable[int], *, dropout: float = 0.0) -> nn.Sequential:
    """3 x 3 convolutions (padding 1) each followed by a ReLU: ``in_channels -> widths[0] -> widths[1] ...``;
    with ``dropout`` > 0 a Dropout before each convolution and after the last ReLU (Inception's SPG layers)."""
    layers: list[nn.Module] = []
    for width in widths:
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers += [nn.Conv2d(in_channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
        in_channels = width
    if dropout and layers:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def _output_channels(layers: nn.Sequential, in_channels: int) -> int:
    convs = [layer for layer in layers if isinstance(layer, nn.Conv2d)]
    return convs[-1].out_channels if convs else in_channels


class CamHead(nn.Module):
    """A CAM branch: features (B, C, h, w) -> ``layers`` -> f (B, D, h, w) -> adaptive average pooling to
    ``grid x grid`` (None: native) -> aggregator -> Linear(D, K).

    With the ``mean`` aggregator its logits are the global average of the class maps ``w_c . f + b_c``: a 1 x 1
    convolution to K channels followed by global average pooling, as the benchmark's heads.

    Args:
        in_channels: C.
        num_classes: K.
        layers: the branch's own layers before the aggregator (an empty Sequential: none).
        aggregator / aggregator_kwargs: see ``wsl.build_aggregator``.
        grid: side of the pooled grid or None.
    """

    def __init__(self, in_channels: int, num_classes: int, layers: nn.Sequential, *, aggregator: str,
                 aggregator_kwargs: dict | None = None, grid: int | None = None) -> None:
        super().__init__()
        import wsl

        self.layers = layers
        self.channels = _output_channels(layers, in_channels)
        self.grid = grid
        self.aggregator = wsl.build_aggregator(aggregator, channels=self.channels, **(aggregator_kwargs or {}))
        self.classifier = nn.Linear(self.channels, num_classes)

    @property
    def uses_attention(self) -> bool:
        return bool(self.aggregator.uses_attention)

    def forward(self, features: torch.Tensor) -> CamOutput:
        """features (B, C, h, w) -> :class:`~wsl_image.model.CamOutput` (logits (B, K), f, attention, pooled)."""
        features = self.layers(features)
        pooled = features if self.grid is None else nn.functional.adaptive_avg_pool2d(features, self.grid)
        aggregated = self.aggregator(pooled)
        return CamOutput(self.classifier(aggregated.pooled), features, aggregated.attention, aggregated.pooled)

    def maps(self, output: CamOutput, classes: torch.Tensor, *, score: str, clamp_negative: bool = False
             ) -> torch.Tensor:
        """The class maps of ``output`` (this head's) at the feature resolution: classes (B,) or (B, k) ->
        (B, h, w) or (B, k, h, w) in [0, 1] (:func:`wsl_image.model.class_activation_maps`)."""
        return class_activation_maps(output.features, output.attention, classes, self.classifier, score=score,
                                     uses_attention=self.uses_attention, clamp_negative=clamp_negative)


class Taps:
    """Forward hooks that keep the outputs of named modules of ``backbone`` during a forward.

    ``Taps(backbone, {"b1": "layer3.0"})``; after ``backbone(x)``, ``taps.pop()`` returns ``{"b1": Tensor}`` and
    forgets them. The modules must output feature maps (B, C, h, w).
    """

    def __init__(self, backbone: nn.Module, names: dict[str, str], *, backbone_name: str = "") -> None:
        modules = dict(backbone.named_modules())
        unknown = [name for name in names.values() if not name or name not in modules]
        if unknown:
            raise ValueError(f"no module {', '.join(map(repr, unknown))} in backbone "
                             f"{backbone_name or type(backbone).__name__!r}")
        self.names = dict(names)
        self._outputs: dict[str, torch.Tensor] = {}
        for key, name in self.names.items():
            modules[name].register_forward_hook(lambda module, inputs, output, key=key: self._keep(key, output))

    def _keep(self, key: str, output) -> None:
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            raise ValueError(f"module {self.names[key]!r} outputs {shape}, not a feature map (B, C, h, w)")
        self._outputs[key] = output

    def pop(self) -> dict[str, torch.Tensor]:
        """The outputs kept since the last call, by key (``KeyError`` names a module that did not run)."""
        outputs, self._outputs = self._outputs, {}
        missing = [self.names[key] for key in self.names if key not in outputs]
        if missing:
            raise KeyError(f"module(s) {', '.join(map(repr, missing))} did not run in the backbone's forward")
        return outputs


class HeadModel(CamModel):
    """A timm backbone with method-specific heads (base of the ACoL and SPG models).

    Shares :class:`~wsl_image.model.CamModel`'s constructor checks and backbone (``feature_map``: tokens reshaped
    for ViTs, the last convolutional map for VGGs, without CAM's VGG neck), ``cam_score`` /
    ``cam_clamp_negative`` / ``cam_percentile`` and :meth:`upsample_maps`. Subclasses build their heads (the first,
    ``self.head``, classifies and sets ``uses_attention``) and implement ``forward(images, labels=None)`` (an
    output with ``logits``) and :meth:`class_maps`.
    """

    head: CamHead

    def __init__(self, backbone: str, num_classes: int, *, aggregator: str = "mean", grid: int | None = None,
                 pretrained: bool = False, pretrained_path: str | None = None, aggregator_kwargs: dict | None = None,
                 image_size: int = 224, backbone_kwargs: dict | None = None, cam_score: str = "auto",
                 cam_clamp_negative: bool = False, cam_percentile: float | None = None) -> None:
        nn.Module.__init__(self)  # CamModel's own head (neck, aggregator, classifier) is not built
        self._build_backbone(backbone, num_classes, grid=grid, pretrained=pretrained, pretrained_path=pretrained_path,
                             image_size=image_size, backbone_kwargs=backbone_kwargs, cam_score=cam_score,
                             cam_clamp_negative=cam_clamp_negative, cam_percentile=cam_percentile)
        self.aggregator_name = aggregator
        self.aggregator_kwargs = dict(aggregator_kwargs or {})
        self.image_size = image_size

    def new_head(self, in_channels: int, layers: nn.Sequential) -> CamHead:
        """A :class:`CamHead` with this model's classes, aggregator and grid."""
        return CamHead(in_channels, self.num_classes, layers, aggregator=self.aggregator_name,
                       aggregator_kwargs=self.aggregator_kwargs, grid=self.grid)

    @property
    def uses_attention(self) -> bool:
        return self.head.uses_attention

    def head_parameters(self) -> list[nn.Parameter]:
        """Every parameter outside the backbone (the new layers, trained at ``lr * head_lr_scale``)."""
        return [parameter for name, parameter in self.named_parameters() if not name.startswith("backbone.")]

    def class_activation_maps(self, features: torch.Tensor, attention: torch.Tensor | None, classes: torch.Tensor
                              ) -> torch.Tensor:
        """The classifying head's maps of its features (CamModel's interface; see :meth:`CamHead.maps`)."""
        return class_activation_maps(features, attention, classes, self.head.classifier, score=self.resolved_cam_score,
                                     uses_attention=self.uses_attention, clamp_negative=self.cam_clamp_negative)

    def class_maps(self, output: NamedTuple, classes: torch.Tensor) -> torch.Tensor:
        """Maps (B, k, h, w) in [0, 1] at the feature resolution of classes (B, k), from ``output = self(images)``
        (called in float32, outside autocast)."""
        raise NotImplementedError

    @torch.no_grad()
    def localize(self, images: torch.Tensor, classes: torch.Tensor | None = None, topk: int = 1
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Class scores and localization maps at the image resolution, as :meth:`CamModel.localize`: logits
        (B, K) and maps (B, k, H, W) in [0, 1] of ``classes`` (B,) / (B, k), or of the top-``topk`` classes."""
        from wsl.cam import percentile_normalize

        labels = None if classes is None else classes.view(classes.shape[0], -1)[:, 0]
        output = self(images, labels)
        if classes is None:
            classes = output.logits.topk(min(topk, self.num_classes), dim=1).indices
        classes = classes.view(classes.shape[0], -1)
        with torch.autocast(device_type=images.device.type, enabled=False):
            maps = self.class_maps(output, classes)
            maps = self.upsample_maps(maps, images.shape[-2:])
            if self.cam_percentile is not None:
                maps = percentile_normalize(maps.flatten(0, 1), self.cam_percentile).view_as(maps)
        return output.logits, maps


def head_model_options(config, *, pretrained: bool) -> dict:
    """The :class:`HeadModel` keyword arguments of a :class:`wsl_image.config.TrainConfig` (as ``cam`` builds its
    model: ``pretrained`` loads timm's weights, or the file ``pretrained_path`` when set)."""
    return dict(aggregator=config.aggregator, grid=config.grid, image_size=config.image_size,
                pretrained=pretrained and not config.pretrained_path,
                pretrained_path=config.pretrained_path if pretrained else None,
                backbone_kwargs=config.backbone_kwargs, aggregator_kwargs=config.aggregator_kwargs,
                cam_score=config.cam_score, cam_clamp_negative=config.cam_clamp_negative,
                cam_percentile=config.cam_percentile)
