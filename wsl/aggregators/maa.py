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

    Args:
        channels: feature channels C (for the attention head).
        exact: quadrature rule of :func:`wsl.functional.maa_weights`: ``None`` (default) = exact up to 2K
            positions and the linear-time truncated rule above (equal to round-off), ``True`` = always
            the exact floor(N / 2) + 1-node rule, ``False`` = always the truncated rule.
        hidden, dropout, negative_slope: options of the attention head.
    """

    def __init__(self, channels: Optional[int] = None, hidden: int = 256, dropout: float = 0.0,
                 negative_slope: float = 0.01, exact: Optional[bool] = None):
        super().__init__(channels, hidden=hidden, dropout=dropout, negative_slope=negative_slope)
        if exact not in (None, True, False):
            raise ValueError(f"exact must be None, True or False, got {exact!r}")
        self.exact = exact

    def pool(self, x: torch.Tensor, attention: torch.Tensor, logits: torch.Tensor,
             mask: Optional[torch.Tensor]) -> Aggregation:
        weights = maa_weights(attention, mask, exact=self.exact)
        return Aggregation(weighted_pool(x, weights), attention, weights)
