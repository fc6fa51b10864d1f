"""Class activation maps and sequences (CAM / CAS): the two per-position class scores of the models.

* :func:`class_activation`: ``sigmoid(w_c . x_s + b_c)``, times the attention when given: MAAN's class
  activation sequence (paper Eq. 14) and STPN's (Eq. 12); the video model's CAS, the image model's
  ``cam_score="sigmoid"``.
* :func:`linear_class_activation`: the classic CAM ``w_c . x_s``, min-max normalised per map to
  ``[0, 1]``, times the attention when given; the image model's ``cam_score="linear"``.
* :func:`minmax_normalize`: per-map min-max normalisation.
"""

from __future__ import annotations

from typing import Optional

import torch

from wsl.functional._checks import check_features

__all__ = ["class_activation", "linear_class_activation", "minmax_normalize"]


def _check_weight(x: torch.Tensor, weight: torch.Tensor) -> None:
    if weight.dim() != 2 or weight.shape[1] != x.shape[1]:
        raise ValueError(f"weight must have shape (K, {x.shape[1]}), got {tuple(weight.shape)}")


def _check_attention(x: torch.Tensor, attention: torch.Tensor) -> None:
    if attention.shape != x.shape[:1] + x.shape[2:]:
        raise ValueError(
            f"attention must have shape {tuple(x.shape[:1] + x.shape[2:])}, got {tuple(attention.shape)}"
        )


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
    _check_weight(x, weight)
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    logits = torch.einsum("bc...,kc->bk...", x, weight.to(x.dtype))
    if bias is not None:
        logits = logits + bias.to(x.dtype).view((1, -1) + (1,) * (x.dim() - 2))
    scores = torch.sigmoid(logits)
    if attention is not None:
        _check_attention(x, attention)
        scores = scores * attention.unsqueeze(1).to(scores.dtype)
    return scores


def minmax_normalize(maps: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Min-max normalise each map to [0, 1] (a constant map becomes 0).

    Args:
        maps (Tensor[N, *S]): N maps.
        eps: smallest span divided by.

    Returns:
        Tensor[N, *S].
    """
    flat = maps.flatten(1)
    low = flat.min(dim=1, keepdim=True).values
    high = flat.max(dim=1, keepdim=True).values
    span = (high - low).clamp_min(eps)
    return ((flat - low) / span).view_as(maps)


def linear_class_activation(x: torch.Tensor, weight: torch.Tensor, classes: Optional[torch.Tensor] = None,
                            attention: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Classic CAM: the class activation w_c . x_s, min-max normalised per map, optionally times the attention.

    The bias is left out: a constant shift is removed by the normalisation anyway.

    Args:
        x (Tensor[B, C, *S]): features.
        weight (Tensor[K, C]): classifier weights.
        classes (LongTensor[B, k], optional): the classes whose maps to compute for each sample; all K when None.
        attention (Tensor[B, *S], optional): per-position attention, applied after the normalisation.

    Returns:
        Tensor[B, k, *S] (Tensor[B, K, *S] without ``classes``), each map in [0, 1] before the attention.
    """
    check_features(x)
    _check_weight(x, weight)
    if classes is None:
        selected = weight.unsqueeze(0).expand(x.shape[0], -1, -1)
    else:
        if classes.dim() != 2 or classes.shape[0] != x.shape[0]:
            raise ValueError(f"classes must have shape ({x.shape[0]}, k), got {tuple(classes.shape)}")
        selected = weight[classes]  # (B, k, C)
    cams = torch.einsum("bkc,bc...->bk...", selected.to(x.dtype), x)
    cams = minmax_normalize(cams.flatten(0, 1)).view_as(cams)
    if attention is not None:
        _check_attention(x, attention)
        cams = cams * attention.unsqueeze(1).to(cams.dtype)
    return cams
