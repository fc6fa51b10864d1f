"""wsl: weakly-supervised localization with exact marginalized average aggregation (MAAN)."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# The public API is imported on first use (PEP 562), so numpy-only parts such as ``wsl.metrics``
# and the ``wsl-video evaluate`` command do not pay for importing torch.
_LAZY = {
    "Aggregation": "wsl.aggregators",
    "build_aggregator": "wsl.aggregators",
    "get_aggregator": "wsl.aggregators",
    "aggregator_info": "wsl.aggregators",
    "list_aggregators": "wsl.aggregators",
    "describe_aggregators": "wsl.aggregators",
    "register_aggregator": "wsl.aggregators",
    "refresh_plugins": "wsl.aggregators",
    "class_activation": "wsl.cam",
    "linear_class_activation": "wsl.cam",
    "set_validation": "wsl._validation",
    "validation": "wsl._validation",
}
_SUBMODULES = {"aggregators", "cam", "functional", "localization", "losses", "metrics", "reference", "registry",
               "utils"}

__all__ = [
    "Aggregation",
    "build_aggregator",
    "get_aggregator",
    "aggregator_info",
    "list_aggregators",
    "describe_aggregators",
    "register_aggregator",
    "refresh_plugins",
    "class_activation",
    "linear_class_activation",
    "functional",
    "set_validation",
    "validation",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"wsl.{name}")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'wsl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
