"""Parameter-free pooling: global average, global max and top-k mean."""

from __future__ import annotations

from typing import Optional

import torch

from wsl.functional import weighted_pool

from .base import Aggregation, Aggregator
from .registry import register_aggregator

__all__ = ["MeanPool", "MaxPool", "TopKMeanPool"]


def _valid_counts(x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Number of valid positions per sample, Tensor[B]."""
    if mask is None:
        return torch.full((x.shape[0],), x.shape[2:].numel(), device=x.device, dtype=torch.long)
    return mask.flatten(1).sum(dim=1)


@register_aggregator("mean", aliases=("gap",))
class MeanPool(Aggregator):
    """Global average pooling over the valid positions (the original CAM)."""

    def __init__(self, channels: Optional[int] = None):
        super().__init__()

    def aggregate(self, x, mask) -> Aggregation:
        spatial = x.shape[:1] + x.shape[2:]
        counts = _valid_counts(x, mask).to(x.dtype if x.is_floating_point() else torch.float32)
        weights = torch.ones(spatial, dtype=x.dtype, device=x.device)
        if mask is not None:
            weights = weights * mask
        weights = weights / counts.view((-1,) + (1,) * (len(spatial) - 1))
        return Aggregation(weighted_pool(x, weights), None, weights)


@register_aggregator("max", aliases=("gmp",))
class MaxPool(Aggregator):
    """Global max pooling per channel over the valid positions."""

    def __init__(self, channels: Optional[int] = None):
        super().__init__()

    def aggregate(self, x, mask) -> Aggregation:
        flat = x.flatten(2)
        if mask is not None:
            flat = flat.masked_fill(~mask.flatten(1).unsqueeze(1), float("-inf"))
        return Aggregation(flat.amax(dim=2), None, None)


@register_aggregator("topk_mean")
class TopKMeanPool(Aggregator):
    """Mean of the k highest values per channel (W-TALC's MIL pooling).

    Args:
        k: a fixed k (clipped to the number of valid positions); or None to use
        ratio: k = ceil(n_valid / ratio) per sample (8 by default, as W-TALC).
    """

    def __init__(self, channels: Optional[int] = None, k: Optional[int] = None, ratio: float = 8.0):
        super().__init__()
        if k is not None and (not isinstance(k, int) or k < 1):
            raise ValueError(f"k must be a positive int or None, got {k!r}")
        if not ratio >= 1:
            raise ValueError(f"ratio must be >= 1, got {ratio!r}")
        self.k = k
        self.ratio = ratio

    def _k_per_sample(self, counts: torch.Tensor) -> torch.Tensor:
        if self.k is not None:
            return counts.clamp(max=self.k).clamp(min=1)
        return torch.ceil(counts.to(torch.float64) / self.ratio).long().clamp(min=1)

    def aggregate(self, x, mask) -> Aggregation:
        flat = x.flatten(2)  # (B, C, N)
        if mask is not None:
            flat = flat.masked_fill(~mask.flatten(1).unsqueeze(1), float("-inf"))
        ks = self._k_per_sample(_valid_counts(x, mask))  # (B,)
        k_max = int(ks.max())
        top = flat.topk(k_max, dim=2).values  # (B, C, k_max), descending
        keep = torch.arange(k_max, device=x.device).view(1, 1, -1) < ks.view(-1, 1, 1)
        top = torch.where(keep, top, torch.zeros_like(top))
        pooled = top.sum(dim=2) / ks.view(-1, 1).to(top.dtype)
        return Aggregation(pooled, None, None)

    def extra_repr(self) -> str:
        return f"k={self.k}" if self.k is not None else f"ratio={self.ratio}"

