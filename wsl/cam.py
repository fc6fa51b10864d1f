"""Class activation maps and sequences (CAM / CAS): the two per-position class scores of the models.

* :func:`class_activation`: ``sigmoid(w_c . x_s + b_c)``, times the attention when given: MAAN's class
  activation sequence (paper Eq. 14) and STPN's (Eq. 12); the video model's CAS, the image model's
  ``cam_score="sigmoid"``.
* :func:`linear_class_activation`: the classic CAM ``w_c . x_s``, min-max normalised per map to
  ``[0, 1]``, times the attention when given; the image model's ``cam_score="linear"``.
* :func:`minmax_normalize`: per-map min-max normalisation.
* :func:`percentile_normalize`: per-map normalisation by the p-th percentile instead of the maximum, clipped to
  ``[0, 1]`` (percentile-based thresholding of Bae et al., ECCV 2020, "Rethinking class activation mapping").

Both activations take ``clamp_negative``: the classifier weights clamped at 0 (negative-weight clamping of
Bae et al.), so that only the features voting for a class light up its map.
"""

from __future__ import annotations

from typing import Optional

import torch

from wsl.functional._checks import check_features

__all__ = ["class_activation", "linear_class_activation", "minmax_normalize", "percentile_normalize"]


def _check_weight(x: torch.Tensor, weight: torch.Tensor) -> None:
    if weight.dim() != 2 or weight.shape[1] != x.shape[1]:
        raise ValueError(f"weight must have shape (K, {x.shape[1]}), got {tuple(weight.shape)}")


def _check_attention(x: torch.Tensor, attention: torch.Tensor) -> None:
    if attention.shape != x.shape[:1] + x.shape[2:]:
        raise ValueError(
            f"attention must have shape {tuple(x.shape[:1] + x.shape[2:])}, got {tuple(attention.shape)}"
        )


def class_activation(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
                     attention: Optional[torch.Tensor] = None, *, clamp_negative: bool = False) -> torch.Tensor:
    """Per-position class scores sigmoid(w_c . x_s + b_c), optionally times the attention.

    With MAA's attention p this is MAAN's CAS s_t^c = p_t sigmoid(w_c^T x_t) (paper Eq. 14); with the
    weighted-sum attention lambda it is STPN's (Eq. 12).

    Args:
        x (Tensor[B, C, *S]): features.
        weight (Tensor[K, C]): classifier weights (e.g. ``nn.Linear(C, K).weight``).
        bias (Tensor[K], optional): classifier bias.
        attention (Tensor[B, *S], optional): per-position attention.
        clamp_negative: use ``max(w_c, 0)`` instead of ``w_c``.

    Returns:
        Tensor[B, K, *S].
    """
    check_features(x)
    _check_weight(x, weight)
    if clamp_negative:
        weight = weight.clamp_min(0)
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


def percentile_normalize(maps: torch.Tensor, percentile: float, eps: float = 1e-12) -> torch.Tensor:
    """Normalise each map by its ``percentile``-th percentile instead of its maximum: ``(m - min) / (q - min)``,
    clipped to [0, 1] (a map whose percentile equals its minimum becomes 0).

    Thresholding the result at ``tau`` (relative to its maximum, 1) keeps the positions above
    ``min + tau (q - min)``: the percentile-based thresholding of Bae et al. (ECCV 2020). ``percentile=100`` is
    :func:`minmax_normalize`. The percentile interpolates linearly between positions (``torch.quantile``).

    Args:
        maps (Tensor[N, *S]): N maps.
        percentile: in (0, 100].
        eps: smallest span divided by.

    Returns:
        Tensor[N, *S] in [0, 1].
    """
    if not 0.0 < float(percentile) <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    flat = maps.flatten(1)
    if not flat.is_floating_point():
        flat = flat.float()
    low = flat.min(dim=1, keepdim=True).values
    level = torch.quantile(flat, float(percentile) / 100.0, dim=1, keepdim=True)
    span = level - low
    scaled = torch.where(span > eps, (flat - low) / span.clamp_min(eps), torch.zeros_like(flat))
    return scaled.clamp(0.0, 1.0).view(maps.shape)


def linear_class_activation(x: torch.Tensor, weight: torch.Tensor, classes: Optional[torch.Tensor] = None,
                            attention: Optional[torch.Tensor] = None, *, clamp_negative: bool = False) -> torch.Tensor:
    """Classic CAM: the class activation w_c . x_s, min-max normalised per map, optionally times the attention.

    The bias is left out: a constant shift is removed by the normalisation anyway.

    Args:
        x (Tensor[B, C, *S]): features.
        weight (Tensor[K, C]): classifier weights.
        classes (LongTensor[B, k], optional): the classes whose maps to compute for each sample; all K when None.
        attention (Tensor[B, *S], optional): per-position attention, applied after the normalisation.
        clamp_negative: use ``max(w_c, 0)`` instead of ``w_c`` (negative-weight clamping).

    Returns:
        Tensor[B, k, *S] (Tensor[B, K, *S] without ``classes``), each map in [0, 1] before the attention.
    """
    check_features(x)
    _check_weight(x, weight)
    if clamp_negative:
        weight = weight.clamp_min(0)
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
