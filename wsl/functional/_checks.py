"""Shape, dtype and value checks shared by the functional ops and the aggregators."""

from __future__ import annotations

import torch

from wsl._validation import validation_enabled


def check_floating(tensor: torch.Tensor, name: str) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {tensor.dtype}")


def check_features(x: torch.Tensor, name: str = "x") -> None:
    """x (Tensor[B, C, *S]) with at least one spatial dim and at least one position."""
    check_floating(x, name)
    if x.dim() < 3:
        raise ValueError(f"{name} must have shape (B, C, *S) with at least one spatial dim, got {tuple(x.shape)}")
    if x.shape[2:].numel() == 0:
        raise ValueError(f"{name} has no positions to aggregate (spatial shape {tuple(x.shape[2:])})")


def check_mask(mask: torch.Tensor | None, shape: torch.Size, name: str = "mask") -> torch.Tensor | None:
    """mask (BoolTensor[B, *S]) matching ``shape``; every sample must keep a valid position."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise ValueError(f"{name} must be a bool tensor (True = valid position), got dtype {mask.dtype}")
    if mask.shape != shape:
        raise ValueError(f"{name} has shape {tuple(mask.shape)} but the positions have shape {tuple(shape)}")
    if validation_enabled():
        valid = mask.reshape(mask.shape[0], -1).any(dim=1)
        if not bool(valid.all()):
            empty = torch.nonzero(~valid).flatten().tolist()
            raise ValueError(f"{name} has no valid position in sample(s) {empty}")
    return mask


def check_probabilities(p: torch.Tensor, name: str = "p") -> None:
    """Values in [0, 1] and not NaN (only when validation is on)."""
    if validation_enabled() and p.numel():
        low, high = torch.aminmax(p.detach())
        low, high = low.item(), high.item()  # NaN propagates into both and fails the test below
        if not (low >= 0.0 and high <= 1.0):
            flat = p.detach().reshape(-1)
            bad = torch.nonzero(torch.isnan(flat) | (flat < 0) | (flat > 1))[0].item()
            index = list(torch.unravel_index(torch.tensor(bad), p.shape))
            raise ValueError(
                f"{name} must lie in [0, 1] without NaN; found {flat[bad].item()} at index {[int(i) for i in index]}"
            )
