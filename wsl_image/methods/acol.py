"""Adversarial Complementary Learning (Zhang et al., CVPR 2018): two CAM branches, the second on erased features.

The backbone's feature map x (B, C, h, w) feeds branch A; branch A's map of the true class (training) or of
its predicted class (otherwise), min-max normalised per image, is thresholded at ``acol_threshold``: the
positions at or above it are set to 0 in the features fed to branch B, which must then find the object's other
parts. Each branch is two 3 x 3, 1024-channel convolutions with ReLUs, the aggregator (``mean``: global
average pooling, the original) and a linear classifier; the loss is the sum of both branches' cross-entropies;
the classification is branch A's. The localization map of class c is the per-position maximum of the two
branches' maps (each min-max normalised), branch B erased by c, as the WSOL benchmark of Choe et al. (CVPR 2020)
fuses them.

Where the branches go (the benchmark's places):

* timm VGGs: after the last convolution (VGG16: conv5_3, stride 16), smoothed by a 3 x 3 average pooling
  (stride 1, padding 1) as the benchmark's VGG16 does;
* timm ResNets: after ``layer4``;
* timm Inception-v3: after ``Mixed_6e`` (``Mixed_7a`` ... ``Mixed_7c`` are removed);
* any other timm backbone: after its last feature map (ViT tokens reshaped to their grid).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from wsl.cam import minmax_normalize

from .base import ImageMethod, TunableOption
from .heads import (
    HeadModel,
    backbone_family,
    conv_layers,
    end_inception_at_mixed_6e,
    head_model_options,
    init_conv,
    scaled_width,
)
from .registry import register_method

__all__ = ["ACoL", "AcolModel", "AcolOutput", "erase_peaks"]

ACOL_WIDTH = 1024  # channels of the two 3 x 3 convolutions of each branch, for every backbone (the benchmark's)


def erase_peaks(features: torch.Tensor, maps: torch.Tensor, threshold: float) -> torch.Tensor:
    """``features`` with the positions where the min-max normalised ``maps`` are ``>= threshold`` set to 0.

    Args:
        features (Tensor[B, C, h, w]): the features fed to the complementary branch.
        maps (Tensor[B, h, w]): the first branch's maps (normalised here per map; not differentiated).
        threshold: in [0, 1] (0 erases everything, 1 only the maxima).

    Returns:
        Tensor[B, C, h, w]: ``features * keep`` with ``keep = normalised maps < threshold`` (a constant map
        normalises to 0: nothing erased unless ``threshold`` is 0).
    """
    if features.dim() != 4 or maps.shape != features.shape[:1] + features.shape[2:]:
        raise ValueError(f"maps must have shape {tuple(features.shape[:1] + features.shape[2:])} for features of "
                         f"shape {tuple(features.shape)}, got {tuple(maps.shape)}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    keep = minmax_normalize(maps.detach().float()) < threshold
    return features * keep.unsqueeze(1).to(features.dtype)


class AcolOutput(NamedTuple):
    """Outputs of :class:`AcolModel`: ``logits`` (B, K) and ``logits_b`` (B, K) of branches A and B, ``a`` and
    ``b`` their :class:`~wsl_image.model.CamOutput`, ``features`` (B, C, h, w) the map both branches read."""

    logits: torch.Tensor
    logits_b: torch.Tensor
    a: Any
    b: Any
    features: torch.Tensor


class AcolModel(HeadModel):
    """ACoL on a timm backbone; see the module docstring. ``threshold``: the erasing threshold in [0, 1];
    ``width_scale``: the branches' convolutions have ``1024 * width_scale`` channels (rounded); the other
    arguments are :class:`~wsl_image.model.CamModel`'s."""

    def __init__(self, backbone: str, num_classes: int, *, threshold: float = 0.7, width_scale: float = 1.0,
                 **options: Any) -> None:
        super().__init__(backbone, num_classes, **options)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"acol_threshold must be in [0, 1], got {threshold}")
        self.threshold = float(threshold)
        self.family = backbone_family(self.backbone)
        if self.family == "inception_v3":
            end_inception_at_mixed_6e(self.backbone)
            self.num_features = self._probe_channels(self.image_size)
        width = scaled_width(ACOL_WIDTH, width_scale)
        self.head = self.new_head(self.num_features, conv_layers(self.num_features, [width, width]))
        self.head_b = self.new_head(self.num_features, conv_layers(self.num_features, [width, width]))
        for head in (self.head, self.head_b):
            init_conv(head.layers, "he" if self.family == "resnet" else "xavier")
            init_conv(head.classifier, "he" if self.family == "resnet" else "xavier")

    def branch_features(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) -> the feature map (B, C, h, w) both branches read."""
        features = self.feature_map(images)
        if self.family == "vgg":
            features = F.avg_pool2d(features, kernel_size=3, stride=1, padding=1)
        return features

    def branch_a_maps(self, output, classes: torch.Tensor) -> torch.Tensor:
        """Branch A's maps of classes (B,) or (B, k) at the feature resolution: what is erased (without the
        post-hoc options)."""
        return self.head.maps(output, classes, score=self.resolved_cam_score, clamp_negative=self.cam_clamp_negative)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> AcolOutput:
        """images (B, 3, H, W), labels (B,) the classes erased from branch B's input (None: branch A's top-1
        prediction) -> :class:`AcolOutput`."""
        features = self.branch_features(images)
        a = self.head(features)
        classes = a.logits.argmax(dim=1) if labels is None else labels
        b = self.head_b(erase_peaks(features, self.branch_a_maps(a, classes), self.threshold))
        return AcolOutput(a.logits, b.logits, a, b, features)

    def class_maps(self, output: AcolOutput, classes: torch.Tensor) -> torch.Tensor:
        """max(normalised map of A, normalised map of B with class c erased) per class c of classes (B, k); the
        post-hoc options change both maps, not what is erased."""
        features = output.features.float()
        a = output.a._replace(features=output.a.features.float(),
                              attention=None if output.a.attention is None else output.a.attention.float())
        erasing = self.branch_a_maps(a, classes)  # (B, k, h, w)
        maps_a = self.head.maps(a, classes, score=self.resolved_cam_score, clamp_negative=True) \
            if self.cam_clamp_negative else erasing
        fused = []
        for index in range(classes.shape[1]):
            b = self.head_b(erase_peaks(features, erasing[:, index], self.threshold))
            map_b = self.head_b.maps(b, classes[:, index], score=self.resolved_cam_score,
                                     clamp_negative=self.cam_clamp_negative)
            fused.append(torch.maximum(minmax_normalize(maps_a[:, index]), minmax_normalize(map_b)))
        return torch.stack(fused, dim=1)


@register_method("acol")
class ACoL(ImageMethod):
    """ACoL: two CAM branches, the second on features with the first's peak erased (Zhang et al., CVPR 2018).

    Options (config keys, null = the default here): ``acol_threshold`` (erase where branch A's normalised map
    is >= this); ``head_width_scale`` (the branches' width is ``1024 x`` this; null: 1). The loss is the sum of
    both branches' cross-entropies; the map fuses both branches.
    """

    takes_aggregator = True
    defaults = {"acol_threshold": 0.7}
    tunable = {"acol_threshold": TunableOption("acol: erasing threshold of branch A's map (acol_threshold)",
                                                {"low": 0.3, "high": 0.95})}

    def build_model(self, config: Any, num_classes: int, *, pretrained: bool) -> AcolModel:
        config = self.resolve(config)
        return AcolModel(config.backbone, num_classes, threshold=config.acol_threshold,
                         width_scale=config.head_width_scale or 1.0,
                         **head_model_options(config, pretrained=pretrained))

    def training_forward(self, model, inputs, targets, config: Any):
        return model(inputs, targets)  # branch B's input is erased by the true class

    def loss(self, outputs: AcolOutput, labels, config: Any):
        return F.cross_entropy(outputs.logits.float(), labels) + F.cross_entropy(outputs.logits_b.float(), labels)
