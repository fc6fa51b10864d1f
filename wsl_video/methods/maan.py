"""MAAN (Yuan et al., ICLR 2019): one aggregator + linear classifier per stream, video-level BCE."""

from __future__ import annotations

from typing import Any, Dict

from .base import VideoMethod
from .registry import register_method

__all__ = ["MAAN"]


@register_method("maan")
class MAAN(VideoMethod):
    """MAAN recipe: aggregator + linear classifier per stream, video-level BCE (+ L1 attention sparsity).

    Model: :class:`wsl_video.model.TemporalLocalizer` with ``model.aggregator`` (MAA in the paper; any
    registered aggregator works) and streams fused at the score level with ``inference.stream_weights``.
    Loss: :func:`wsl_video.model.weak_label_loss` (paper Eq. 10) with ``train.sparsity_weight``; when that is
    unset, the aggregator's own training default (``training_defaults["sparsity_weight"]``: 1e-4 for
    ``weighted_sum`` as in STPN), else 0.
    """

    takes_aggregator = True
    needs_two_streams = False

    def resolve(self, config: Any) -> None:
        super().resolve(config)
        if config.train.sparsity_weight is None:
            from wsl.aggregators import aggregator_info

            defaults = aggregator_info(config.model.aggregator).training_defaults
            config.train.sparsity_weight = float(defaults.get("sparsity_weight", 0.0))

    def build_model(self, config: Any, feature_dims: Dict[str, int], num_classes: int):
        from wsl_video.model import TemporalLocalizer

        return TemporalLocalizer(config.model.aggregator, feature_dims, num_classes,
                                 aggregator_kwargs=config.model.aggregator_kwargs,
                                 stream_weights=config.inference.stream_weights)

    def loss(self, outputs, labels, config: Any):
        from wsl_video.model import weak_label_loss

        return weak_label_loss(outputs, labels, config.train.sparsity_weight)
