"""The paper's attention-weighted baselines: STPN's weighted sum, Dropout, Norm and SoftMaxNorm."""

from __future__ import annotations

from typing import Optional

import torch

from wsl.functional import weighted_pool

from .attention import AttentionAggregator
from .base import Aggregation
from .registry import register_aggregator

__all__ = ["WeightedSum", "DropoutWeightedSum", "NormalizedWeightedSum", "SoftmaxWeightedAverage"]

_EPS = 1e-12


@register_aggregator("weighted_sum", aliases=("stpn",))
class WeightedSum(AttentionAggregator):
    """STPN: pooled = sum_i lambda_i x_i with lambda_i the sigmoid attention (not normalised).

    STPN trains it with an L1 sparsity term on the attention, weight 1e-4 (``training_defaults``).
    """

    training_defaults = {"sparsity_weight": 1e-4}

    def pool(self, x, attention, logits, mask) -> Aggregation:
        return Aggregation(weighted_pool(x, attention), attention, attention)


@register_aggregator("dropout")
class DropoutWeightedSum(AttentionAggregator):
    """STPN with Bernoulli dropout of the weighted terms while training: sum_i r_i lambda_i x_i.

    r_i ~ Bernoulli(1 - rate) scaled by 1 / (1 - rate) (inverted dropout), so training and evaluation
    agree in expectation; in evaluation mode it is the plain weighted sum. The paper uses rate 0.5.
    """

    def __init__(self, channels: Optional[int] = None, rate: float = 0.5, **head_kwargs):
        super().__init__(channels, **head_kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must lie in [0, 1), got {rate!r}")
        self.rate = rate

    def pool(self, x, attention, logits, mask) -> Aggregation:
        weights = attention
        if self.training and self.rate > 0:
            keep = torch.rand_like(attention) >= self.rate
            weights = attention * keep / (1.0 - self.rate)
        return Aggregation(weighted_pool(x, weights), attention, weights)


@register_aggregator("norm")
class NormalizedWeightedSum(AttentionAggregator):
    """Norm: pooled = sum_i lambda_i x_i / sum_i lambda_i."""

    def pool(self, x, attention, logits, mask) -> Aggregation:
        total = attention.flatten(1).sum(dim=1).clamp_min(_EPS)
        weights = attention / total.view((-1,) + (1,) * (attention.dim() - 1))
        return Aggregation(weighted_pool(x, weights), attention, weights)


@register_aggregator("softmax_norm")
class SoftmaxWeightedAverage(AttentionAggregator):
    """SoftMaxNorm: pooled = sum_i softmax(s)_i x_i over the valid positions.

    By default ``s`` is the sigmoid attention itself, e^{lambda_i} / sum_j e^{lambda_j}, the paper's
    formula (``on="attention"``). With ``on="logits"`` it is the head's logit (the usual softmax
    attention); softmax ignores a constant shift of the logits, so their level is free to drift during
    training and the sigmoid attention used for localization can saturate. ``temperature`` divides
    ``s``. ``attention`` is the sigmoid attention lambda either way.
    """

    def __init__(self, channels: Optional[int] = None, on: str = "attention", temperature: float = 1.0,
                 **head_kwargs):
        super().__init__(channels, **head_kwargs)
        if on not in ("logits", "attention"):
            raise ValueError(f"on must be 'logits' or 'attention', got {on!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.on = on
        self.temperature = temperature

    def pool(self, x, attention, logits, mask) -> Aggregation:
        scores = (logits if self.on == "logits" else attention) / self.temperature
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores.flatten(1), dim=1).reshape(scores.shape)
        return Aggregation(weighted_pool(x, weights), attention, weights)
