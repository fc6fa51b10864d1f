"""Aggregators: turn per-position features (B, C, *S) into one feature per sample (B, C)."""

from .attention import AttentionAggregator, AttentionHead
from .base import Aggregation, Aggregator
from .maa import MarginalizedAverage
from .pooling import MaxPool, MeanPool, TopKMeanPool
from .registry import (
    ENTRY_POINT_GROUP,
    _finish_builtins,
    build_aggregator,
    describe_aggregators,
    list_aggregators,
    refresh_plugins,
    register_aggregator,
)
from .sed import AutoPool, LinearSoftmaxPool
from .thresholded import ThresholdedAveragePool
from .weighted import DropoutWeightedSum, NormalizedWeightedSum, SoftmaxWeightedAverage, WeightedSum

_finish_builtins()

__all__ = [
    "Aggregation",
    "Aggregator",
    "AttentionAggregator",
    "AttentionHead",
    "MarginalizedAverage",
    "WeightedSum",
    "DropoutWeightedSum",
    "NormalizedWeightedSum",
    "SoftmaxWeightedAverage",
    "MeanPool",
    "MaxPool",
    "TopKMeanPool",
    "LinearSoftmaxPool",
    "AutoPool",
    "ThresholdedAveragePool",
    "ENTRY_POINT_GROUP",
    "build_aggregator",
    "list_aggregators",
    "describe_aggregators",
    "refresh_plugins",
    "register_aggregator",
]
