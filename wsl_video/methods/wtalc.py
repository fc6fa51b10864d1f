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

Inference (:meth:`WTALC.localize`), as the authors': the CAS is the raw per-snippet logits; a class is localized
when the mean of its ``T // 8`` highest logits, ``c``, is positive (``sigmoid(c) >= class_threshold``, 0.5); its
CAS is cut at ``min + f (max - min)`` for each ``f`` of ``cas_thresholds`` ([0.5]); every run of at least
:data:`MIN_SNIPPETS` snippets strictly above the cut is a detection scored ``max(CAS inside) + 0.7 c``; no NMS
(``inference.nms``), at most ``max_detections`` per video. The video scores (classification mAP) are the
sigmoid of the pooled video logits.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, NamedTuple, Tuple

import numpy as np
import torch
from torch import nn

from .base import Batch, CutCurve, VideoMethod
from .batches import draw_paired_videos
from .joint import JOINT, JointStreamModel
from .registry import register_method

__all__ = ["WTALC", "WTALCModel", "WTALCOutput", "N_SIMILAR", "MIL_WEIGHT", "MIN_SNIPPETS", "CLASS_SCORE_WEIGHT",
           "similar_pairs", "crop_or_pad", "wtalc_detections"]

N_SIMILAR = 3
"""Pairs of videos sharing a class in every batch (the authors' ``num_similar``)."""
MIL_WEIGHT = 0.5
"""``lambda``: the loss is ``lambda * MIL + (1 - lambda) * co-activity``."""
MIN_SNIPPETS = 2
"""Shortest detection, in snippets (the authors drop shorter runs)."""
CLASS_SCORE_WEIGHT = 0.7
"""A detection scores ``max(CAS inside) + 0.7 * c`` with ``c`` the class's top-k mean logit."""


class WTALCOutput(NamedTuple):
    """embedded (Tensor[B, D, T]) features, logits (Tensor[B, K, T]) the CAS, video_logits (Tensor[B, K]),
    attention (Tensor[B, T] or None) of the aggregator, mask (BoolTensor[B, T] or None)."""

    embedded: torch.Tensor
    logits: torch.Tensor
    video_logits: torch.Tensor
    attention: torch.Tensor | None
    mask: torch.Tensor | None


class WTALCModel(JointStreamModel):
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
        from wsl.aggregators import build_logit_pool

        self.num_classes = num_classes
        self.embedding = nn.Linear(channels, channels)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes)
        for layer in (self.embedding, self.classifier):  # the authors' initialisation
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.pool = build_logit_pool(aggregator, channels=num_classes, **dict(aggregator_kwargs or {}))

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
        """The per-snippet class logits, Tensor[B, T, K] (raw, as the authors threshold them)."""
        return self(features, mask).logits.transpose(1, 2)

    def predictions(self, features: Mapping[str, torch.Tensor], mask: torch.Tensor | None = None):
        """:meth:`probabilities`, :meth:`cas` and no attention (None) from one forward pass."""
        out = self(features, mask)
        return torch.sigmoid(out.video_logits), out.logits.transpose(1, 2), None


def wtalc_detections(cas: np.ndarray, seconds_per_snippet: float, *, class_threshold: float = 0.5,
                     fractions=(0.5,), nms: str = "none", nms_iou: float = 0.5, soft_sigma: float = 0.5,
                     duration: float | None = None,
                     max_detections: int | None = 100) -> List[Tuple[int, float, float, float]]:
    """The authors' detections from the raw CAS of one video.

    Args:
        cas: ndarray[T, K] per-snippet class logits.
        seconds_per_snippet: snippet length in seconds.
        class_threshold: a class is localized when ``sigmoid(c) >= class_threshold`` (0.5: ``c >= 0``), ``c`` the
            mean of its ``max(1, T // 8)`` highest logits.
        fractions: cuts at ``min + f (max - min)`` of each class's CAS; runs strictly above a cut, at least
            :data:`MIN_SNIPPETS` long, are detections scored ``max(CAS inside) + 0.7 c``.
        nms, nms_iou, soft_sigma: per-class suppression (``"none"``, ``"hard"``, ``"soft"``).
        duration: clip the detections to the video (seconds), or None.
        max_detections: keep the best this many of the video (all when None).

    Returns:
        list of (class_id, start_s, end_s, score) by decreasing score.
    """
    from wsl.localization.temporal import rank_detections

    cas = np.asarray(cas, dtype=np.float64)
    length = cas.shape[0]
    k = max(1, length // 8)
    top = -np.sort(-cas, axis=0)[:k].mean(axis=0)
    keep = np.flatnonzero(1.0 / (1.0 + np.exp(-top)) >= class_threshold)
    proposals_by_class: Dict[int, list] = {}
    for c in keep:
        values = cas[:, c]
        low, high = values.min(), values.max()
        proposals = []
        for fraction in fractions:
            above = np.concatenate([[False], values > low + float(fraction) * (high - low), [False]])
            edges = np.flatnonzero(above[1:] != above[:-1])
            for first, stop in zip(edges[0::2], edges[1::2]):
                if stop - first < MIN_SNIPPETS:
                    continue
                start, end = first * seconds_per_snippet, stop * seconds_per_snippet
                if duration is not None:
                    start, end = min(start, duration), min(end, duration)
                if end > start:
                    proposals.append((start, end, values[first:stop].max() + CLASS_SCORE_WEIGHT * top[c]))
        proposals_by_class[int(c)] = proposals
    return rank_detections(proposals_by_class, nms=nms, nms_iou=nms_iou, soft_sigma=soft_sigma,
                           max_detections=max_detections)


def _fractions(config: Any) -> Tuple[float, ...]:
    """The run's cut fractions (``inference.cas_thresholds``), the authors' single 0.5 when it has none."""
    return tuple(float(f) for f in (config.cas_thresholds or (0.5,)))


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
        videos = draw_paired_videos(labels, config.train.batch_size, similar_pairs(config.train.batch_size), rng)
        tensors, mask = crop_or_pad([features(int(i)) for i in videos], streams, config.train.num_segments, rng,
                                    device)
        return Batch(videos, tensors, mask)

    def localize(self, prediction: Any, seconds_per_snippet: float, config: Any,
                 duration: float | None = None) -> list:
        """The authors' detections (:func:`wtalc_detections`) with ``class_threshold``, ``cas_thresholds`` (fractions
        of each class's logit range), ``nms``, ``nms_iou``, ``soft_sigma`` and ``max_detections`` of ``config``."""
        return wtalc_detections(prediction.cas, seconds_per_snippet, class_threshold=config.class_threshold,
                                fractions=_fractions(config), nms=config.nms,
                                nms_iou=config.nms_iou, soft_sigma=config.soft_sigma, duration=duration,
                                max_detections=config.max_detections)

    def cut_curve(self, prediction: Any, class_id: int, config: Any) -> CutCurve:
        """The class's raw CAS (logits), cut at ``min + f (max - min)`` for each fraction ``f``."""
        values = np.asarray(prediction.cas, dtype=np.float64)[:, class_id]
        fractions = _fractions(config)
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        return CutCurve("CAS", values, tuple(low + f * (high - low) for f in fractions), fractions,
                        "min + {} × (max − min)")

    def loss(self, outputs: WTALCOutput, labels: torch.Tensor, config: Any) -> torch.Tensor:
        from wsl.losses import coactivity_loss, mil_cross_entropy

        mil = mil_cross_entropy(outputs.video_logits, labels)
        paired = 2 * similar_pairs(labels.shape[0])
        mask = outputs.mask[:paired] if outputs.mask is not None else None
        casl = coactivity_loss(outputs.embedded[:paired], outputs.logits[:paired], labels[:paired], mask,
                               margin=0.5, pairs="consecutive")
        return MIL_WEIGHT * mil + (1.0 - MIL_WEIGHT) * casl

