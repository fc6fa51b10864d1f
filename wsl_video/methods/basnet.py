"""BaS-Net (Lee, Uh and Byun, AAAI 2020): a background class, a filtering module, base + suppression branches.

Model (on the joint RGB+flow vector, ``data.streams: joint``): a filtering module gives a foreground
attention ``a_t = sigmoid(conv1x1(leaky_relu(conv1x1(x))))`` (D -> 512 -> 1); a classifier shared by the two
branches (two temporal convolutions of width 3 to 2048 channels with leaky ReLU, dropout 0.7 and a 1x1
convolution without bias to K + 1 channels, the last one the background) gives the CAS of the features
(base branch) and of the attention-weighted features ``a_t x_t`` (suppression branch). Each CAS is pooled into
video logits by ``model.aggregator``: ``topk_mean`` (mean of the ``ceil(T / 8)`` highest of each class) by
default, any registered aggregator with the K + 1 classes as its channels; a softmax over the K + 1 classes
gives the video scores.

Loss: ``BCE(base scores, [y, 1] / |[y, 1]|) + BCE(suppression scores, [y, 0] / |y|) + 1e-4 * |a|_1``, the
binary cross-entropies averaged over videos and classes, the L1 norm of the attention summed over snippets
and averaged over videos.

Batches: the default sampling with ``train.num_segments = 750`` (one random snippet in each of 750 equal
segments, snippets repeat in shorter videos). Inference: the suppression branch's scores without the
background (``class_threshold`` 0.25), its CAS min-max normalised per class as the authors do, cut at
0.025, 0.05, ..., 0.225, proposals scored by outer-inner contrast, NMS at tIoU 0.7.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .base import VideoMethod
from .joint import JOINT, JointStreamModel
from .registry import register_method

__all__ = ["BaSNet", "BaSNetModel", "BaSNetOutput", "SnippetClassifier", "FilteringModule", "basnet_loss",
           "normalise_cas", "NORM_WEIGHT"]

NORM_WEIGHT = 1e-4
"""Weight of the L1 norm of the attention (the authors' ``alpha``)."""


class BaSNetOutput(NamedTuple):
    """base_logits, supp_logits (Tensor[B, K + 1]) pooled video logits; cas_base, cas_supp (Tensor[B, K + 1, T]);
    attention (Tensor[B, T]) the filtering module's foreground weights; mask (BoolTensor[B, T] or None)."""

    base_logits: torch.Tensor
    supp_logits: torch.Tensor
    cas_base: torch.Tensor
    cas_supp: torch.Tensor
    attention: torch.Tensor
    mask: torch.Tensor | None


class FilteringModule(nn.Module):
    """Foreground attention: x (Tensor[B, D, T]) -> Tensor[B, T] in (0, 1), two 1x1 convolutions + sigmoid."""

    def __init__(self, channels: int, hidden: int = 512) -> None:
        super().__init__()
        self.hidden = nn.Conv1d(channels, hidden, kernel_size=1)
        self.score = nn.Conv1d(hidden, 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.score(F.leaky_relu(self.hidden(x)))).squeeze(1)


class SnippetClassifier(nn.Module):
    """Per-snippet class logits of K + 1 classes: x (Tensor[B, D, T]) -> Tensor[B, K + 1, T].

    Two temporal convolutions (width 3) to ``hidden`` channels with leaky ReLU, dropout, a 1x1 convolution
    without bias. ``in_features`` is ``D`` (the inference interface checks the features against it).
    """

    def __init__(self, channels: int, num_outputs: int, hidden: int = 2048, dropout: float = 0.7) -> None:
        super().__init__()
        self.in_features = channels
        self.first = nn.Conv1d(channels, hidden, kernel_size=3, padding=1)
        self.second = nn.Conv1d(hidden, hidden, kernel_size=3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Conv1d(hidden, num_outputs, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.second(F.leaky_relu(self.first(x))))
        return self.output(self.dropout(x))


def normalise_cas(cas: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The authors' min-max normalisation over time: ``(c - relu(min)) / (relu(max) - relu(min))`` per class
    (a non-positive spread divides by 1). cas (Tensor[B, T, C]) -> Tensor[B, T, C]; padded snippets become 0."""
    if mask is None:
        low, high = cas.min(dim=1, keepdim=True).values, cas.max(dim=1, keepdim=True).values
    else:
        valid = mask.unsqueeze(2)
        low = cas.masked_fill(~valid, float("inf")).min(dim=1, keepdim=True).values
        high = cas.masked_fill(~valid, float("-inf")).max(dim=1, keepdim=True).values
    low, high = torch.relu(low), torch.relu(high)
    spread = high - low
    out = (cas - low) / torch.where(spread > 0, spread, torch.ones_like(spread))
    return out if mask is None else out * mask.unsqueeze(2)


class BaSNetModel(JointStreamModel):
    """BaS-Net on one stream (the joint vector).

    Args:
        channels: feature dimension ``D`` (2048 for I3D RGB+flow).
        num_classes: ``K`` action classes (the model has K + 1 outputs, the last the background).
        aggregator: the pooling of each CAS into video logits (``topk_mean`` is BaS-Net's).
        aggregator_kwargs: its keyword options.
    """

    def __init__(self, channels: int, num_classes: int, aggregator: str = "topk_mean",
                 aggregator_kwargs: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        from wsl.aggregators import build_logit_pool

        self.num_classes = num_classes
        self.filtering = FilteringModule(channels)
        self.classifier = SnippetClassifier(channels, num_classes + 1)
        self.pool = build_logit_pool(aggregator, channels=num_classes + 1, **dict(aggregator_kwargs or {}))

    def forward(self, features: Mapping[str, torch.Tensor], mask: torch.Tensor | None = None) -> BaSNetOutput:
        """features: {"joint": Tensor[B, T, D]} -> :class:`BaSNetOutput`."""
        x = features[JOINT].transpose(1, 2)  # (B, D, T)
        if mask is not None:
            x = x * mask.unsqueeze(1)
        attention = self.filtering(x)
        if mask is not None:
            attention = attention * mask
        cas_base = self.classifier(x)
        cas_supp = self.classifier(x * attention.unsqueeze(1))
        base = self.pool(cas_base, mask=mask).pooled
        supp = self.pool(cas_supp, mask=mask).pooled
        return BaSNetOutput(base, supp, cas_base, cas_supp, attention, mask)

    def probabilities(self, features: Mapping[str, torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        """The suppression branch's softmax scores of the K action classes, Tensor[B, K]."""
        return torch.softmax(self(features, mask).supp_logits, dim=1)[:, :-1]

    def cas(self, features: Mapping[str, torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        """The suppression branch's CAS of the K action classes, normalised (:func:`normalise_cas`), Tensor[B, T, K]."""
        cas = self(features, mask).cas_supp.transpose(1, 2)
        return normalise_cas(cas, mask)[:, :, :-1]

    def predictions(self, features: Mapping[str, torch.Tensor], mask: torch.Tensor | None = None):
        """:meth:`probabilities`, :meth:`cas` and no attention (None) from one forward pass."""
        out = self(features, mask)
        cas = normalise_cas(out.cas_supp.transpose(1, 2), mask)[:, :, :-1]
        return torch.softmax(out.supp_logits, dim=1)[:, :-1], cas, None


def basnet_loss(outputs: BaSNetOutput, labels: torch.Tensor, norm_weight: float = NORM_WEIGHT) -> torch.Tensor:
    """Base BCE (background label 1) + suppression BCE (background label 0) + ``norm_weight`` * L1(attention).

    labels (Tensor[B, K]) multi-hot; each target row is normalised to sum to one, as the authors do.
    """
    ones = labels.new_ones(labels.shape[0], 1)
    base_target = torch.cat([labels, ones], dim=1)
    supp_target = torch.cat([labels, 0 * ones], dim=1)
    base_target = base_target / base_target.sum(dim=1, keepdim=True)
    supp_target = supp_target / supp_target.sum(dim=1, keepdim=True).clamp_min(1.0)
    base = F.binary_cross_entropy(torch.softmax(outputs.base_logits, dim=1), base_target)
    supp = F.binary_cross_entropy(torch.softmax(outputs.supp_logits, dim=1), supp_target)
    norm = outputs.attention.abs().sum(dim=1).mean()
    return base + supp + norm_weight * norm


@register_method("basnet")
class BaSNet(VideoMethod):
    """BaS-Net (AAAI 2020): background class, filtering module, base + suppression branches."""

    takes_aggregator = True
    needs_two_streams = False
    defaults = {
        "data.streams": "joint",
        "model.aggregator": "topk_mean",
        "train.batch_size": 16,
        "train.num_segments": 750,
        "train.lr": 1e-4,
        "train.weight_decay": 5e-4,
        "inference.video_scores": "full",
        "inference.class_threshold": 0.25,
        "inference.cas_thresholds": [0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.225],
        "inference.scoring": "outer_inner",
        "inference.nms": "hard",
        "inference.nms_iou": 0.7,
    }

    def resolve(self, config: Any) -> None:
        super().resolve(config)
        if config.data.streams != JOINT:
            raise ValueError(f"method '{config.model.method}' reads the joint RGB+flow vector (data.streams: joint), "
                             f"got {config.data.streams!r}")

    def check_features(self, dataset: Any, config: Any) -> None:
        if tuple(getattr(dataset, "native_streams", ())) == ("rgb",):
            raise ValueError(f"method '{config.model.method}' needs RGB and flow features (the joint vector); "
                             f"{dataset.name} has RGB features only")

    def build_model(self, config: Any, feature_dims: Dict[str, int], num_classes: int) -> BaSNetModel:
        if tuple(feature_dims) != (JOINT,):
            raise ValueError(f"method '{config.model.method}' reads the joint RGB+flow vector, got streams "
                             f"{', '.join(feature_dims)}")
        return BaSNetModel(int(feature_dims[JOINT]), num_classes, config.model.aggregator,
                           config.model.aggregator_kwargs)

    def loss(self, outputs: BaSNetOutput, labels: torch.Tensor, config: Any) -> torch.Tensor:
        return basnet_loss(outputs, labels)
