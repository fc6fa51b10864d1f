"""CO2-Net (Hong, Feng, Xu, Shan and Zheng, ACM MM 2021): cross-modal consensus, attention, top-k MIL, mutual learning.

Model (on separate RGB and flow streams, ``data.streams: two``): two cross-modal consensus modules
(:class:`ConsensusModule`), one per modality, re-weight the channels of the main modality's features ``x_m``
(Tensor[B, D_m, T]) with ``sigmoid(local(x_a) * global(x_m))``: ``local`` a temporal convolution of the auxiliary
modality's features, ``global`` the same kind of convolution of the main modality's temporal average; each gives
an enhanced feature and a foreground attention ``a_m`` in (0, 1) per snippet (three temporal convolutions
D_m -> 512 -> 512 -> 1 and a sigmoid). The fused attention is ``a = (a_rgb + a_flow) / 2``; the enhanced features
are concatenated (2048 channels for I3D), fused by a 1x1 convolution and classified by a temporal convolution into
K + 1 classes per snippet (the last the background): the CAS ``s`` (Tensor[B, K + 1, T]). The attention-weighted
("suppressed") CAS is ``a (s - min_c s) + min_c s`` (``min_c`` over the classes of each snippet).

ActivityNet variant (the authors' ``ANT_CO2``): with ``temporal_filter = w > 1`` (``model.temporal_filter``; 13 on
ActivityNet, from ``60 // 5`` made odd), the CAS (all K + 1 classes) and the three attentions are smoothed over time
by a moving average of width ``w`` (:func:`temporal_average`: zeros beyond the video, every window divided by ``w``)
right after the classifier and the attention heads, before the suppression, the pooling, the losses and inference;
the fused features are not. ``w = 1`` (the default elsewhere) is the THUMOS14 model.

Video logits: each CAS pooled over time by ``model.aggregator``: ``topk_mean`` with ``ratio = 7`` (the mean of the
``ceil(T / 7)`` highest logits of each class; the authors take ``T // 7``) by default; any registered aggregator
pools the CAS instead, with the K + 1 classes as its channels.

Loss (:func:`co2net_loss`): ``MIL(s, [y, 1]) + MIL(s_supp, [y, 0]) + 1 * CASL(s_supp) + 1 * mutual
+ 0.8 * (norm(a) + norm(a_rgb) + norm(a_flow)) / 3 + 0.8 * (guide(a) + guide(a_rgb) + guide(a_flow)) / 3`` with the
softmax cross-entropy of the pooled logits against the normalised labels (:func:`wsl.losses.mil_cross_entropy`),
the co-activity loss of the suppressed CAS over the fused features on the first three pairs of videos
(:func:`wsl.losses.coactivity_loss`, margin 0.5), ``mutual = (MSE(a_rgb, sg(a_flow)) + MSE(a_flow, sg(a_rgb))) / 2``
(``sg``: stop-gradient), ``norm(a)`` the mean attention and ``guide(a)`` the mean of ``|1 - a - p_bg|`` with
``p_bg`` the softmax probability of the background in ``s``.

Batches (:meth:`CO2Net.sample_batch`): three pairs of different videos sharing a class, the rest uniform, each
video as ``train.num_segments`` (500) snippets, one at random in each of as many equal segments.

Inference (:meth:`CO2Net.localize`), as the authors': video scores are the softmax over the K + 1 classes of the
pooled attention-weighted CAS ``a s`` (background dropped); classes scoring at least ``class_threshold`` (0.2; the
best class when none does) are localized; the fused attention is cut at each of ``cas_thresholds``
(0.1, ..., 0.9, ten values); every run of snippets strictly above a cut is a proposal of each kept class, scored
by the outer-inner contrast of that class's ``a s`` (outer region a quarter of the run's length on each side) plus
``0.2 *`` the class's video score; per-class soft NMS (Gaussian, ``soft_sigma`` 0.3).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Dict, List, Mapping, NamedTuple, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from wsl_video.data.factory import ACTIVITYNET_DATASETS

from .base import Batch, CutCurve, VideoMethod
from .batches import draw_paired_videos, stack_sampled_snippets
from .registry import register_method

__all__ = ["CO2Net", "CO2NetModel", "CO2NetOutput", "ConsensusModule", "co2net_loss", "co2net_detections",
           "suppress_cas", "temporal_average", "activitynet_filter_width", "LOSS_WEIGHTS", "TOPK_RATIO",
           "ACTIVITYNET_TOPK_RATIO", "ACTIVITYNET_DEFAULTS", "PAIRS", "OIC_GAMMA"]

LOSS_WEIGHTS = {"contrastive": 1.0, "mutual": 1.0, "norm": 0.8, "guide": 0.8}
"""The authors' ``alpha3`` (co-activity), ``alpha4`` (mutual learning), ``alpha1`` (norm), ``alpha2`` (guide)."""
TOPK_RATIO = 7.0
"""The top-k pooling averages ``T / 7`` snippets per class in training (the authors' ``k = 7`` on THUMOS14)."""
ACTIVITYNET_TOPK_RATIO = 5.0
"""The authors' ``k = 5`` on ActivityNet1.2 (``run.sh`` of CO2-Net, ``scripts/train_activitynet.sh`` of DELU)."""
FILTER_DIVISOR = 5
"""The authors' ``t``: the ActivityNet filter spans about ``1 / 5`` of the training snippets."""
PAIRS = 3
"""Pairs of videos sharing a class in every batch (the authors' ``num_similar``)."""
OIC_GAMMA = 0.2
"""A proposal scores its outer-inner contrast plus ``0.2 *`` its class's video score."""
OUTER_FRACTION = 0.25
RGB, FLOW = "rgb", "flow"


def _init_weights(module: nn.Module) -> None:
    """The authors' initialisation: Kaiming-uniform weights, zero biases."""
    if isinstance(module, (nn.Conv1d, nn.Linear)):
        nn.init.kaiming_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of values (Tensor[B, T]) over the valid snippets of mask (BoolTensor[B, T] or None)."""
    if mask is None:
        return values.mean()
    weights = mask.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


class ConsensusModule(nn.Module):
    """Cross-modal consensus module: the main modality's features re-weighted by both modalities, and an attention.

    Args:
        main_channels: ``D_m`` of the main modality (its enhanced features keep this size).
        aux_channels: ``D_a`` of the auxiliary modality.
        hidden: channels of the attention head (512).
        dropout: dropout of the module (0.5).

    ``forward(main (Tensor[B, D_m, T]), aux (Tensor[B, D_a, T]), mask)`` -> (attention Tensor[B, T] in (0, 1),
    enhanced Tensor[B, D_m, T]).
    """

    def __init__(self, main_channels: int, aux_channels: int, hidden: int = 512, dropout: float = 0.5) -> None:
        super().__init__()
        self.global_gate = nn.Sequential(nn.Conv1d(main_channels, main_channels, 3, padding=1), nn.LeakyReLU(0.2),
                                         nn.Dropout(dropout))
        self.local_gate = nn.Sequential(nn.Conv1d(aux_channels, main_channels, 3, padding=1), nn.LeakyReLU(0.2),
                                        nn.Dropout(dropout))
        self.attention = nn.Sequential(
            nn.Conv1d(main_channels, hidden, 3, padding=1), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Conv1d(hidden, hidden, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv1d(hidden, 1, 1), nn.Dropout(dropout))

    def forward(self, main: torch.Tensor, aux: torch.Tensor,
                mask: torch.Tensor | None = None) -> Tuple[torch.Tensor, torch.Tensor]:
        if mask is None:
            average = main.mean(dim=2, keepdim=True)
        else:
            weights = mask.unsqueeze(1).to(main.dtype)
            average = (main * weights).sum(dim=2, keepdim=True) / weights.sum(dim=2, keepdim=True).clamp_min(1.0)
        enhanced = torch.sigmoid(self.local_gate(aux) * self.global_gate(average)) * main
        attention = torch.sigmoid(self.attention(enhanced)).squeeze(1)
        return attention, enhanced


class CO2NetOutput(NamedTuple):
    """features (Tensor[B, D_rgb + D_flow, T]) fused; cas, cas_supp (Tensor[B, K + 1, T]); attention, rgb_attention,
    flow_attention (Tensor[B, T]); video_logits, supp_logits (Tensor[B, K + 1]) the pooled CAS; mask."""

    features: torch.Tensor
    cas: torch.Tensor
    cas_supp: torch.Tensor
    attention: torch.Tensor
    rgb_attention: torch.Tensor
    flow_attention: torch.Tensor
    video_logits: torch.Tensor
    supp_logits: torch.Tensor
    mask: torch.Tensor | None


def temporal_average(values: torch.Tensor, width: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Moving average of ``width`` (odd) snippets over the last axis, centred, with zeros beyond the video (and
    at the padded snippets of ``mask``) counted: ``out[..., t] = sum_{|j| <= width // 2} x[..., t + j] / width``.

    values: Tensor[B, C, T] or Tensor[B, T]; mask: BoolTensor[B, T] (True = valid) or None. ``width = 1`` returns
    ``values`` itself. The authors' ActivityNet model averages this way (zero padding included in the count).
    """
    if width == 1:
        return values
    if width < 1 or width % 2 == 0:
        raise ValueError(f"the temporal filter width must be an odd positive integer, got {width!r}")
    flat = values.dim() == 2
    x = values.unsqueeze(1) if flat else values
    if mask is not None:
        x = x * mask.unsqueeze(1).to(x.dtype)
    out = torch.nn.functional.avg_pool1d(x, width, stride=1, padding=width // 2, count_include_pad=True)
    return out.squeeze(1) if flat else out


def activitynet_filter_width(num_segments: int) -> int:
    """The authors' filter width for ``num_segments`` training snippets: ``(T // 5) // 2 * 2 + 1`` (13 for 60)."""
    return (int(num_segments) // FILTER_DIVISOR) // 2 * 2 + 1


def suppress_cas(cas: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """``a (s - min_c s) + min_c s``: cas (Tensor[B, C, T]) weighted by attention (Tensor[B, T]), the minimum over
    the classes of each snippet kept where the attention is 0."""
    low = cas.min(dim=1, keepdim=True).values
    return attention.unsqueeze(1) * (cas - low) + low


class CO2NetModel(nn.Module):
    """CO2-Net on the RGB and flow streams.

    Args:
        rgb_channels, flow_channels: feature dimensions (1024 each for I3D).
        num_classes: ``K`` action classes (K + 1 outputs, the last the background).
        aggregator: the pooling of the CAS into video logits (``topk_mean`` with ratio 7 is CO2-Net's).
        aggregator_kwargs: its keyword options.
        dropout: dropout of the fusion and the classifier (0.7).
        temporal_filter: width of the moving average (:func:`temporal_average`) over the CAS and the attentions,
            odd; 1 (the default, the THUMOS14 model): none; the authors' ActivityNet model uses 13.
    """

    def __init__(self, rgb_channels: int, flow_channels: int, num_classes: int, aggregator: str = "topk_mean",
                 aggregator_kwargs: Mapping[str, Any] | None = None, dropout: float = 0.7,
                 temporal_filter: int = 1) -> None:
        super().__init__()
        from wsl.aggregators import build_logit_pool

        if not (isinstance(temporal_filter, int) and temporal_filter >= 1 and temporal_filter % 2 == 1):
            raise ValueError(f"temporal_filter must be an odd positive integer, got {temporal_filter!r}")
        self.temporal_filter = temporal_filter
        self.stream_names = (RGB, FLOW)
        self.num_classes = num_classes
        self.channels = {RGB: int(rgb_channels), FLOW: int(flow_channels)}
        fused = self.channels[RGB] + self.channels[FLOW]
        self.rgb_consensus = ConsensusModule(rgb_channels, flow_channels)
        self.flow_consensus = ConsensusModule(flow_channels, rgb_channels)
        self.fusion = nn.Sequential(nn.Conv1d(fused, fused, 1), nn.LeakyReLU(0.2), nn.Dropout(dropout))
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Conv1d(fused, fused, 3, padding=1), nn.LeakyReLU(0.2),
                                        nn.Dropout(0.7), nn.Conv1d(fused, num_classes + 1, 1))
        self.apply(_init_weights)
        kwargs = dict(aggregator_kwargs or {})
        if aggregator == "topk_mean" and not kwargs:
            kwargs = {"ratio": TOPK_RATIO}
        self.pool = build_logit_pool(aggregator, channels=num_classes + 1, **kwargs)

    @property
    def streams(self) -> Dict[str, Any]:
        """stream -> an object whose ``classifier.in_features`` is the stream's feature size (inference checks)."""
        return {name: SimpleNamespace(classifier=SimpleNamespace(in_features=dim))
                for name, dim in self.channels.items()}

    @property
    def uses_attention(self) -> bool:
        return bool(self.pool.uses_attention)

    def forward(self, features: Mapping[str, torch.Tensor], mask: torch.Tensor | None = None) -> CO2NetOutput:
        """features: {"rgb": Tensor[B, T, D_rgb], "flow": Tensor[B, T, D_flow]} -> :class:`CO2NetOutput`."""
        rgb, flow = features[RGB].transpose(1, 2), features[FLOW].transpose(1, 2)
        if mask is not None:
            rgb, flow = rgb * mask.unsqueeze(1), flow * mask.unsqueeze(1)
        rgb_attention, rgb_enhanced = self.rgb_consensus(rgb, flow, mask)
        flow_attention, flow_enhanced = self.flow_consensus(flow, rgb, mask)
        attention = (rgb_attention + flow_attention) / 2
        fused = self.fusion(torch.cat([rgb_enhanced, flow_enhanced], dim=1))
        cas = self.classifier(fused)
        if self.temporal_filter > 1:
            width = self.temporal_filter
            cas = temporal_average(cas, width, mask)
            attention = temporal_average(attention, width, mask)
            rgb_attention = temporal_average(rgb_attention, width, mask)
            flow_attention = temporal_average(flow_attention, width, mask)
        cas_supp = suppress_cas(cas, attention)
        video_logits = self.pool(cas, mask=mask).pooled
        supp_logits = self.pool(cas_supp, mask=mask).pooled
        return CO2NetOutput(fused, cas, cas_supp, attention, rgb_attention, flow_attention, video_logits,
                            supp_logits, mask)

    def _weighted(self, features: Mapping[str, torch.Tensor], mask: torch.Tensor | None):
        out = self(features, mask)
        return out.cas * out.attention.unsqueeze(1), out

    def probabilities(self, features: Mapping[str, torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        """Softmax over the K + 1 classes of the pooled ``a s``, background dropped: Tensor[B, K]."""
        weighted, _ = self._weighted(features, mask)
        return torch.softmax(self.pool(weighted, mask=mask).pooled, dim=1)[:, :-1]

    def cas(self, features: Mapping[str, torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        """The attention-weighted CAS ``a s`` of the K action classes, Tensor[B, T, K]."""
        weighted, _ = self._weighted(features, mask)
        return weighted[:, :-1].transpose(1, 2)

    def snippet_attention(self, features: Mapping[str, torch.Tensor],
                          mask: torch.Tensor | None = None) -> torch.Tensor:
        """The fused foreground attention ``a``, Tensor[B, T]."""
        return self(features, mask).attention

    def predictions(self, features: Mapping[str, torch.Tensor], mask: torch.Tensor | None = None):
        """:meth:`probabilities`, :meth:`cas` and :meth:`snippet_attention` from one forward pass."""
        weighted, out = self._weighted(features, mask)
        scores = torch.softmax(self.pool(weighted, mask=mask).pooled, dim=1)[:, :-1]
        return scores, weighted[:, :-1].transpose(1, 2), out.attention


def co2net_loss(outputs: CO2NetOutput, labels: torch.Tensor, pairs: int = PAIRS,
                weights: Mapping[str, float] = LOSS_WEIGHTS) -> torch.Tensor:
    """CO2-Net's training loss (see the module docstring); labels (Tensor[B, K]) multi-hot, each video labelled.

    The co-activity term compares videos (0, 1), (2, 3), ... of the first ``2 * pairs`` rows.
    """
    from wsl.losses import coactivity_loss, mil_cross_entropy

    ones = labels.new_ones(labels.shape[0], 1)
    with_background = torch.cat([labels, ones], dim=1)
    without_background = torch.cat([labels, 0 * ones], dim=1)
    mil = mil_cross_entropy(outputs.video_logits, with_background)
    mil_supp = mil_cross_entropy(outputs.supp_logits, without_background)
    paired = min(2 * pairs, 2 * (labels.shape[0] // 2))
    mask = outputs.mask
    contrastive = coactivity_loss(outputs.features[:paired], outputs.cas_supp[:paired], without_background[:paired],
                                  mask[:paired] if mask is not None else None, margin=0.5, pairs="consecutive")
    rgb, flow = outputs.rgb_attention, outputs.flow_attention
    mutual = 0.5 * _masked_mean((rgb - flow.detach()) ** 2, mask) + 0.5 * _masked_mean((flow - rgb.detach()) ** 2, mask)
    background = torch.softmax(outputs.cas, dim=1)[:, -1]  # (B, T)
    attentions = (outputs.attention, rgb, flow)
    norm = sum(_masked_mean(a, mask) for a in attentions) / 3
    guide = sum(_masked_mean((1 - a - background).abs(), mask) for a in attentions) / 3
    return (mil + mil_supp + weights["contrastive"] * contrastive + weights["mutual"] * mutual
            + weights["norm"] * norm + weights["guide"] * guide)


def co2net_detections(cas: np.ndarray, attention: np.ndarray, scores: np.ndarray, seconds_per_snippet: float, *,
                      class_threshold: float = 0.2, thresholds: Sequence[float] = tuple(np.linspace(0.1, 0.9, 10)),
                      gamma: float = OIC_GAMMA, nms: str = "soft", nms_iou: float = 0.7, soft_sigma: float = 0.3,
                      duration: float | None = None,
                      max_detections: int | None = 100) -> List[Tuple[int, float, float, float]]:
    """The authors' detections of one video.

    Args:
        cas: ndarray[T, K] attention-weighted CAS ``a s``.
        attention: ndarray[T] fused attention; the proposals are its runs strictly above each of ``thresholds``.
        scores: ndarray[K] video scores; classes reaching ``class_threshold`` are localized (the best one if none).
        seconds_per_snippet: snippet length in seconds.
        gamma: a proposal of class c scores ``mean(inside) - mean(outer) + gamma * scores[c]`` over ``cas[:, c]``,
            the outer region ``int(0.25 * length)`` snippets on each side (clipped to the video).
        nms, nms_iou, soft_sigma: per-class suppression (``"none"``, ``"hard"``, ``"soft"``).
        duration: clip the detections to the video (seconds), or None.
        max_detections: keep the best this many (all when None).

    Returns:
        list of (class_id, start_s, end_s, score) by decreasing score.
    """
    from wsl.localization.temporal import rank_detections
    from wsl_video.inference import kept_classes

    cas = np.asarray(cas, dtype=np.float64)
    attention = np.asarray(attention, dtype=np.float64).reshape(-1)
    length = cas.shape[0]
    runs = []
    for threshold in thresholds:
        above = np.concatenate([[False], attention > float(threshold), [False]])
        edges = np.flatnonzero(above[1:] != above[:-1])
        runs.extend(zip(edges[0::2].tolist(), edges[1::2].tolist()))
    proposals_by_class: Dict[int, list] = {}
    for c in kept_classes(np.asarray(scores), class_threshold):
        values = cas[:, int(c)]
        proposals = []
        for first, stop in runs:
            size = stop - first
            outer_first = max(0, int(first - OUTER_FRACTION * size))
            outer_last = min(length - 1, int(stop - 1 + OUTER_FRACTION * size))
            outer = np.concatenate([values[outer_first:first], values[stop:outer_last + 1]])
            score = values[first:stop].mean() - (outer.mean() if outer.size else 0.0) + gamma * float(scores[c])
            start, end = first * seconds_per_snippet, stop * seconds_per_snippet
            if duration is not None:
                start, end = min(start, duration), min(end, duration)
            if end > start:
                proposals.append((start, end, score))
        proposals_by_class[int(c)] = proposals
    return rank_detections(proposals_by_class, nms=nms, nms_iou=nms_iou, soft_sigma=soft_sigma,
                           max_detections=max_detections)


class CO2NetBase(VideoMethod):
    """What CO2-Net and the methods built on its network share: checks, model, batches, inference."""

    takes_aggregator = True
    needs_two_streams = True
    takes_temporal_filter = True

    def check_features(self, dataset: Any, config: Any) -> None:
        if tuple(getattr(dataset, "native_streams", ())) == (RGB,):
            raise ValueError(f"method '{config.model.method}' needs RGB and flow features (data.streams: two); "
                             f"{dataset.name} has RGB features only")

    def build_model(self, config: Any, feature_dims: Dict[str, int], num_classes: int) -> CO2NetModel:
        if set(feature_dims) != {RGB, FLOW}:
            raise ValueError(f"method '{config.model.method}' needs the rgb and flow streams, got streams "
                             f"{', '.join(feature_dims)}")
        return CO2NetModel(int(feature_dims[RGB]), int(feature_dims[FLOW]), num_classes, config.model.aggregator,
                           config.model.aggregator_kwargs, temporal_filter=int(config.model.temporal_filter or 1))

    def sample_batch(self, features, labels: np.ndarray, streams, config: Any, rng: np.random.Generator,
                     device: Any) -> Batch:
        """Three pairs of different videos sharing a class first (rows 0-1, 2-3, 4-5), then uniform draws; each
        video as ``num_segments`` sampled snippets; no mask."""
        batch_size = config.train.batch_size
        videos = draw_paired_videos(labels, batch_size, min(PAIRS, batch_size // 2), rng, distinct=True)
        tensors = stack_sampled_snippets(features, videos, streams, config.train.num_segments, rng, device)
        return Batch(videos, tensors, None)

    def localize(self, prediction: Any, seconds_per_snippet: float, config: Any,
                 duration: float | None = None) -> list:
        """The authors' detections (:func:`co2net_detections`): ``cas_thresholds`` cut the fused attention."""
        return co2net_detections(prediction.cas, self._attention(prediction), prediction.scores, seconds_per_snippet,
                                 class_threshold=config.class_threshold,
                                 thresholds=_attention_thresholds(config),
                                 nms=config.nms, nms_iou=config.nms_iou, soft_sigma=config.soft_sigma,
                                 duration=duration, max_detections=config.max_detections)

    def cut_curve(self, prediction: Any, class_id: int, config: Any) -> CutCurve:
        """The fused attention (one curve for every class), cut at the thresholds themselves."""
        thresholds = _attention_thresholds(config)
        return CutCurve("fused attention", self._attention(prediction), thresholds, thresholds)

    def _attention(self, prediction: Any) -> np.ndarray:
        """ndarray[T]: the prediction's fused attention, which this method's detections cut."""
        if prediction.attention is None:
            raise ValueError(f"{type(self).__name__} localizes with the model's attention; the prediction has none")
        return np.asarray(prediction.attention, dtype=np.float64).reshape(-1)


def _attention_thresholds(config: Any) -> Tuple[float, ...]:
    """The run's attention cuts (``inference.cas_thresholds``), the authors' ten from 0.1 to 0.9 when it has none."""
    return tuple(float(t) for t in (config.cas_thresholds or np.linspace(0.1, 0.9, 10)))


CO2NET_DEFAULTS = {
    "data.streams": "two",
    "model.aggregator": "topk_mean",
    "train.batch_size": 10,
    "train.num_segments": 500,
    "train.lr": 5e-5,
    "train.weight_decay": 1e-3,
    "inference.video_scores": "full",
    "inference.class_threshold": 0.2,
    "inference.cas_thresholds": [round(float(v), 6) for v in np.linspace(0.1, 0.9, 10)],
    "inference.scoring": "outer_inner",
    "inference.nms": "soft",
    "inference.soft_sigma": 0.3,
}


def _activitynet_topk(config: Any) -> Dict[str, Any]:
    """The top-k ratio 5 where the run pools with CO2-Net's own ``topk_mean`` (no options for another)."""
    return {"ratio": ACTIVITYNET_TOPK_RATIO} if config.model.aggregator == "topk_mean" else {}


def _activitynet_filter(config: Any) -> int:
    return activitynet_filter_width(config.train.num_segments)


ACTIVITYNET_DEFAULTS = {
    "train.num_segments": 60,
    "train.lr": 3e-5,
    "train.weight_decay": 5e-4,
    "train.iterations": 22000,
    "model.aggregator_kwargs": _activitynet_topk,
    "model.temporal_filter": _activitynet_filter,
}
"""The authors' ActivityNet1.2 recipe, over :data:`CO2NET_DEFAULTS`: ``run.sh`` of harlanhong/MM2021-CO2-Net
(``--k 5 --lr 3e-5 --max-seqlen 60 --max-iter 22000``, ``--use-model ANT_CO2``; weight decay and batch size the
``options.py`` defaults 5e-4 and 10) and the ``ANT_CO2`` model of its ``model.py`` (the filter). Used for
``activitynet`` (1.3) too, where the authors publish no setting."""


@register_method("co2net")
class CO2Net(CO2NetBase):
    """CO2-Net (ACM MM 2021): cross-modal consensus attention, top-k MIL, mutual learning between the streams."""

    defaults = CO2NET_DEFAULTS
    dataset_defaults = {name: ACTIVITYNET_DEFAULTS for name in ACTIVITYNET_DATASETS}

    def loss(self, outputs: CO2NetOutput, labels: torch.Tensor, config: Any) -> torch.Tensor:
        return co2net_loss(outputs, labels)
