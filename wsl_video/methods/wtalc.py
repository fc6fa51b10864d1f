"""W-TALC (Paul, Roy and Roy-Chowdhury, ECCV 2018): top-k MIL loss + co-activity similarity loss.

Model (on the joint RGB+flow vector, ``data.streams: joint``): an embedding ``x = dropout(relu(W x + b))``
(D -> D, dropout 0.7 in training), a linear classifier giving the per-snippet class logits (the CAS,
Tensor[B, K, T]) and the video logits pooled from the CAS by ``model.aggregator``: ``topk_mean`` (mean of the
``ceil(T / 8)`` highest logits of each class, W-TALC's pooling) by default; any registered aggregator pools the
CAS instead, with the K classes as its channels.

Loss: ``lambda * MIL + (1 - lambda) * CASL`` with ``lambda = 0.5``: the softmax cross-entropy of the video
logits against the normalised labels (:func:`wsl.losses.mil_cross_entropy`; with ``topk_mean`` it is
:func:`wsl.losses.topk_mil_loss`) and the co-activity loss (:func:`wsl.losses.coactivity_loss`, margin 0.5) on
the first ``2 * n_similar`` videos of the batch, compared as consecutive pairs.

Batches (:meth:`WTALC.sample_batch`): ``n_similar = 3`` pairs of videos that share a class (a class drawn
uniformly among those with training videos, then two of its videos with replacement), the rest of the batch
drawn uniformly with replacement among the videos with a label (a background-only video has no MIL target);
each video whole, or a random crop of ``train.num_segments`` (750) snippets
when longer, padded to the batch's longest with a mask.

Inference, as the authors': a class is kept when its top-k mean logit is positive (the probabilities are the
sigmoid of the video logits, ``class_threshold`` 0.5); its CAS is min-max normalised over the video, so
``cas_thresholds: [0.5]`` cuts it at ``min + 0.5 (max - min)``; no NMS.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, NamedTuple

import numpy as np
import torch
from torch import nn

from .base import Batch, VideoMethod
from .registry import register_method

__all__ = ["WTALC", "WTALCModel", "WTALCOutput", "N_SIMILAR", "MIL_WEIGHT", "minmax_over_time", "similar_pairs",
           "crop_or_pad"]

N_SIMILAR = 3
"""Pairs of videos sharing a class in every batch (the authors' ``num_similar``)."""
MIL_WEIGHT = 0.5
"""``lambda``: the loss is ``lambda * MIL + (1 - lambda) * co-activity``."""
JOINT = "joint"


class WTALCOutput(NamedTuple):
    """embedded (Tensor[B, D, T]) features, logits (Tensor[B, K, T]) the CAS, video_logits (Tensor[B, K]),
    attention (Tensor[B, T] or None) of the aggregator, mask (BoolTensor[B, T] or None)."""

    embedded: torch.Tensor
    logits: torch.Tensor
    video_logits: torch.Tensor
    attention: torch.Tensor | None
    mask: torch.Tensor | None


def minmax_over_time(cas: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-class min-max normalisation over the valid snippets: cas (Tensor[B, T, K]) -> Tensor[B, T, K] in [0, 1].

    A constant class becomes all zeros (no proposal); padded snippets become 0.
    """
    if mask is None:
        low, high = cas.min(dim=1, keepdim=True).values, cas.max(dim=1, keepdim=True).values
    else:
        valid = mask.unsqueeze(2)
        low = cas.masked_fill(~valid, float("inf")).min(dim=1, keepdim=True).values
        high = cas.masked_fill(~valid, float("-inf")).max(dim=1, keepdim=True).values
    spread = high - low
    out = (cas - low) / torch.where(spread > 0, spread, torch.ones_like(spread))
    out = torch.where(spread > 0, out, torch.zeros_like(out))
    return out if mask is None else out * mask.unsqueeze(2)


class WTALCModel(nn.Module):
    """W-TALC's network on one stream (the joint vector).

    Args:
        channels: feature dimension ``D`` (2048 for I3D RGB+flow).
        num_classes: ``K``.
        aggregator: the pooling of the CAS into video logits (any registered name; ``topk_mean`` is W-TALC's).
        aggregator_kwargs: its keyword options.
        dropout: dropout after the embedding (0.7).
    """

    def __init__(self, channels: int, num_classes: int, aggregator: str = "topk_mean",
                 aggregator_kwargs: Mapping[str, Any] | None = None, dropout: float = 0.7) -> None:
        super().__init__()
        import wsl

        self.stream_names = (JOINT,)
        self.num_classes = num_classes
        self.embedding = nn.Linear(channels, channels)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes)
        for layer in (self.embedding, self.classifier):  # the authors' initialisation
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.pool = wsl.build_aggregator(aggregator, channels=num_classes, **dict(aggregator_kwargs or {}))

    @property
    def streams(self) -> Dict[str, nn.Module]:
        """stream -> the module holding its ``classifier`` (the inference interface)."""
        return {JOINT: self}

    @property
    def uses_attention(self) -> bool:
        return bool(self.pool.uses_attention)

    def forward(self, features: Mapping[str, torch.Tensor], mask: torch.Tensor | None = None) -> WTALCOutput:
        """features: {"joint": Tensor[B, T, D]} -> :class:`WTALCOutput`."""
        x = features[JOINT]
        embedded = self.dropout(torch.relu(self.embedding(x)))  # (B, T, D)
        logits = self.classifier(embedded).transpose(1, 2)  # (B, K, T)
        pooled = self.pool(logits, mask=mask)
        return WTALCOutput(embedded.transpose(1, 2), logits, pooled.pooled, pooled.attention, mask)

    def probabilities(self, features: Mapping[str, torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        """Sigmoid of the video logits, Tensor[B, K] (0.5 <=> a positive pooled logit, the authors' class rule)."""
        return torch.sigmoid(self(features, mask).video_logits)

    def cas(self, features: Mapping[str, torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        """The per-snippet logits min-max normalised per class over the video, Tensor[B, T, K] in [0, 1]."""
        return minmax_over_time(self(features, mask).logits.transpose(1, 2), mask)


def similar_pairs(batch_size: int) -> int:
    """Pairs of videos sharing a class in a batch of ``batch_size`` videos: ``min(N_SIMILAR, batch_size // 2)``."""
    return min(N_SIMILAR, batch_size // 2)


def crop_or_pad(videos: list, streams, max_length: int, rng: np.random.Generator, device: Any):
    """Random crops of ``max_length`` snippets of the longer videos, zero padding to the longest.

    videos: [stream -> ndarray[T_i, D]] -> (stream -> Tensor[B, T, D], BoolTensor[B, T]).
    """
    crops = []
    for video in videos:
        length = len(next(iter(video.values())))
        start = int(rng.integers(0, length - max_length + 1)) if length > max_length else 0
        crops.append({name: video[name][start:start + max_length] for name in streams})
    lengths = [len(next(iter(crop.values()))) for crop in crops]
    longest = max(lengths)
    mask = torch.zeros(len(crops), longest, dtype=torch.bool, device=device)
    tensors = {}
    for name in streams:
        dim = crops[0][name].shape[1]
        padded = np.zeros((len(crops), longest, dim), dtype=np.float32)
        for row, crop in enumerate(crops):
            padded[row, :len(crop[name])] = crop[name]
        tensors[name] = torch.as_tensor(padded, device=device)
    for row, length in enumerate(lengths):
        mask[row, :length] = True
    return tensors, mask


@register_method("wtalc")
class WTALC(VideoMethod):
    """W-TALC (ECCV 2018): embedding + classifier on the joint vector, top-k MIL + co-activity loss."""

    takes_aggregator = True
    needs_two_streams = False
    defaults = {
        "data.streams": "joint",
        "model.aggregator": "topk_mean",
        "train.batch_size": 10,
        "train.num_segments": 750,
        "train.lr": 1e-4,
        "train.weight_decay": 5e-4,
        "inference.video_scores": "full",
        "inference.class_threshold": 0.5,
        "inference.cas_thresholds": [0.5],
        "inference.nms": "none",
    }

    def resolve(self, config: Any) -> None:
        super().resolve(config)
        if config.data.streams != JOINT:
            raise ValueError(f"method '{config.model.method}' reads the joint RGB+flow vector (data.streams: joint), "
                             f"got {config.data.streams!r}")
        if config.train.batch_size < 2:
            raise ValueError(f"method '{config.model.method}' needs train.batch_size >= 2 (pairs of videos), "
                             f"got {config.train.batch_size}")

    def check_features(self, dataset: Any, config: Any) -> None:
        native = tuple(getattr(dataset, "native_streams", ()))
        if native == ("rgb",):
            raise ValueError(f"method '{config.model.method}' needs RGB and flow features (the joint vector); "
                             f"{dataset.name} has RGB features only")
        if not np.asarray(dataset.label_matrix()).any():
            raise ValueError(f"method '{config.model.method}' needs training videos with a label; "
                             f"{dataset.name} ({dataset.subset}) has none")

    def build_model(self, config: Any, feature_dims: Dict[str, int], num_classes: int) -> WTALCModel:
        if tuple(feature_dims) != (JOINT,):
            raise ValueError(f"method '{config.model.method}' reads the joint RGB+flow vector, got streams "
                             f"{', '.join(feature_dims)}")
        return WTALCModel(int(feature_dims[JOINT]), num_classes, config.model.aggregator,
                          config.model.aggregator_kwargs)

    def sample_batch(self, features, labels: np.ndarray, streams, config: Any, rng: np.random.Generator,
                     device: Any) -> Batch:
        """``similar_pairs(B)`` pairs sharing a class first (rows 0-1, 2-3, ...), then uniform draws; crops + mask."""
        batch_size = config.train.batch_size
        classes = [np.flatnonzero(labels[:, c]) for c in range(labels.shape[1])]
        populated = [c for c, members in enumerate(classes) if len(members)]
        chosen = []
        for _ in range(similar_pairs(batch_size)):
            members = classes[populated[int(rng.integers(len(populated)))]]
            chosen.extend(int(members[i]) for i in rng.integers(len(members), size=2))
        labelled = np.flatnonzero(labels.sum(axis=1) > 0)  # the MIL loss needs a positive class per video
        chosen.extend(int(labelled[i]) for i in rng.integers(len(labelled), size=batch_size - len(chosen)))
        videos = np.asarray(chosen, dtype=np.int64)
        tensors, mask = crop_or_pad([features(int(i)) for i in videos], streams, config.train.num_segments, rng,
                                    device)
        return Batch(videos, tensors, mask)

    def loss(self, outputs: WTALCOutput, labels: torch.Tensor, config: Any) -> torch.Tensor:
        from wsl.losses import coactivity_loss, mil_cross_entropy

        mil = mil_cross_entropy(outputs.video_logits, labels)
        paired = 2 * similar_pairs(labels.shape[0])
        mask = outputs.mask[:paired] if outputs.mask is not None else None
        casl = coactivity_loss(outputs.embedded[:paired], outputs.logits[:paired], labels[:paired], mask,
                               margin=0.5, pairs="consecutive")
        return MIL_WEIGHT * mil + (1.0 - MIL_WEIGHT) * casl

