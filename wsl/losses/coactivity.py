"""W-TALC's co-activity similarity loss (CASL): videos sharing a class should agree where it happens.

For video ``m`` with features ``x_m (D x T_m)`` and class-``j`` logits ``a_m[j] (T_m)``, the attention is
``lambda = softmax_t(a_m[j])`` over the valid snippets, the high-attention feature
``H_m = sum_t lambda_t x_t`` and the low-attention feature ``L_m = sum_t (1 - lambda_t) x_t / (T_m - 1)``.
With the cosine distance ``d(u, v) = 1 - u.v / (|u| |v|)``, a pair ``(m, n)`` that shares class ``j`` adds

    1/2 [max(0, d(H_m, H_n) - d(H_m, L_n) + delta) + max(0, d(H_m, H_n) - d(L_m, H_n) + delta)]

and the loss is the mean of these terms over every (pair, shared class); ``delta = 0.5``. A batch
without such a pair gives 0 (with a gradient of zero).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ._checks import check_labels, check_sequence, check_sequence_mask

__all__ = ["coactivity_loss", "CoActivityLoss", "PAIRINGS"]

PAIRINGS = ("all", "consecutive")


def _pair_mask(batch: int, pairs: str, device: torch.device) -> torch.Tensor:
    """BoolTensor[B, B], True at the ordered pairs (m, n), m < n, that are compared."""
    if pairs == "all":
        return torch.ones(batch, batch, dtype=torch.bool, device=device).triu(diagonal=1)
    chosen = torch.zeros(batch, batch, dtype=torch.bool, device=device)
    first = torch.arange(0, batch - 1, 2, device=device)
    chosen[first, first + 1] = True
    return chosen


def coactivity_loss(features: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor,
                    mask: Optional[torch.Tensor] = None, margin: float = 0.5, pairs: str = "all",
                    eps: float = 1e-8) -> torch.Tensor:
    """Co-activity similarity loss between the videos of a batch.

    Args:
        features (Tensor[B, D, T]): snippet features the attention pools (W-TALC: the embedded features).
        logits (Tensor[B, K, T]): per-snippet class logits; their softmax over time is the attention.
        labels (Tensor[B, K]): multi-hot video labels; a pair counts for each class both videos have.
        mask (BoolTensor[B, T], optional): True at valid snippets.
        margin: ``delta`` of the hinge (0.5 in W-TALC).
        pairs: ``"all"`` compares every pair of videos; ``"consecutive"`` compares videos (0, 1), (2, 3), ...
            (W-TALC builds its batches as such pairs of videos sharing a class).
        eps: lower bound of the feature norms in the cosine (no NaN for an all-zero feature).

    Returns:
        Tensor[]: the mean over the (pair, shared class) terms, 0 when there are none.
    """
    check_sequence(features, "features")
    check_sequence(logits, "logits")
    batch, _, length = features.shape
    if logits.shape[0] != batch or logits.shape[2] != length:
        raise ValueError(f"logits must have shape ({batch}, K, {length}) to match features, "
                         f"got {tuple(logits.shape)}")
    check_labels(labels, batch, logits.shape[1])
    if pairs not in PAIRINGS:
        raise ValueError(f"pairs must be one of {PAIRINGS}, got {pairs!r}")
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    mask = check_sequence_mask(mask, batch, length)

    scores = logits if mask is None else logits.masked_fill(~mask.unsqueeze(1), float("-inf"))
    attention = torch.softmax(scores, dim=2)  # (B, K, T); 0 at padding
    valid = (torch.full((batch,), length, device=features.device) if mask is None else mask.sum(dim=1))
    rest = 1.0 - attention
    if mask is not None:
        rest = rest * mask.unsqueeze(1)
    rest = rest / (valid - 1).clamp(min=1).view(-1, 1, 1).to(rest.dtype)
    high = torch.einsum("bkt,bdt->bkd", attention, features)
    low = torch.einsum("bkt,bdt->bkd", rest, features)
    high = high / high.norm(dim=2, keepdim=True).clamp_min(eps)
    low = low / low.norm(dim=2, keepdim=True).clamp_min(eps)

    d_high_high = 1.0 - torch.einsum("mkd,nkd->mnk", high, high)
    d_high_low = 1.0 - torch.einsum("mkd,nkd->mnk", high, low)  # d(H_m, L_n)
    d_low_high = 1.0 - torch.einsum("mkd,nkd->mnk", low, high)  # d(L_m, H_n)
    terms = 0.5 * (torch.relu(d_high_high - d_high_low + margin) + torch.relu(d_high_high - d_low_high + margin))
    shared = labels.to(terms.dtype)
    weights = shared.unsqueeze(1) * shared.unsqueeze(0) * _pair_mask(batch, pairs, features.device).unsqueeze(2)
    count = weights.sum()
    return (terms * weights).sum() / count.clamp_min(1.0)


class CoActivityLoss(nn.Module):
    """Module form of :func:`coactivity_loss` with a fixed ``margin`` and pairing."""

    def __init__(self, margin: float = 0.5, pairs: str = "all") -> None:
        super().__init__()
        if pairs not in PAIRINGS:
            raise ValueError(f"pairs must be one of {PAIRINGS}, got {pairs!r}")
        if not margin >= 0:
            raise ValueError(f"margin must be >= 0, got {margin!r}")
        self.margin = float(margin)
        self.pairs = pairs

    def forward(self, features: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        return coactivity_loss(features, logits, labels, mask, self.margin, self.pairs)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, pairs={self.pairs!r}"
