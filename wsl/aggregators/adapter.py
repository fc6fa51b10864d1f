"""Plugins that do not subclass :class:`Aggregator`, wrapped once at load so that every aggregator has
``uses_attention``, ``attention_map`` and returns an :class:`Aggregation`."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Optional

import torch
from torch import nn

from .base import Aggregation, Aggregator

__all__ = ["AggregatorAdapter", "adapt_plugin"]


def _as_aggregation(out: Any) -> Aggregation:
    if isinstance(out, Aggregation):
        return out
    if isinstance(out, torch.Tensor):
        return Aggregation(out, None, None)
    if hasattr(out, "pooled"):
        return Aggregation(out.pooled, getattr(out, "attention", None), getattr(out, "weights", None))
    if isinstance(out, (tuple, list)) and len(out) == 3:
        return Aggregation(*out)
    raise TypeError(f"an aggregator must return an Aggregation (pooled, attention, weights), got {type(out).__name__}")


class AggregatorAdapter(Aggregator):
    """An :class:`Aggregator` around a module that follows the call contract ``module(x, mask=None)`` only.

    The module may return an :class:`Aggregation`, any object with ``pooled`` (and optionally ``attention``,
    ``weights``), a 3-tuple, or the pooled Tensor[B, C] alone.

    Args:
        module: the plugin's module; its parameters live under ``module.``.
        uses_attention: whether it returns an attention map (the module's own ``uses_attention`` wins).
    """

    def __init__(self, module: nn.Module, uses_attention: bool = False) -> None:
        super().__init__()
        self.module = module
        self.uses_attention = bool(getattr(module, "uses_attention", uses_attention))

    def aggregate(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> Aggregation:
        return _as_aggregation(self.module(x, mask=mask))

    def attention_map(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> Optional[torch.Tensor]:
        own = getattr(self.module, "attention_map", None)
        return own(x, mask) if callable(own) else self(x, mask).attention


def adapt_plugin(factory: Callable[..., Any]) -> Callable[..., Aggregator]:
    """``factory`` itself when it is an :class:`Aggregator` subclass, else a factory that wraps what it builds
    in :class:`AggregatorAdapter` (keeping its docstring, signature and ``uses_attention``)."""
    if isinstance(factory, type) and issubclass(factory, Aggregator):
        return factory
    uses_attention = bool(getattr(factory, "uses_attention", False))

    @functools.wraps(factory, updated=())
    def build(*args: Any, **kwargs: Any) -> Aggregator:
        module = factory(*args, **kwargs)
        if isinstance(module, Aggregator):
            return module
        if not isinstance(module, nn.Module):
            raise TypeError(f"{getattr(factory, '__qualname__', factory)!r} built a {type(module).__name__}, "
                            "not a torch.nn.Module")
        return AggregatorAdapter(module, uses_attention)

    build.uses_attention = uses_attention
    build.training_defaults = dict(getattr(factory, "training_defaults", {}) or {})
    try:
        build.__signature__ = inspect.signature(factory)
    except (TypeError, ValueError):
        pass
    return build
