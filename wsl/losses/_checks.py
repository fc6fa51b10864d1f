"""Input checks shared by the losses: precise ``ValueError`` messages, never a silent NaN."""

from __future__ import annotations

from typing import Optional

import torch


def all_finite(x: torch.Tensor) -> bool:
    """True when every entry of ``x`` is finite.

    One sum decides in the usual case (a NaN or an infinity makes the sum non-finite); only a non-finite sum,
    which finite entries can also give by overflow, is checked entry by entry. A sum reads ``x`` once where the
    entry-wise test makes several passes and temporaries: the check of a 2048-channel feature sequence costs a
    few percent of a training iteration otherwise.
    """
    if not x.is_floating_point():
        return True
    return bool(torch.isfinite(x.detach().sum())) or bool(torch.isfinite(x).all())


def check_labels(labels: torch.Tensor, batch: int, classes: int, name: str = "labels") -> None:
    """``labels`` (Tensor[B, K]) with finite entries in [0, 1]."""
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"{name} must be a tensor, got {type(labels).__name__}")
    if labels.shape != (batch, classes):
        raise ValueError(f"{name} must have shape ({batch}, {classes}), got {tuple(labels.shape)}")
    if not torch.isfinite(labels).all() or (labels < 0).any() or (labels > 1).any():
        raise ValueError(f"{name} must hold finite values in [0, 1]")


def check_sequence(x: torch.Tensor, name: str) -> None:
    """``x`` (Tensor[B, C, T]), floating point, finite, with B >= 1 and T >= 1."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a tensor, got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(f"{name} must have shape (B, C, T), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be floating point, got {x.dtype}")
    if x.shape[0] < 1 or x.shape[2] < 1:
        raise ValueError(f"{name} needs at least one sample and one position, got {tuple(x.shape)}")
    if not all_finite(x):
        raise ValueError(f"{name} holds NaN or infinite values")


def check_sequence_mask(mask: Optional[torch.Tensor], batch: int, length: int) -> Optional[torch.Tensor]:
    """``mask`` (BoolTensor[B, T], True = valid) with at least one valid position per sample, or None."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.shape != (batch, length):
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask must have shape ({batch}, {length}), got {shape}")
    mask = mask.bool()
    if not mask.any(dim=1).all():
        raise ValueError("mask leaves a sample without any valid position")
    return mask
