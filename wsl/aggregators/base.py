"""The aggregator contract: ``agg(x, mask=None) -> Aggregation``."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, NamedTuple, Optional

import torch
from torch import nn

from wsl.functional._checks import check_features, check_mask

__all__ = ["Aggregation", "Aggregator"]


class Aggregation(NamedTuple):
    """Result of an aggregator.

    Attributes:
        pooled (Tensor[B, C]): the aggregated feature.
        attention (Tensor[B, *S] or None): the per-position score used for localization (p_i for MAA,
            lambda_i for the weighted baselines); None for parameter-free pooling.
        weights (Tensor[B, *S] or None): effective weights with ``pooled = sum(weights * x)`` over
            positions; None where no such weights exist (max, top-k).
    """

    pooled: torch.Tensor
    attention: Optional[torch.Tensor]
    weights: Optional[torch.Tensor]


class Aggregator(nn.Module):
    """Base class: checks ``x`` (Tensor[B, C, *S]) and ``mask`` (BoolTensor[B, *S]), then pools.

    Subclasses implement :meth:`aggregate`. ``uses_attention`` says whether the aggregator owns an
    attention head (and so returns an attention map). ``training_defaults`` holds the training settings
    the aggregator's own paper uses (e.g. STPN's sparsity weight); methods read them through
    :func:`wsl.aggregators.aggregator_info` where a run leaves the setting unset.
    """

    uses_attention: ClassVar[bool] = False
    training_defaults: ClassVar[Mapping[str, Any]] = {}

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> Aggregation:
        check_features(x)
        mask = check_mask(mask, x.shape[:1] + x.shape[2:])
        return self.aggregate(x, mask)

    def aggregate(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> Aggregation:  # pragma: no cover
        raise NotImplementedError

    def attention_map(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> Optional[torch.Tensor]:
        """Only the ``attention`` (Tensor[B, *S] or None) of ``self(x, mask)``.

        Attention-based aggregators compute it without pooling (no O(N^2) MAA weights over a long
        sequence just to read p), which is what localization over all positions needs.
        """
        return self(x, mask).attention
