"""Evidential deep learning losses on Dirichlet opinions (Sensoy et al., NeurIPS 2018), with the
uncertainty-guided weighting of DELU (Chen et al., ECCV 2022) for multi-label weak supervision.

Logits ``z (B x K)`` give non-negative evidence ``e = f(z)`` (``relu``, ``exp`` of ``z`` clipped to
[-10, 10], or ``softplus``), Dirichlet parameters ``alpha = e + 1``, strength ``S = sum_k alpha_k`` and
uncertainty ``u = K / S``. With ``phi`` = ``log`` (type-II maximum likelihood) or ``digamma`` (Bayes risk
of the cross-entropy), the classification term of a sample is

    sum_k g_k (phi(S) - phi(alpha_k)),

with ``g_k = y_k`` (plain), or, with ``uncertainty_weighting``, DELU's
``g_k = (1 - u) |y| (y_k / alpha_k) / sum_j (y_j / alpha_j)``: ``u`` is treated as a constant, the
labelled classes with less evidence weigh more and confident samples weigh more than uncertain ones.
``kl_weight`` adds ``KL(Dir(alpha~) || Dir(1))`` with ``alpha~ = y + (1 - y) alpha``, which pulls the
evidence of the classes a sample does not have towards zero (the weight is usually annealed from 0 to 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_labels

__all__ = ["EVIDENCE", "evidence", "dirichlet_uncertainty", "evidential_loss", "EvidentialLoss"]

EVIDENCE = ("relu", "exp", "softplus")
_KINDS = ("log", "digamma")


def evidence(logits: torch.Tensor, function: str = "exp") -> torch.Tensor:
    """Non-negative evidence of ``logits`` (Tensor[..., K]) through ``relu``, ``exp`` (clipped) or ``softplus``."""
    if function == "relu":
        return F.relu(logits)
    if function == "exp":
        return torch.exp(logits.clamp(-10.0, 10.0))
    if function == "softplus":
        return F.softplus(logits)
    raise ValueError(f"evidence function must be one of {EVIDENCE}, got {function!r}")


def dirichlet_uncertainty(logits: torch.Tensor, function: str = "exp") -> torch.Tensor:
    """``u = K / S`` of the Dirichlet opinion of each sample: logits (Tensor[B, K]) -> Tensor[B] in (0, 1]."""
    alpha = evidence(logits, function) + 1.0
    return logits.shape[-1] / alpha.sum(dim=-1)


def _kl_to_uniform(alpha: torch.Tensor) -> torch.Tensor:
    """KL(Dir(alpha) || Dir(1, ..., 1)) per row of alpha (Tensor[B, K]) -> Tensor[B]."""
    strength = alpha.sum(dim=1)
    classes = alpha.shape[1]
    return (torch.lgamma(strength) - torch.lgamma(alpha).sum(dim=1) - math.lgamma(classes)
            + ((alpha - 1.0) * (torch.digamma(alpha) - torch.digamma(strength).unsqueeze(1))).sum(dim=1))


def evidential_loss(logits: torch.Tensor, labels: torch.Tensor, *, function: str = "exp", kind: str = "log",
                    uncertainty_weighting: bool = True, kl_weight: float = 0.0) -> torch.Tensor:
    """Evidential classification loss averaged over samples.

    Args:
        logits (Tensor[B, K]): class logits (a background class, if any, is one of the K).
        labels (Tensor[B, K]): multi-hot labels in [0, 1]; every sample needs a positive class.
        function: evidence function, one of :data:`EVIDENCE`.
        kind: ``"log"`` or ``"digamma"`` (see the module docstring).
        uncertainty_weighting: DELU's uncertainty-guided class weights (True) or ``g = y`` (False).
        kl_weight: weight of the KL term on the evidence of the absent classes, >= 0.

    Returns:
        Tensor[]: the loss.
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or not logits.is_floating_point():
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits must be a floating-point tensor of shape (B, K), got {shape}")
    if not torch.isfinite(logits).all():
        raise ValueError("logits holds NaN or infinite values")
    check_labels(labels, *logits.shape)
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    if not kl_weight >= 0:
        raise ValueError(f"kl_weight must be >= 0, got {kl_weight!r}")
    labels = labels.to(logits.dtype)
    positives = labels.sum(dim=1, keepdim=True)
    if (positives <= 0).any():
        raise ValueError("every sample needs at least one positive label for the evidential loss")
    alpha = evidence(logits, function) + 1.0
    strength = alpha.sum(dim=1, keepdim=True)
    phi = torch.log if kind == "log" else torch.digamma
    if uncertainty_weighting:
        uncertainty = (logits.shape[1] / strength).detach()
        inverse = labels / alpha
        weights = (1.0 - uncertainty) * positives * inverse / inverse.sum(dim=1, keepdim=True)
    else:
        weights = labels
    loss = (weights * (phi(strength) - phi(alpha))).sum(dim=1)
    if kl_weight:
        loss = loss + kl_weight * _kl_to_uniform(labels + (1.0 - labels) * alpha)
    return loss.mean()


class EvidentialLoss(nn.Module):
    """Module form of :func:`evidential_loss`; ``kl_weight`` may be changed between steps (annealing)."""

    def __init__(self, function: str = "exp", kind: str = "log", uncertainty_weighting: bool = True,
                 kl_weight: float = 0.0) -> None:
        super().__init__()
        if function not in EVIDENCE:
            raise ValueError(f"evidence function must be one of {EVIDENCE}, got {function!r}")
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
        self.function, self.kind = function, kind
        self.uncertainty_weighting = uncertainty_weighting
        self.kl_weight = float(kl_weight)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return evidential_loss(logits, labels, function=self.function, kind=self.kind,
                               uncertainty_weighting=self.uncertainty_weighting, kl_weight=self.kl_weight)

    def extra_repr(self) -> str:
        return (f"function={self.function!r}, kind={self.kind!r}, "
                f"uncertainty_weighting={self.uncertainty_weighting}, kl_weight={self.kl_weight}")
