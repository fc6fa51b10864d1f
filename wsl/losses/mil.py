"""The multiple-instance learning (MIL) loss of W-TALC: top-k mean pooling, then softmax cross-entropy.

For video ``i`` with per-snippet class logits ``s_i (K x T_i)``, the video logit of class ``j`` is the
mean of the ``k_i = ceil(T_i / r)`` highest ``s_i[j, t]`` (``r = 8`` in W-TALC); the loss is

    L = -1/B sum_i sum_j  y_ij / |y_i|  log softmax_j(video logits of i)

with ``|y_i| = sum_j y_ij`` (multi-label videos spread their target over their classes). The pooling
step is any aggregator in the library's recipes; :func:`mil_cross_entropy` is the loss on already
pooled video logits, :func:`topk_mil_loss` the whole of W-TALC's definition.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_labels, check_sequence, check_sequence_mask

__all__ = ["mil_cross_entropy", "topk_mil_loss", "MILCrossEntropy", "TopKMILLoss"]


def mil_cross_entropy(video_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy against the labels normalised to sum to one per video.

    Args:
        video_logits (Tensor[B, K]): video-level class logits.
        labels (Tensor[B, K]): multi-hot labels in [0, 1]; every video needs at least one positive class.

    Returns:
        Tensor[]: the loss averaged over videos.

    Raises:
        ValueError: bad shapes, values outside [0, 1], or a video without a positive class.
    """
    if not isinstance(video_logits, torch.Tensor) or video_logits.dim() != 2:
        shape = tuple(video_logits.shape) if isinstance(video_logits, torch.Tensor) else type(video_logits).__name__
        raise ValueError(f"video_logits must have shape (B, K), got {shape}")
    check_labels(labels, *video_logits.shape)
    totals = labels.sum(dim=1, keepdim=True)
    if (totals <= 0).any():
        raise ValueError("every video needs at least one positive label for the MIL loss")
    target = labels.to(video_logits.dtype) / totals.to(video_logits.dtype)
    return -(target * F.log_softmax(video_logits, dim=1)).sum(dim=1).mean()


def topk_mean(logits: torch.Tensor, mask: Optional[torch.Tensor] = None, ratio: float = 8.0) -> torch.Tensor:
    """Mean of the ``ceil(T_i / ratio)`` highest logits of each class over the valid snippets.

    logits (Tensor[B, K, T]), mask (BoolTensor[B, T] or None) -> Tensor[B, K].
    """
    batch, _, length = logits.shape
    counts = mask.sum(dim=1) if mask is not None else torch.full((batch,), length, device=logits.device)
    ks = torch.ceil(counts.to(torch.float64) / ratio).long().clamp(min=1)
    values = logits if mask is None else logits.masked_fill(~mask.unsqueeze(1), float("-inf"))
    top = values.topk(int(ks.max()), dim=2).values
    keep = torch.arange(top.shape[2], device=logits.device).view(1, 1, -1) < ks.view(-1, 1, 1)
    top = torch.where(keep, top, torch.zeros_like(top))
    return top.sum(dim=2) / ks.view(-1, 1).to(top.dtype)


def topk_mil_loss(logits: torch.Tensor, labels: torch.Tensor, mask: Optional[torch.Tensor] = None,
                  ratio: float = 8.0) -> torch.Tensor:
    """W-TALC's MIL loss on per-snippet logits.

    Args:
        logits (Tensor[B, K, T]): per-snippet class logits (the class activation sequence before any sigmoid).
        labels (Tensor[B, K]): multi-hot video labels.
        mask (BoolTensor[B, T], optional): True at valid snippets (videos of different lengths).
        ratio: ``k = ceil(T_valid / ratio)`` snippets are averaged per class (8 in W-TALC).

    Returns:
        Tensor[]: the loss averaged over videos.
    """
    check_sequence(logits, "logits")
    if not ratio >= 1:
        raise ValueError(f"ratio must be >= 1, got {ratio!r}")
    mask = check_sequence_mask(mask, logits.shape[0], logits.shape[2])
    return mil_cross_entropy(topk_mean(logits, mask, ratio), labels)


class MILCrossEntropy(nn.Module):
    """Module form of :func:`mil_cross_entropy`."""

    def forward(self, video_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return mil_cross_entropy(video_logits, labels)


class TopKMILLoss(nn.Module):
    """Module form of :func:`topk_mil_loss` with a fixed ``ratio``."""

    def __init__(self, ratio: float = 8.0) -> None:
        super().__init__()
        if not ratio >= 1:
            raise ValueError(f"ratio must be >= 1, got {ratio!r}")
        self.ratio = float(ratio)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        return topk_mil_loss(logits, labels, mask, self.ratio)

    def extra_repr(self) -> str:
        return f"ratio={self.ratio}"
