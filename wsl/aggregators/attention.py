"""The MAAN/STPN attention head and the base class of attention-based aggregators."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from wsl.functional._checks import check_features, check_mask

from .base import Aggregation, Aggregator

__all__ = ["AttentionHead", "AttentionAggregator"]


class AttentionHead(nn.Module):
    """Per-position attention: Linear(C -> hidden) -> LeakyReLU -> Linear(hidden -> 1) -> sigmoid.

    The paper's head (hidden = 256); on images it equals two 1x1 convolutions.

    Args:
        channels: feature channels C.
        hidden: hidden units.
        dropout: dropout on the hidden layer (0 = none).
        negative_slope: LeakyReLU slope.

    Shape:
        x (Tensor[B, C, *S]) -> logits (Tensor[B, *S]) via :meth:`logits`, probabilities via ``forward``.
    """

    def __init__(self, channels: int, hidden: int = 256, dropout: float = 0.0, negative_slope: float = 0.01):
        super().__init__()
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        if hidden < 1:
            raise ValueError(f"hidden must be a positive int, got {hidden!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        self.channels = channels
        self.fc1 = nn.Linear(channels, hidden)
        self.act = nn.LeakyReLU(negative_slope)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, 1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.channels:
            raise ValueError(f"x has {x.shape[1]} channels but the attention head expects {self.channels}")
        positions = x.flatten(2).transpose(1, 2)  # (B, N, C)
        out = self.fc2(self.drop(self.act(self.fc1(positions)))).squeeze(-1)  # (B, N)
        return out.reshape(x.shape[:1] + x.shape[2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))


class AttentionAggregator(Aggregator):
    """An aggregator that owns an :class:`AttentionHead`; subclasses implement :meth:`pool`."""

    uses_attention = True

    def __init__(self, channels: Optional[int] = None, hidden: int = 256, dropout: float = 0.0,
                 negative_slope: float = 0.01):
        super().__init__()
        if channels is None:
            raise ValueError(f"aggregator '{type(self).__name__}' has an attention head and needs `channels`")
        self.head = AttentionHead(channels, hidden=hidden, dropout=dropout, negative_slope=negative_slope)

    @property
    def channels(self) -> int:
        return self.head.channels

    def aggregate(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> Aggregation:
        logits = self.head.logits(x)
        return self.pool(x, self._masked_sigmoid(logits, mask), logits, mask)

    def attention_map(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        check_features(x)
        mask = check_mask(mask, x.shape[:1] + x.shape[2:])
        return self._masked_sigmoid(self.head.logits(x), mask)

    @staticmethod
    def _masked_sigmoid(logits: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        attention = torch.sigmoid(logits)
        return attention if mask is None else attention.masked_fill(~mask, 0.0)

    def pool(self, x: torch.Tensor, attention: torch.Tensor, logits: torch.Tensor,
             mask: Optional[torch.Tensor]) -> Aggregation:  # pragma: no cover
        raise NotImplementedError
