"""CAM model with a pluggable feature aggregator (MAAN for images, Appendix F of the MAAN paper).

backbone (any timm model) -> feature map f (B, C, h, w) -> optional adaptive average pooling to a
``grid x grid`` map (the paper's 4x4 / 7x7 learning schemes) -> aggregator over the spatial
positions (``maa`` = MAAN, ``weighted_sum`` = weighted-CAM, ``mean`` = CAM with GAP, or any
registered name) -> Linear(C -> classes).

Localization map of class c, on the native-resolution feature map f: a per-position class score
times the aggregator's attention map (bilinearly upsampled from the grid) for attention-based
aggregators; then bilinearly upsampled to the image and min-max normalised per image to [0, 1].
The class score is the class activation ``w_c . f(x, y)`` (min-max normalised, so that the product
with the attention is monotone in both) or, as in the MAAN paper's class activation sequences
(Eq. 12 / 14), ``sigmoid(w_c . f(x, y) + b_c)``; see ``cam_score``.

Transformer backbones (ViT-style, returning tokens (B, N, C)) are supported: the prefix tokens
(class / register tokens) are dropped and the patch tokens are reshaped to their (h, w) grid.

VGG backbones (``timm.models.vgg.VGG``) end at their last convolution (conv5_3 for VGG16, stride 16: 14 x 14
at 224 pixels) instead of timm's fifth max-pool and fc6/fc7 (``pre_logits``, a 1 x 1 map at 224), and the CAM
model adds the 3 x 3, 1024-channel convolution and ReLU of CAM's VGG-GAP (``neck``, trained as a new layer),
as the WSOL benchmark of Choe et al. (CVPR 2020) builds its VGG16.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from wsl.cam import class_activation, linear_class_activation, minmax_normalize, percentile_normalize

__all__ = ["CamModel", "CamOutput", "create_backbone", "is_vgg", "class_activation_maps", "CAM_SCORES"]

CAM_SCORES = ("auto", "linear", "sigmoid")


class CamOutput(NamedTuple):
    """Outputs of :class:`CamModel`.

    logits (B, K); features (B, C, h, w) native feature map; attention (B, g, g) or None;
    pooled (B, C) aggregated feature.
    """

    logits: torch.Tensor
    features: torch.Tensor
    attention: torch.Tensor | None
    pooled: torch.Tensor


def create_backbone(
    name: str, *, pretrained: bool = False, pretrained_path: str | None = None, **kwargs: Any
) -> nn.Module:
    """A timm model without classifier and pooling (its output is the feature map or the tokens).

    ``pretrained`` loads timm's weights from the hub; ``pretrained_path`` loads a local file
    through timm's ``pretrained_cfg_overlay=dict(file=...)`` (the classifier weights are dropped).
    """
    import timm

    if not timm.is_model(name):
        from wsl.utils.cli import did_you_mean

        raise ValueError(f"unknown timm backbone {name!r}{did_you_mean(name, timm.list_models())} "
                         "(see timm.list_models())")
    create_kwargs: dict[str, Any] = dict(num_classes=0, global_pool="", **kwargs)
    if pretrained_path:
        from pathlib import Path

        if not Path(pretrained_path).is_file():
            raise FileNotFoundError(f"pretrained weights file not found: {pretrained_path}")
        create_kwargs["pretrained_cfg_overlay"] = dict(file=str(pretrained_path))
        pretrained = True
    try:
        model = timm.create_model(name, pretrained=pretrained, **create_kwargs)
    except TypeError:
        # models without a ``global_pool`` argument
        create_kwargs.pop("global_pool")
        model = timm.create_model(name, pretrained=pretrained, **create_kwargs)
    return _vgg_convolutions(model) if is_vgg(model) else model


def is_vgg(backbone: nn.Module) -> bool:
    """Whether ``backbone`` is one of timm's VGGs (``vgg11`` ... ``vgg19_bn``)."""
    from timm.models.vgg import VGG

    return isinstance(backbone, VGG)


def _vgg_convolutions(model: nn.Module) -> nn.Module:
    """A timm VGG that outputs its last convolutional feature map: the fifth max-pool and ``pre_logits`` (fc6 and
    fc7 as 7 x 7 and 1 x 1 convolutions, whose map is 1 x 1 at 224 pixels) removed; ``features`` keeps its module
    names (``features.0`` ... up to the last ReLU) and ``feature_info`` loses the removed entries."""
    layers = list(model.features)
    if layers and isinstance(layers[-1], nn.MaxPool2d):
        model.features = model.features[: len(layers) - 1]
    model.pre_logits = nn.Identity()
    names = {name for name, _ in model.named_modules()}
    model.feature_info = [info for info in getattr(model, "feature_info", []) if info.get("module") in names]
    return model


def vgg_neck(channels: int, width: int = 1024) -> nn.Sequential:
    """CAM's VGG-GAP layer after conv5_3: Conv2d(channels, width, 3, padding=1) and ReLU, initialised as the WSOL
    benchmark does (He normal, fan-out, zero bias)."""
    conv = nn.Conv2d(channels, width, kernel_size=3, padding=1)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    nn.init.zeros_(conv.bias)
    return nn.Sequential(conv, nn.ReLU(inplace=False))


def class_activation_maps(features: torch.Tensor, attention: torch.Tensor | None, classes: torch.Tensor,
                          classifier: nn.Linear, *, score: str, uses_attention: bool,
                          clamp_negative: bool = False) -> torch.Tensor:
    """Localization maps of ``classifier`` at the feature resolution (the maps of :class:`CamModel`).

    features (B, C, h, w), attention (B, g, g) or None (used when ``uses_attention``), classes (B,) or (B, k);
    ``score``: ``linear`` (min-max normalised ``w_c . f``, times the attention) or ``sigmoid``
    (``sigmoid(w_c . f + b_c)`` times the attention). Returns maps (B, h, w) or (B, k, h, w), each in [0, 1].
    """
    squeeze = classes.dim() == 1
    classes = classes.view(classes.shape[0], -1)
    if attention is not None and uses_attention:
        attention = attention.to(features.dtype)
        if attention.shape[-2:] != features.shape[-2:]:
            attention = F.interpolate(
                attention.unsqueeze(1), size=features.shape[-2:], mode="bilinear", align_corners=False
            ).squeeze(1)
    else:
        attention = None
    if score == "sigmoid":
        scores = class_activation(features, classifier.weight, classifier.bias, attention,
                                  clamp_negative=clamp_negative)
        cams = scores.gather(1, classes.view(*classes.shape, 1, 1).expand(-1, -1, *scores.shape[-2:]))
    else:
        cams = linear_class_activation(features, classifier.weight, classes, attention,
                                       clamp_negative=clamp_negative)
    return cams[:, 0] if squeeze else cams


class CamModel(nn.Module):
    """CAM classifier with a registry aggregator; see the module docstring.

    Args:
        backbone: timm model name (``resnet50``, ``resnet10t``, ``convnext_atto``, ``vit_small_patch16_224``).
        num_classes: number of classes K.
        aggregator: registry name (``maa``, ``weighted_sum``, ``mean``, ...).
        grid: side of the pooled grid the aggregator sees (4, 7) or None for the native resolution.
        pretrained / pretrained_path: see :func:`create_backbone`.
        aggregator_kwargs: extra keyword arguments for ``wsl.build_aggregator``.
        image_size: input size used to probe the feature shape of the backbone.
        backbone_kwargs: extra keyword arguments for ``timm.create_model`` (e.g. ``output_stride=16``).
        cam_score: per-position class score of the localization map: ``linear`` (min-max normalised
            ``w_c . f``, times the attention), ``sigmoid`` (``sigmoid(w_c . f + b_c)`` times the attention:
            the CAS of the MAAN paper, Eq. 12 / 14, ``wsl.cam.class_activation``), or ``auto`` (sigmoid for
            attention-based aggregators, linear -- the original CAM -- for the others).
        cam_clamp_negative: compute the maps with the classifier weights clamped at 0 (negative-weight clamping
            of Bae et al., ECCV 2020); the logits are unchanged.
        cam_percentile: normalise each map at the image resolution by its p-th percentile instead of its maximum
            (clipped to [0, 1]; percentile-based thresholding of Bae et al.), or None.
    """

    def __init__(
        self,
        backbone: str,
        num_classes: int,
        *,
        aggregator: str = "maa",
        grid: int | None = 7,
        pretrained: bool = False,
        pretrained_path: str | None = None,
        aggregator_kwargs: dict | None = None,
        image_size: int = 224,
        backbone_kwargs: dict | None = None,
        cam_score: str = "auto",
        cam_clamp_negative: bool = False,
        cam_percentile: float | None = None,
    ) -> None:
        super().__init__()
        import wsl

        self._build_backbone(backbone, num_classes, grid=grid, pretrained=pretrained, pretrained_path=pretrained_path,
                             image_size=image_size, backbone_kwargs=backbone_kwargs, cam_score=cam_score,
                             cam_clamp_negative=cam_clamp_negative, cam_percentile=cam_percentile)
        if is_vgg(self.backbone):
            self.neck = vgg_neck(self.num_features)
            self.num_features = self._probe_channels(image_size)
        self.aggregator = wsl.build_aggregator(aggregator, channels=self.num_features, **(aggregator_kwargs or {}))
        self.aggregator_name = aggregator
        self.classifier = nn.Linear(self.num_features, num_classes)

    def _build_backbone(self, backbone: str, num_classes: int, *, grid: int | None, pretrained: bool,
                        pretrained_path: str | None, image_size: int, backbone_kwargs: dict | None, cam_score: str,
                        cam_clamp_negative: bool, cam_percentile: float | None) -> None:
        """Check the options and build the backbone (``num_features``: its channels); the part of ``__init__``
        that models with other heads share (``wsl_image.methods.heads.HeadModel``)."""
        if cam_score not in CAM_SCORES:
            raise ValueError(f"cam_score must be one of {', '.join(CAM_SCORES)}, got {cam_score!r}")
        if cam_percentile is not None and not 0.0 < cam_percentile <= 100.0:
            raise ValueError(f"cam_percentile must be in (0, 100] or None, got {cam_percentile}")
        self.cam_score = cam_score
        self.cam_clamp_negative = bool(cam_clamp_negative)
        self.cam_percentile = cam_percentile
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if grid is not None and grid < 1:
            raise ValueError(f"grid must be >= 1 or None, got {grid}")
        self.backbone_name = backbone
        self.grid = grid
        self.num_classes = num_classes
        self.backbone = create_backbone(
            backbone, pretrained=pretrained, pretrained_path=pretrained_path, **(backbone_kwargs or {})
        )
        self.num_prefix_tokens = int(getattr(self.backbone, "num_prefix_tokens", 0) or 0)
        self.neck: nn.Module | None = None
        self.num_features = self._probe_channels(image_size)

    @property
    def uses_attention(self) -> bool:
        return bool(self.aggregator.uses_attention)

    @property
    def resolved_cam_score(self) -> str:
        """``sigmoid`` or ``linear``: what ``cam_score="auto"`` means for this aggregator."""
        if self.cam_score != "auto":
            return self.cam_score
        return "sigmoid" if self.uses_attention else "linear"

    def _probe_channels(self, image_size: int) -> int:
        was_training = self.backbone.training
        self.backbone.eval()
        with torch.no_grad():
            size = image_size
            cfg = getattr(self.backbone, "pretrained_cfg", {}) or {}
            if cfg.get("fixed_input_size") and "input_size" in cfg:
                size = int(cfg["input_size"][-1])
            features = self.feature_map(torch.zeros(1, 3, size, size))
        self.backbone.train(was_training)
        return int(features.shape[1])

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters trained from scratch (VGG's neck, aggregator head and classifier)."""
        neck = list(self.neck.parameters()) if self.neck is not None else []
        return neck + list(self.aggregator.parameters()) + list(self.classifier.parameters())

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) -> native feature map (B, C, h, w) (patch tokens reshaped for ViTs; after the
        neck for VGGs)."""
        features = self.backbone(images)
        if isinstance(features, (list, tuple)):
            features = features[-1]
        if features.dim() == 3:  # tokens (B, N, C)
            tokens = features[:, self.num_prefix_tokens :]
            height, width = self._token_grid(images, tokens.shape[1])
            features = tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], height, width)
        if features.dim() != 4:
            raise ValueError(
                f"backbone {self.backbone_name!r} returned a tensor of shape {tuple(features.shape)}; "
                "expected a feature map (B, C, h, w) or tokens (B, N, C)"
            )
        if self.neck is not None:
            features = self.neck(features)
        return features

    def _token_grid(self, images: torch.Tensor, num_tokens: int) -> tuple[int, int]:
        patch_embed = getattr(self.backbone, "patch_embed", None)
        if patch_embed is not None and hasattr(patch_embed, "dynamic_feat_size"):
            height, width = patch_embed.dynamic_feat_size(tuple(images.shape[-2:]))
            if height * width == num_tokens:
                return int(height), int(width)
        side = int(round(num_tokens**0.5))
        if side * side != num_tokens:
            raise ValueError(f"cannot reshape {num_tokens} patch tokens of {self.backbone_name!r} to a grid")
        return side, side

    def pool_grid(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, C, h, w) -> (B, C, g, g) by adaptive average pooling (identity for grid None)."""
        if self.grid is None:
            return features
        return F.adaptive_avg_pool2d(features, self.grid)

    def forward(self, images: torch.Tensor) -> CamOutput:
        """images (B, 3, H, W) -> :class:`CamOutput` with logits (B, K)."""
        features = self.feature_map(images)
        aggregated = self.aggregator(self.pool_grid(features))
        logits = self.classifier(aggregated.pooled)
        return CamOutput(logits, features, aggregated.attention, aggregated.pooled)

    def class_activation_maps(
        self, features: torch.Tensor, attention: torch.Tensor | None, classes: torch.Tensor
    ) -> torch.Tensor:
        """Localization maps at the feature resolution.

        features (B, C, h, w), attention (B, g, g) or None, classes (B,) or (B, k)
        -> maps (B, h, w) or (B, k, h, w), each in [0, 1].
        """
        return class_activation_maps(features, attention, classes, self.classifier, score=self.resolved_cam_score,
                                     uses_attention=self.uses_attention, clamp_negative=self.cam_clamp_negative)

    @torch.no_grad()
    def localize(
        self, images: torch.Tensor, classes: torch.Tensor | None = None, topk: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Class scores and localization maps at the image resolution.

        images (B, 3, H, W); classes (B,) or (B, k) class indices, the top-``topk`` predictions when None.
        Returns logits (B, K) and maps (B, k, H, W) in [0, 1] (min-max normalised per map, or by its
        ``cam_percentile``-th percentile when set).
        """
        output = self(images)
        features = output.features.float()  # maps in float32 also under autocast
        attention = None if output.attention is None else output.attention.float()
        if classes is None:
            classes = output.logits.topk(min(topk, self.num_classes), dim=1).indices
        with torch.autocast(device_type=features.device.type, enabled=False):
            maps = self.class_activation_maps(features, attention, classes.view(classes.shape[0], -1))
            maps = self.upsample_maps(maps, images.shape[-2:])
            if self.cam_percentile is not None:
                maps = percentile_normalize(maps.flatten(0, 1), self.cam_percentile).view_as(maps)
        return output.logits, maps

    @staticmethod
    def upsample_maps(maps: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
        """maps (B, k, h, w) -> (B, k, H, W) bilinear, min-max normalised per map."""
        maps = F.interpolate(maps.float(), size=tuple(size), mode="bilinear", align_corners=False)
        return minmax_normalize(maps.flatten(0, 1)).view_as(maps)

    def config(self) -> dict:
        return dict(
            backbone=self.backbone_name,
            grid=self.grid,
            aggregator=self.aggregator_name,
            num_classes=self.num_classes,
        )
