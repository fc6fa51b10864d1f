"""Class activation maps and sequences (CAM / CAS)."""

from __future__ import annotations

from typing import Optional

import torch

from wsl.functional._checks import check_features

__all__ = ["class_activation"]


def class_activation(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
                     attention: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per-position class scores sigmoid(w_c . x_s + b_c), optionally times the attention.

    With MAA's attention p this is MAAN's CAS s_t^c = p_t sigmoid(w_c^T x_t) (paper Eq. 14); with the
    weighted-sum attention lambda it is STPN's (Eq. 12).

    Args:
        x (Tensor[B, C, *S]): features.
        weight (Tensor[K, C]): classifier weights (e.g. ``nn.Linear(C, K).weight``).
        bias (Tensor[K], optional): classifier bias.
        attention (Tensor[B, *S], optional): per-position attention.

    Returns:
        Tensor[B, K, *S].
    """
    check_features(x)
    if weight.dim() != 2 or weight.shape[1] != x.shape[1]:
        raise ValueError(f"weight must have shape (K, {x.shape[1]}), got {tuple(weight.shape)}")
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    logits = torch.einsum("bc...,kc->bk...", x, weight.to(x.dtype))
    if bias is not None:
        logits = logits + bias.to(x.dtype).view((1, -1) + (1,) * (x.dim() - 2))
    scores = torch.sigmoid(logits)
    if attention is not None:
        if attention.shape != x.shape[:1] + x.shape[2:]:
            raise ValueError(
                f"attention must have shape {tuple(x.shape[:1] + x.shape[2:])}, got {tuple(attention.shape)}"
            )
        scores = scores * attention.unsqueeze(1).to(scores.dtype)
    return scores
