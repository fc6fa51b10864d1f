"""MAAN's aggregator: attention probabilities p -> marginalized average aggregation."""

from __future__ import annotations

from typing import Optional

import torch

from wsl.functional import maa_weights, weighted_pool

from .attention import AttentionAggregator
from .base import Aggregation
from .registry import register_aggregator

__all__ = ["MarginalizedAverage"]


@register_aggregator("maa")
class MarginalizedAverage(AttentionAggregator):
    """Marginalized average aggregation (MAAN): pooled = E[sum z_i x_i / sum z_i], z_i ~ Bernoulli(p_i).

    ``attention`` is p (the latent discriminative probability, paper Eq. 14) and ``weights`` is
    lambda_i = p_i c_i (Proposition 1).
    """

    def pool(self, x: torch.Tensor, attention: torch.Tensor, logits: torch.Tensor,
             mask: Optional[torch.Tensor]) -> Aggregation:
        weights = maa_weights(attention, mask)
        return Aggregation(weighted_pool(x, weights), attention, weights)
