"""wsl: weakly-supervised localization with exact marginalized average aggregation (MAAN)."""

from . import functional
from .aggregators import (
    Aggregation,
    build_aggregator,
    list_aggregators,
    refresh_plugins,
    register_aggregator,
)
from .cam import class_activation
from .validation import set_validation, validation

__version__ = "0.1.0"

__all__ = [
    "Aggregation",
    "build_aggregator",
    "list_aggregators",
    "register_aggregator",
    "refresh_plugins",
    "class_activation",
    "functional",
    "set_validation",
    "validation",
]
