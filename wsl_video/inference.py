"""Inference: video-level class probabilities, class activation sequences and detections.

For each test video (paper Sec. 2.4 and 3.1):

1. video-level class probabilities, on the same footing as training (default ``"sampled"``): the
   aggregator sees ``num_segments`` uniformly spaced snippets, averaged over ``score_samples``
   uniformly shifted samples; ``"full"`` aggregates every snippet instead;
2. classes whose fused probability is below ``class_threshold`` (0.1) are rejected; when no class
   passes, the single most probable class is kept so that every video gets detections;
3. the CAS over all snippets, fused across streams, is cut at fractions of its per-class maximum;
   connected components become proposals scored by their mean CAS, followed by per-class NMS and
   a per-video cap (:func:`wsl.localization.temporal.detect_actions`).
"""

from __future__ import annotations

from typing import Callable, Dict, List, NamedTuple, Sequence, Tuple

import numpy as np
import torch

from wsl_video.config import InferenceConfig
from wsl_video.model import TemporalLocalizer

__all__ = ["VideoPrediction", "shifted_uniform_snippets", "predict_video", "kept_classes", "localize",
           "predict_dataset", "DatasetPrediction"]

Detection = Tuple[int, float, float, float]
DEFAULT_CAS_THRESHOLDS = (0.2,)  # fractions of the CAS maximum where inference.cas_thresholds is empty


class VideoPrediction(NamedTuple):
    """scores (ndarray[K]) fused video-level probabilities; cas (ndarray[T, K]) fused CAS; attention
    (ndarray[T]) the class-agnostic foreground attention of models that have one (``snippet_attention``), else None."""

    scores: np.ndarray
    cas: np.ndarray
    attention: np.ndarray | None = None


class DatasetPrediction(NamedTuple):
    """detections: video -> [(class_id, start_s, end_s, score)]; scores (ndarray[N, K]) in ``names`` order."""

    detections: Dict[str, List[Detection]]
    scores: np.ndarray
    names: List[str]

    def results(self, classes: Sequence[str]) -> Dict[str, List[dict]]:
        """ActivityNet ``results``: video -> [{"label", "segment": [start, end], "score"}]."""
        return {video: [{"label": classes[c], "segment": [float(s), float(e)], "score": float(score)}
                        for c, s, e, score in rows]
                for video, rows in self.detections.items()}

    def video_scores(self, classes: Sequence[str]) -> Dict[str, Dict[str, float]]:
        """video -> {label: probability}, for classification mAP."""
        return {video: {label: float(p) for label, p in zip(classes, row)}
                for video, row in zip(self.names, self.scores)}


def shifted_uniform_snippets(num_snippets: int, num_segments: int, num_samples: int) -> np.ndarray:
    """Snippet indices of ``num_samples`` uniform samples, one snippet per segment, each shifted.

    Sample ``k`` takes, in each of the ``num_segments`` equal segments, the snippet at relative offset
    ``(k + 0.5) / num_samples`` of the segment. Returns ndarray[num_samples, num_segments] (int64).
    """
    if num_snippets <= 0:
        raise ValueError(f"num_snippets must be positive, got {num_snippets}")
    segments = np.arange(num_segments, dtype=np.float64)[None, :]
    offsets = (np.arange(num_samples, dtype=np.float64)[:, None] + 0.5) / num_samples
    index = np.floor((segments + offsets) * num_snippets / num_segments).astype(np.int64)
    return np.clip(index, 0, num_snippets - 1)


def _stack(features: Dict[str, np.ndarray], device: torch.device) -> Dict[str, torch.Tensor]:
    return {name: torch.as_tensor(np.ascontiguousarray(f), dtype=torch.float32, device=device)[None]
            for name, f in features.items()}


@torch.no_grad()
def predict_video(model: TemporalLocalizer, features: Dict[str, np.ndarray], config: InferenceConfig,
                  num_segments: int = 20) -> VideoPrediction:
    """Fused class probabilities and CAS of one video.

    Args:
        model: a trained model in eval mode.
        features: stream -> ndarray[T, D] (all snippets of the video).
        config: inference settings (``video_scores``, ``score_samples``).
        num_segments: T used in training.
    """
    device = next(model.parameters()).device
    for name in model.stream_names:
        if name not in features:
            raise ValueError(f"the model reads a {name!r} stream, the features have {sorted(features)}")
        expected, found = model.streams[name].classifier.in_features, np.shape(features[name])[-1]
        if found != expected:
            raise ValueError(f"{name} features have {found} dims, the model was trained on {expected}: "
                             "these are not the features the run was trained on")
    lengths = {name: len(f) for name, f in features.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"streams have different numbers of snippets: {lengths}")
    num_snippets = next(iter(lengths.values()))
    if num_snippets == 0:
        raise ValueError("video has no snippets")
    full = _stack(features, device)
    attention = None
    if config.video_scores == "full" and hasattr(model, "predictions"):  # one forward pass for all three
        scores, cas, snippet_attention = model.predictions(full)
        scores, cas = scores[0], cas[0]
        if snippet_attention is not None:
            attention = snippet_attention[0].cpu().numpy().astype(np.float64)
    elif config.video_scores == "full":
        cas = model.cas(full)[0]
        scores = model.probabilities(full)[0]
    else:
        cas = model.cas(full)[0]
        index = torch.as_tensor(shifted_uniform_snippets(num_snippets, num_segments, config.score_samples),
                                device=device)
        sampled = {name: f[0][index] for name, f in full.items()}  # (S, T, D)
        scores = model.probabilities(sampled).mean(dim=0)
    if not (torch.isfinite(scores).all() and torch.isfinite(cas).all()):
        from wsl.utils.errors import TrainingDiverged

        raise TrainingDiverged("non-finite scores or CAS: the model has diverged")
    if attention is None and hasattr(model, "snippet_attention"):
        attention = model.snippet_attention(full)[0].cpu().numpy().astype(np.float64)
    return VideoPrediction(scores.cpu().numpy().astype(np.float64), cas.cpu().numpy().astype(np.float64),
                           attention)


def kept_classes(scores: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """Class ids whose probability reaches ``threshold``; the top class when none does."""
    keep = np.flatnonzero(scores >= threshold)
    if keep.size == 0:
        keep = np.array([int(np.argmax(scores))])
    return keep


def localize(prediction: VideoPrediction, seconds_per_snippet: float, config: InferenceConfig,
             duration: float | None = None) -> List[Detection]:
    """Detections ``(class_id, start_s, end_s, score)`` of one video from its prediction."""
    from wsl.localization.temporal import detect_actions

    classes = kept_classes(prediction.scores, config.class_threshold)
    return detect_actions(
        prediction.cas, [int(c) for c in classes], seconds_per_snippet,
        thresholds=tuple(config.cas_thresholds or DEFAULT_CAS_THRESHOLDS), scoring=config.scoring, nms=config.nms,
        nms_iou=config.nms_iou, soft_sigma=config.soft_sigma, duration=duration,
        max_detections=config.max_detections,
    )


def predict_dataset(model: TemporalLocalizer, dataset, config: InferenceConfig, num_segments: int = 20,
                    progress: bool = True, localize_video: Callable | None = None) -> DatasetPrediction:
    """Run :func:`predict_video` and :func:`localize` on every video of ``dataset``.

    ``localize_video`` replaces :func:`localize` (same signature): a method's own detection rules
    (:meth:`wsl_video.methods.VideoMethod.localize`).
    """
    localize_video = localize_video or localize
    from tqdm import tqdm

    model.eval()
    detections: Dict[str, List[Detection]] = {}
    scores = np.zeros((len(dataset), len(dataset.classes)))
    names = []
    videos = tqdm(dataset.videos, desc="detect", unit="video", disable=not progress, leave=False)
    for i, video in enumerate(videos):
        try:
            prediction = predict_video(model, dataset.features(i), config, num_segments)
        except ValueError as error:
            raise type(error)(f"video {video.name}: {error}") from None
        scores[i] = prediction.scores
        names.append(video.name)
        detections[video.name] = localize_video(prediction, video.seconds_per_snippet, config, video.duration)
    return DatasetPrediction(detections, scores, names)
