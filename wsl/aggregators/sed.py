"""Weak-label pooling of sound event detection: linear softmax and AutoPool.

Both pool each channel over the positions with weights that depend on that channel's own values, so
they return no shared attention map (``attention`` and ``weights`` are None):

- ``linear_softmax`` (Wang et al., ICASSP 2019): ``y_c = sum_i x_ci^2 / sum_i x_ci`` for non-negative
  inputs such as frame-level probabilities; large values weigh more, small ones less. With ``logits=True``
  the inputs are logits (a CAS): it pools their sigmoids and returns the logit of the pooled probability, so
  it can stand where a model pools logits into logits.
- ``autopool`` (McFee et al., IEEE/ACM TASLP 2018): ``y_c = sum_i x_ci softmax_i(alpha_c x_ci)`` with a
  learned ``alpha`` per channel: 0 is the mean, large positive values approach the max and large
  negative values the min.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .base import Aggregation, Aggregator
from .registry import register_aggregator

__all__ = ["LinearSoftmaxPool", "AutoPool"]


@register_aggregator("linear_softmax")
class LinearSoftmaxPool(Aggregator):
    """Linear softmax pooling: sum_i x_i^2 / sum_i x_i per channel, for non-negative inputs.

    A channel whose valid values are all zero pools to zero. Raises ``ValueError`` on a negative value
    at a valid position (the weights ``x_i / sum x`` would not be a distribution).

    Args:
        channels: unused (the pooling has no parameters).
        logits: the inputs are logits z_i: pool p_i = sigmoid(z_i) and return logit(sum p_i^2 / sum p_i),
            computed in log space (finite for any finite z).
    """

    def __init__(self, channels: Optional[int] = None, logits: bool = False) -> None:
        super().__init__()
        self.logits = bool(logits)

    def aggregate(self, x, mask) -> Aggregation:
        flat = x.flatten(2)
        if self.logits:  # logit(P) = log sum p_i^2 - log sum p_i (1 - p_i), with log p = logsigmoid(z)
            log_p, log_q = nn.functional.logsigmoid(flat), nn.functional.logsigmoid(-flat)
            squares, spread = 2 * log_p, log_p + log_q
            if mask is not None:
                invalid = ~mask.flatten(1).unsqueeze(1)
                squares = squares.masked_fill(invalid, float("-inf"))
                spread = spread.masked_fill(invalid, float("-inf"))
            return Aggregation(torch.logsumexp(squares, dim=2) - torch.logsumexp(spread, dim=2), None, None)
        if mask is not None:
            flat = flat * mask.flatten(1).unsqueeze(1).to(flat.dtype)
        if (flat < 0).any():
            raise ValueError("linear_softmax pools non-negative values (e.g. probabilities); got a negative value")
        total = flat.sum(dim=2)
        pooled = (flat * flat).sum(dim=2) / total.clamp_min(torch.finfo(flat.dtype).tiny)
        return Aggregation(pooled, None, None)

    def extra_repr(self) -> str:
        return f"logits={self.logits}"


@register_aggregator("autopool")
class AutoPool(Aggregator):
    """AutoPool: sum_i x_i softmax_i(alpha x_i) per channel, with a learned alpha (initially ``alpha``).

    Args:
        channels: C; needed when ``per_channel`` (one alpha per channel, as in the paper).
        alpha: initial value of alpha (0: the mean).
        per_channel: one alpha per channel (True) or one shared scalar (False).
    """

    def __init__(self, channels: Optional[int] = None, alpha: float = 0.0, per_channel: bool = True) -> None:
        super().__init__()
        if per_channel and (not isinstance(channels, int) or channels < 1):
            raise ValueError(f"autopool with per_channel=True needs channels (a positive int), got {channels!r}")
        self.alpha = nn.Parameter(torch.full((channels if per_channel else 1,), float(alpha)))
        self.per_channel = per_channel

    def aggregate(self, x, mask) -> Aggregation:
        flat = x.flatten(2)
        if self.per_channel and flat.shape[1] != self.alpha.numel():
            raise ValueError(f"autopool was built for {self.alpha.numel()} channels, got {flat.shape[1]}")
        scores = self.alpha.to(flat.dtype).view(1, -1, 1) * flat
        if mask is not None:
            scores = scores.masked_fill(~mask.flatten(1).unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=2)
        pooled = (weights * flat).sum(dim=2)
        return Aggregation(pooled, None, None)

    def extra_repr(self) -> str:
        return f"channels={self.alpha.numel() if self.per_channel else None}, per_channel={self.per_channel}"
