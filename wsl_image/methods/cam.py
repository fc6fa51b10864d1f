"""CAM (Zhou et al., CVPR 2016) with a registry aggregator: backbone, aggregator, linear classifier, softmax CE."""

from __future__ import annotations

from typing import Any

from .base import ImageMethod
from .registry import register_method

__all__ = ["CAM"]


@register_method("cam")
class CAM(ImageMethod):
    """CAM recipe: backbone feature map, aggregator, linear classifier, softmax cross-entropy.

    Model: :class:`wsl_image.model.CamModel` (``aggregator``: mean is the original CAM, maa is MAAN's image
    variant, weighted_sum weighted-CAM, tap thresholded average pooling); loss: cross-entropy of the logits
    (computed in float32 under AMP). The maps take the post-hoc options ``cam_clamp_negative`` and
    ``cam_percentile``. The CAM-family methods (``has``, ``cutmix``, ``adl``) subclass this recipe.
    """

    takes_aggregator = True

    def build_model(self, config: Any, num_classes: int, *, pretrained: bool):
        from wsl_image.model import CamModel

        return CamModel(
            config.backbone,
            num_classes,
            aggregator=config.aggregator,
            grid=config.grid,
            pretrained=pretrained and not config.pretrained_path,
            pretrained_path=config.pretrained_path if pretrained else None,
            aggregator_kwargs=config.aggregator_kwargs,
            image_size=config.image_size,
            backbone_kwargs=config.backbone_kwargs,
            cam_score=config.cam_score,
            cam_clamp_negative=config.cam_clamp_negative,
            cam_percentile=config.cam_percentile,
        )

    def loss(self, outputs, labels, config: Any):
        import torch.nn.functional as F

        return F.cross_entropy(outputs.logits.float(), labels)
