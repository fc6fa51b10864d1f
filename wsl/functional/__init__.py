"""Functional ops: exact marginalized average aggregation and weighted pooling."""

from .maa import maa_weights, marginalized_average, weighted_pool

__all__ = ["maa_weights", "marginalized_average", "weighted_pool"]
