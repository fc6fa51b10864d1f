"""Aggregators: turn per-position features (B, C, *S) into one feature per sample (B, C)."""

from .adapter import AggregatorAdapter
from .attention import AttentionAggregator, AttentionHead
from .base import Aggregation, Aggregator
from .maa import MarginalizedAverage
from .pooling import MaxPool, MeanPool, TopKMeanPool
from .registry import (
    ENTRY_POINT_GROUP,
    AggregatorInfo,
    _finish_builtins,
    aggregator_info,
    build_aggregator,
    build_logit_pool,
    check_aggregator_options,
    describe_aggregators,
    get_aggregator,
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
    "AggregatorAdapter",
    "AggregatorInfo",
    "ENTRY_POINT_GROUP",
    "aggregator_info",
    "build_aggregator",
    "build_logit_pool",
    "check_aggregator_options",
    "get_aggregator",
    "list_aggregators",
    "describe_aggregators",
    "refresh_plugins",
    "register_aggregator",
]
