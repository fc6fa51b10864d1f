"""Self-Produced Guidance (Zhang et al., ECCV 2018): CAM whose own maps supervise pixel-level side branches.

The model (the WSOL benchmark of Choe et al., CVPR 2020, builds it so): the backbone's last feature map goes
through the family's extra convolutions to x, then the classifying head (aggregator + linear classifier:
``mean`` is the original 1 x 1 convolution and global average pooling). Two side branches read earlier feature
maps: B1 and B2 (each a 3 x 3 convolution with ReLU, then a shared 3 x 3 convolution, ReLU and 1 x 1
convolution to one channel), and C reads x (3 x 3, 512 channels, ReLU, 1 x 1 to one channel).

Training, at the input resolution (every side logit map is bilinearly upsampled to it):

* the *guidance* is the head's map of the true class, min-max normalised;
* a *seed mask* of a map ``a`` with thresholds (high, low) is 1 where ``a > high`` (where fewer than 30 pixels
  are, ``a > 0.7 max(a)`` instead), 0 where ``a < low`` (this wins), and ignored elsewhere;
* loss = CE(logits, y) + BCE(B2, seeds(guidance; 1h, 1l)) + BCE(B1, seeds(sigmoid(B2); 2h, 2l))
  + BCE(C, seeds((sigmoid(B1) + sigmoid(B2)) / 2; 3h, 3l)), each BCE with logits averaged over the pixels the
  mask does not ignore in the batch (0 when it ignores all; the benchmark's mean is NaN there).

The localization map is the head's map, as CAM's. Places (the benchmark's, by backbone family):

=============  =====================  =====================  ==========================  ============
backbone       B1 reads               B2 reads               x                           B widths
=============  =====================  =====================  ==========================  ============
ResNets        ``layer3.0``           ``layer3``             ``layer4``                  1024
VGGs           4th max-pool           last ReLU (conv5_3)    + two 3 x 3, 512 convs      512
Inception-v3   ``Mixed_5d``           ``Mixed_6d``           ``Mixed_6e`` + two 3 x 3,   512
                                                             1024 convs, dropout 0.5
other timm     ``feature_info[-3]``   ``feature_info[-2]``   the last feature map        512
=============  =====================  =====================  ==========================  ============

The modules read must output feature maps (B, C, h, w): transformers' token blocks are refused.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from wsl.cam import minmax_normalize

from .base import ImageMethod, TunableOption
from .heads import (
    HeadModel,
    Taps,
    backbone_family,
    conv_layers,
    end_inception_at_mixed_6e,
    head_model_options,
    init_conv,
    scaled_width,
)
from .registry import register_method

__all__ = ["SPG", "SpgModel", "SpgOutput", "seed_mask", "masked_bce_with_logits", "spg_places"]

MIN_FOREGROUND = 30  # pixels: fewer above the high threshold and the foreground is relative to the maximum
FALLBACK_RATIO = 0.7  # ... then above 0.7 x the maximum
C_WIDTH = 512  # hidden channels of branch C, for every backbone


def seed_mask(attention: torch.Tensor, high: float, low: float, *, min_foreground: int = MIN_FOREGROUND
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """SPG's seed mask of maps ``attention`` (Tensor[B, H, W], values in [0, 1], not differentiated).

    Foreground: ``attention > high``, or ``attention > 0.7 * max`` for a map with fewer than ``min_foreground``
    such pixels; background: ``attention < low`` (it wins over foreground); the rest is ignored.

    Returns:
        targets (Tensor[B, H, W] float: 1 foreground, 0 elsewhere) and valid (BoolTensor[B, H, W]: foreground
        or background).
    """
    if attention.dim() != 3:
        raise ValueError(f"attention must have shape (B, H, W), got {tuple(attention.shape)}")
    attention = attention.detach()
    foreground = attention > high
    few = foreground.flatten(1).sum(dim=1) < min_foreground
    if bool(few.any()):
        peaks = attention.flatten(1).max(dim=1).values.view(-1, 1, 1)
        foreground = torch.where(few.view(-1, 1, 1), attention > FALLBACK_RATIO * peaks, foreground)
    background = attention < low
    return (foreground & ~background).to(attention.dtype), foreground | background


def masked_bce_with_logits(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of ``logits`` (Tensor[B, H, W]) against ``targets`` averaged over the ``valid``
    positions of the batch; 0 (with a gradient of zeros) when no position is valid."""
    losses = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")
    return torch.where(valid, losses, torch.zeros_like(losses)).sum() / valid.sum().clamp_min(1)


class SpgOutput(NamedTuple):
    """Outputs of :class:`SpgModel`: ``logits`` (B, K); ``cam`` the head's
    :class:`~wsl_image.model.CamOutput`; the side logit maps ``side_b1``, ``side_b2``, ``side_c`` (B, 1, h', w');
    ``guidance`` (B, H, W) the normalised map of the guiding classes at the input resolution (training only,
    None otherwise)."""

    logits: torch.Tensor
    cam: Any
    side_b1: torch.Tensor
    side_b2: torch.Tensor
    side_c: torch.Tensor
    guidance: torch.Tensor | None


class _Places(NamedTuple):
    b1: str
    b2: str
    side_width: int
    extra_widths: tuple[int, ...]
    dropout: float


def spg_places(backbone: nn.Module) -> _Places:
    """Where SPG reads ``backbone`` (the module docstring's table): the module names B1 and B2 read, the width
    of the B branches, the extra convolutions' widths and their dropout (the benchmark's widths, before any
    ``head_width_scale``). An Inception-v3 must already end at ``Mixed_6e``
    (:func:`~wsl_image.methods.heads.end_inception_at_mixed_6e`)."""
    family = backbone_family(backbone)
    if family == "resnet":
        return _Places("layer3.0", "layer3", 1024, (), 0.0)
    if family == "vgg":
        pools = [index for index, layer in enumerate(backbone.features) if isinstance(layer, nn.MaxPool2d)]
        if len(pools) < 4:
            raise ValueError(f"SPG needs 4 max-pools in the VGG features, found {len(pools)}")
        return _Places(f"features.{pools[3]}", f"features.{len(backbone.features) - 1}", 512, (512, 512), 0.0)
    if family == "inception_v3":
        return _Places("Mixed_5d", "Mixed_6d", 512, (1024, 1024), 0.5)
    stages = [entry["module"] for entry in getattr(backbone, "feature_info", [])]
    if len(stages) < 3:
        raise ValueError(f"SPG reads two stages before the last one: {type(backbone).__name__} has "
                         f"{len(stages)} feature_info entries")
    return _Places(stages[-3], stages[-2], 512, (), 0.0)


class SpgModel(HeadModel):
    """SPG on a timm backbone; see the module docstring. ``width_scale``: every width of the table and branch C's
    512 are multiplied by it (rounded); the other arguments are :class:`~wsl_image.model.CamModel`'s."""

    def __init__(self, backbone: str, num_classes: int, *, width_scale: float = 1.0, **options: Any) -> None:
        super().__init__(backbone, num_classes, **options)
        if backbone_family(self.backbone) == "inception_v3":
            end_inception_at_mixed_6e(self.backbone)
        places = spg_places(self.backbone)
        places = places._replace(side_width=scaled_width(places.side_width, width_scale),
                                 extra_widths=tuple(scaled_width(width, width_scale) for width in places.extra_widths))
        self.places = places
        c_width = scaled_width(C_WIDTH, width_scale)
        self.taps = Taps(self.backbone, {"b1": places.b1, "b2": places.b2}, backbone_name=backbone)
        try:
            self.num_features = self._probe_channels(self.image_size)
        except ValueError as error:
            raise ValueError(f"spg: backbone {backbone!r}: {error}") from None
        tapped = self.taps.pop()
        channels_b1, channels_b2 = tapped["b1"].shape[1], tapped["b2"].shape[1]
        self.extra = conv_layers(self.num_features, places.extra_widths, dropout=places.dropout)
        width = places.extra_widths[-1] if places.extra_widths else self.num_features
        self.head = self.new_head(width, nn.Sequential())
        self.side_b1 = conv_layers(channels_b1, [places.side_width])
        self.side_b2 = conv_layers(channels_b2, [places.side_width])
        self.side_shared = nn.Sequential(*conv_layers(places.side_width, [places.side_width]),
                                         nn.Conv2d(places.side_width, 1, kernel_size=1))
        self.side_c = nn.Sequential(*conv_layers(width, [c_width]), nn.Conv2d(c_width, 1, kernel_size=1))
        for module in (self.extra, self.head.classifier, self.side_b1, self.side_b2, self.side_shared, self.side_c):
            init_conv(module, "xavier")

    def guidance(self, cam, classes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The head's maps of classes (B,) upsampled (bilinear) to ``size`` and min-max normalised: (B, H, W),
        not differentiated."""
        with torch.no_grad():
            maps = self.head.maps(cam, classes, score=self.resolved_cam_score).float()
            maps = F.interpolate(maps.unsqueeze(1), size=tuple(size), mode="bilinear", align_corners=False)
            return minmax_normalize(maps[:, 0])

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> SpgOutput:
        """images (B, 3, H, W), labels (B,) the guiding classes in training (None: the top-1 prediction) ->
        :class:`SpgOutput`."""
        features = self.feature_map(images)
        tapped = self.taps.pop()
        features = self.extra(features)
        cam = self.head(features)
        side_b1 = self.side_shared(self.side_b1(tapped["b1"]))
        side_b2 = self.side_shared(self.side_b2(tapped["b2"]))
        side_c = self.side_c(features)
        guidance = None
        if self.training:
            classes = cam.logits.argmax(dim=1) if labels is None else labels
            guidance = self.guidance(cam, classes, images.shape[-2:])
        return SpgOutput(cam.logits, cam, side_b1, side_b2, side_c, guidance)

    def class_maps(self, output: SpgOutput, classes: torch.Tensor) -> torch.Tensor:
        cam = output.cam._replace(features=output.cam.features.float(),
                                  attention=None if output.cam.attention is None else output.cam.attention.float())
        return self.head.maps(cam, classes, score=self.resolved_cam_score, clamp_negative=self.cam_clamp_negative)


def spg_loss(outputs: SpgOutput, labels: torch.Tensor, thresholds: tuple[tuple[float, float], ...]) -> torch.Tensor:
    """SPG's training loss (the module docstring) with ``thresholds = ((1h, 1l), (2h, 2l), (3h, 3l))``."""
    if outputs.guidance is None:
        raise ValueError("SPG's loss needs the guidance of a forward in training mode")
    size = outputs.guidance.shape[-2:]

    def upsample(side: torch.Tensor) -> torch.Tensor:
        return F.interpolate(side.float(), size=size, mode="bilinear", align_corners=False)[:, 0]

    side_b1, side_b2, side_c = upsample(outputs.side_b1), upsample(outputs.side_b2), upsample(outputs.side_c)
    (high1, low1), (high2, low2), (high3, low3) = thresholds
    fused = (torch.sigmoid(side_b1) + torch.sigmoid(side_b2)) / 2
    return (F.cross_entropy(outputs.logits.float(), labels)
            + masked_bce_with_logits(side_b2, *seed_mask(outputs.guidance.float(), high1, low1))
            + masked_bce_with_logits(side_b1, *seed_mask(torch.sigmoid(side_b2), high2, low2))
            + masked_bce_with_logits(side_c, *seed_mask(fused, high3, low3)))


@register_method("spg")
class SPG(ImageMethod):
    """SPG: CAM with side branches supervised by seed masks of its own maps (Zhang et al., ECCV 2018).

    Options (config keys, null = the default here): ``spg_threshold_1h`` / ``_1l`` (the seed mask of the class
    map, supervising B2), ``_2h`` / ``_2l`` (of B2, supervising B1), ``_3h`` / ``_3l`` (of the B1 / B2 fusion,
    supervising C): foreground above the high threshold, background below the low one; ``head_width_scale``
    (the new convolutions' widths times this; null: 1).
    """

    takes_aggregator = True
    defaults = {"spg_threshold_1h": 0.7, "spg_threshold_1l": 0.01, "spg_threshold_2h": 0.5,
                "spg_threshold_2l": 0.05, "spg_threshold_3h": 0.7, "spg_threshold_3l": 0.1}
    tunable = {
        name: TunableOption(f"spg: seed-mask {'foreground' if name.endswith('h') else 'background'} threshold ({name})",
                            {"low": 0.3, "high": 0.9} if name.endswith("h") else {"low": 0.0, "high": 0.3})
        for name in ("spg_threshold_1h", "spg_threshold_1l", "spg_threshold_2h", "spg_threshold_2l",
                     "spg_threshold_3h", "spg_threshold_3l")
    }

    def build_model(self, config: Any, num_classes: int, *, pretrained: bool) -> SpgModel:
        return SpgModel(config.backbone, num_classes, width_scale=config.head_width_scale or 1.0,
                        **head_model_options(config, pretrained=pretrained))

    def training_forward(self, model, inputs, targets, config: Any):
        return model(inputs, targets)  # the guidance is the map of the true class

    def loss(self, outputs: SpgOutput, labels, config: Any):
        thresholds = ((config.spg_threshold_1h, config.spg_threshold_1l),
                      (config.spg_threshold_2h, config.spg_threshold_2l),
                      (config.spg_threshold_3h, config.spg_threshold_3l))
        return spg_loss(outputs, labels, thresholds)
