"""Thresholded average pooling (TAP) of Bae et al. (ECCV 2020, "Rethinking class activation mapping").

Per channel ``c``, only positions whose value exceeds ``threshold`` times the channel's maximum count:

    y_c = sum_i [x_ci > t max_j x_cj] x_ci / sum_i [x_ci > t max_j x_cj]

so that a few strong activations do not dominate the class score while the many weak, background
positions do not dilute it; ``threshold = 0`` on non-negative features is the mean over the positive
positions. A channel without any position above its threshold (e.g. all zero) pools to 0.
"""

from __future__ import annotations

from typing import Optional

from .base import Aggregation, Aggregator
from .registry import register_aggregator

__all__ = ["ThresholdedAveragePool"]


@register_aggregator("tap", aliases=("thresholded_mean",))
class ThresholdedAveragePool(Aggregator):
    """Mean of the positions above ``threshold`` x the per-channel maximum (over valid positions).

    Args:
        channels: unused (parameter-free).
        threshold: the fraction of the channel maximum a position must exceed, in [0, 1) (0.1 by default).
    """

    def __init__(self, channels: Optional[int] = None, threshold: float = 0.1) -> None:
        super().__init__()
        if not (isinstance(threshold, (int, float)) and 0.0 <= threshold < 1.0):
            raise ValueError(f"threshold must lie in [0, 1), got {threshold!r}")
        self.threshold = float(threshold)

    def aggregate(self, x, mask) -> Aggregation:
        flat = x.flatten(2)
        valid = None if mask is None else mask.flatten(1).unsqueeze(1)
        masked = flat if valid is None else flat.masked_fill(~valid, float("-inf"))
        cut = masked.amax(dim=2, keepdim=True) * self.threshold
        keep = flat > cut
        if valid is not None:
            keep = keep & valid
        weights = keep.to(flat.dtype)
        pooled = (flat * weights).sum(dim=2) / weights.sum(dim=2).clamp_min(1.0)
        return Aggregation(pooled, None, None)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}"
