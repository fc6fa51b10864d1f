"""MAAN and its baselines for weakly-supervised temporal action localization.

One :class:`StreamClassifier` per feature stream (RGB and optical flow, or the joint vector): an
aggregator from the :mod:`wsl` registry turns snippet features into a video feature, and a linear
layer gives class logits (paper Fig. 3). The class activation sequence (CAS) of a stream is
``s_t^c = a_t * sigmoid(w_c . x_t + b_c)`` with ``a_t`` the aggregator's attention (Eq. 14 for MAA,
Eq. 12 for STPN); aggregators without attention give the plain sigmoid.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

import wsl
from wsl.cam import class_activation

__all__ = ["StreamOutput", "StreamClassifier", "TemporalLocalizer", "weak_label_loss"]


class StreamOutput(NamedTuple):
    """Video-level output of one stream.

    logits (Tensor[B, K]), attention (Tensor[B, T] or None), weights (Tensor[B, T] or None).
    """

    logits: torch.Tensor
    attention: torch.Tensor | None
    weights: torch.Tensor | None


class StreamClassifier(nn.Module):
    """Aggregator + linear classifier on the snippet features of one stream.

    Args:
        aggregator: any name from :func:`wsl.list_aggregators`.
        channels: feature dimension ``D``.
        num_classes: number of action classes ``K``.
        aggregator_kwargs: extra keyword arguments for :func:`wsl.build_aggregator`.
    """

    def __init__(self, aggregator: str, channels: int, num_classes: int,
                 aggregator_kwargs: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.aggregator = wsl.build_aggregator(aggregator, channels=channels, **dict(aggregator_kwargs or {}))
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> StreamOutput:
        """features (Tensor[B, T, D]), mask (Tensor[B, T] bool, True = valid) -> :class:`StreamOutput`."""
        out = self.aggregator(features.transpose(1, 2), mask=mask)
        return StreamOutput(self.classifier(out.pooled), out.attention, out.weights)

    def cas(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Class activation sequence over all given snippets.

        features (Tensor[B, T, D]) -> Tensor[B, T, K] with values in [0, 1] (scaled by the attention).
        """
        x = features.transpose(1, 2)
        attention = self.aggregator.attention_map(x, mask)
        cas = class_activation(x, self.classifier.weight, self.classifier.bias, attention=attention)
        return cas.transpose(1, 2)


class TemporalLocalizer(nn.Module):
    """One :class:`StreamClassifier` per stream; streams are fused at the score level.

    Args:
        aggregator: aggregator name shared by all streams.
        feature_dims: stream name -> feature dimension, e.g. ``{"rgb": 1024, "flow": 1024}``.
        num_classes: number of classes ``K``.
        aggregator_kwargs: extra keyword arguments for the aggregator.
        stream_weights: fusion weight per stream (default equal, i.e. 0.5 / 0.5 for two streams).
    """

    def __init__(self, aggregator: str, feature_dims: Mapping[str, int], num_classes: int,
                 aggregator_kwargs: Mapping[str, Any] | None = None,
                 stream_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        if not feature_dims:
            raise ValueError("feature_dims must name at least one stream")
        self.stream_names = tuple(feature_dims)
        self.streams = nn.ModuleDict({
            name: StreamClassifier(aggregator, int(dim), num_classes, aggregator_kwargs)
            for name, dim in feature_dims.items()
        })
        if stream_weights is None:
            stream_weights = [1.0 / len(self.stream_names)] * len(self.stream_names)
        if len(stream_weights) != len(self.stream_names):
            raise ValueError(f"stream_weights has {len(stream_weights)} entries "
                             f"for streams {self.stream_names}")
        self.stream_weights = [float(w) for w in stream_weights]
        self.num_classes = num_classes

    @property
    def uses_attention(self) -> bool:
        return bool(self.streams[self.stream_names[0]].aggregator.uses_attention)

    def forward(self, features: Mapping[str, torch.Tensor],
                mask: torch.Tensor | None = None) -> Dict[str, StreamOutput]:
        """features: stream -> Tensor[B, T, D] -> stream -> :class:`StreamOutput`."""
        return {name: self.streams[name](features[name], mask) for name in self.stream_names}

    def fuse(self, per_stream: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Weighted sum of per-stream tensors (probabilities or CAS) with the fusion weights."""
        return sum(w * per_stream[name] for name, w in zip(self.stream_names, self.stream_weights))

    def probabilities(self, features: Mapping[str, torch.Tensor],
                      mask: torch.Tensor | None = None) -> torch.Tensor:
        """Fused video-level class probabilities, Tensor[B, K]."""
        outputs = self(features, mask)
        return self.fuse({name: torch.sigmoid(out.logits) for name, out in outputs.items()})

    def cas(self, features: Mapping[str, torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        """Fused class activation sequence, Tensor[B, T, K]."""
        return self.fuse({name: self.streams[name].cas(features[name], mask) for name in self.stream_names})


def weak_label_loss(outputs: Mapping[str, StreamOutput], labels: torch.Tensor,
                    sparsity_weight: float = 0.0) -> torch.Tensor:
    """Video-level multi-label cross-entropy (paper Eq. 10) summed over streams and classes, averaged
    over videos, plus ``sparsity_weight`` times the L1 norm of the attention (STPN's sparsity term).

    labels (Tensor[B, K]) in {0, 1}.
    """
    total = labels.new_zeros(())
    for out in outputs.values():
        bce = F.binary_cross_entropy_with_logits(out.logits, labels, reduction="none")
        total = total + bce.sum(dim=1).mean()
        if sparsity_weight and out.attention is not None:
            total = total + sparsity_weight * out.attention.abs().flatten(1).sum(dim=1).mean()
    return total
