"""Actions in new video files with a trained run: extract their features as the run's were, then detect.

The run's ``config.yaml`` records how its training features were extracted (``data.extractor``, copied
from the ``manifest.json`` of the ``custom`` dataset it was trained on; :func:`wsl_video.run.run_extractor`).
:func:`localization_settings` rebuilds those settings, so a new video goes through the same decoder,
flow and network as the training videos did; :class:`VideoLocalizer` then runs the same inference as
``wsl-video detect`` (:func:`wsl_video.inference.predict_video` and :func:`~wsl_video.inference.localize`)::

    settings = localization_settings("runs/maan")
    with VideoLocalizer("runs/maan", settings, device="cpu") as localizer:
        result = localizer.localize("new_video.mp4")
        result.detections          # [(label, start_s, end_s, score)], best first
        localizer.plot(result, "new_video.png")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Mapping, Tuple

import numpy as np

__all__ = ["LocalizedVideo", "VideoLocalizer", "localization_settings", "EXTRACTOR_OPTIONS"]

#: ExtractionSettings fields a user may give for a run of unknown origin (the weights are given apart).
EXTRACTOR_OPTIONS = ("backbone", "fps", "snippet", "resize", "flow", "raft_model", "raft_iterations",
                     "random_weights")
#: Rows of a localization figure: the classes with detections, most probable first.
MAX_PLOTTED_CLASSES = 6


def localization_settings(run_dir: str | Path, options: Mapping[str, Any] | None = None,
                          weights: Mapping[str, str | Path] | None = None):
    """The :class:`~wsl_video.features.ExtractionSettings` to extract new videos for a run.

    Args:
        run_dir: a run written by ``wsl-video train``.
        options: explicit extractor settings (keys of :data:`EXTRACTOR_OPTIONS`; None values are not
            given). For a run trained on extracted features they must agree with the record; for a
            run of unknown origin (``thumos14``, ``activitynet``) they are required: they say how its
            features were made, and the settings not given take ``wsl-video extract``'s defaults.
        weights: weight files by network (``"rgb"``, ``"flow"``, ``"raft"``): for a recorded run, the
            checkpoints at their place on this machine (checked against the recorded SHA-256).

    Raises:
        ValueError: simulated features, unknown origin without options, or options or weights that
            differ from the record. (:class:`VideoLocalizer` checks the feature sizes against the model.)
        FileNotFoundError: the run, or a recorded weight file that is not on this machine (the message
            names the option that gives its new place).
    """
    from wsl_video.features.settings import ExtractionSettings, extractor_differences
    from wsl_video.run import run_extractor

    run_dir = Path(run_dir)
    recorded = run_extractor(run_dir)
    given = {key: value for key, value in (options or {}).items() if value is not None and value is not False}
    unknown = sorted(set(given) - set(EXTRACTOR_OPTIONS))
    if unknown:
        raise ValueError(f"unknown extractor options: {', '.join(unknown)}")
    weights = {network: str(path) for network, path in (weights or {}).items() if path is not None}
    if recorded is not None and recorded.get("simulated"):
        raise ValueError(f"{run_dir} was trained on simulated features ({recorded.get('backbone')}), which no video "
                         "gives: train on features from 'wsl-video extract' to localize video files")
    if recorded is None:
        if not given and not weights:
            raise ValueError(f"{run_dir} was trained on features of unknown origin (not written by 'wsl-video "
                             "extract'): give the extractor options its features were made with (--backbone, "
                             "--rgb-weights, --flow-weights, --flow, --fps, --snippet, --resize)")
        settings = ExtractionSettings(**given, **{f"{network}_weights": path for network, path in weights.items()})
        settings = settings.resolved()
    else:
        try:
            settings = ExtractionSettings.from_extractor(recorded, weights=weights)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{error}: the run's features were extracted with this file; give its place "
                                    "on this machine with --rgb-weights, --flow-weights or --raft-weights") from None
        except ValueError as error:
            raise ValueError(f"{run_dir}: cannot rebuild the extractor settings of its features ({error})") from None
        differing = [f"{key} {given[key]!r} (the run's features: {getattr(settings, key)!r})" for key in given
                     if key != "random_weights" and _differs(getattr(settings, key), given[key])]
        if settings.random_weights and weights:
            flags = " and ".join(f"--{network}-weights" for network in sorted(weights))
            raise ValueError(f"{run_dir} was trained on features of randomly initialised networks "
                             f"(--random-weights): {flags} contradicts it; leave it out")
        if given.get("random_weights") and not settings.random_weights:
            differing.append("random weights (the run's features came from trained weights)")
        if differing:
            raise ValueError(f"{run_dir} records how its features were extracted; these options differ: "
                             f"{'; '.join(differing)}")
        if weights:
            changed = [line for line in extractor_differences(recorded, settings.to_extractor())
                       if line.startswith("weights")]
            if changed:
                raise ValueError(f"the weight files given are not the ones the run's features were extracted with "
                                 f"(SHA-256 {'; '.join(changed)})")
    return settings


def _differs(recorded: Any, given: Any) -> bool:
    if isinstance(recorded, (int, float)) and isinstance(given, (int, float)):
        return abs(float(recorded) - float(given)) > 1e-9
    if recorded is None or given is None:
        return (recorded or "none") != (given or "none")
    return str(recorded) != str(given)


def _check_dims(run_dir: Path, state: Mapping[str, Any], settings) -> None:
    """Refuse settings whose features the run's model cannot read (streams or sizes)."""
    dims = dict(state["feature_dims"])
    mine = settings.feature_dims
    if set(dims) == {"joint"}:
        mine = {"joint": sum(mine.values())}
    if dims != mine:
        describe = lambda d: ", ".join(f"{k} {v}" for k, v in d.items())  # noqa: E731
        raise ValueError(f"{run_dir} was trained on features of size {describe(dims)}; the {settings.backbone} "
                         f"extractor gives {describe(mine)}")


@dataclass
class LocalizedVideo:
    """One video's localization.

    Attributes:
        name: the video file's stem (its key in ``detections.json``).
        source: the video file.
        duration: its length in seconds.
        seconds_per_snippet: the snippet length of the features.
        scores: class -> video-level probability.
        cas (ndarray[T, K]): the fused class activation sequence.
        detections: ``(label, start_s, end_s, score)``, highest score first.
        attention (ndarray[T] or None): the class-agnostic attention of models that have one (CO2-Net and DELU
            cut it to detect).
    """

    name: str
    source: str
    duration: float
    seconds_per_snippet: float
    scores: dict[str, float]
    cas: np.ndarray
    detections: List[Tuple[str, float, float, float]]
    attention: np.ndarray | None = None

    def results(self) -> list[dict]:
        """The video's entry of ActivityNet ``results``."""
        return [{"label": label, "segment": [start, end], "score": score}
                for label, start, end, score in self.detections]


class VideoLocalizer:
    """A trained run and the feature extractor of its training data, for new video files.

    Args:
        run_dir: a run written by ``wsl-video train``.
        settings: from :func:`localization_settings`.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ... for both the extractor and the model.
        batch_size, workers: as for ``wsl-video extract``.
    """

    def __init__(self, run_dir: str | Path, settings, device: str = "auto", batch_size: int = 8,
                 workers: int = 0) -> None:
        from wsl.utils.device import resolve_device
        from wsl_video.features.extraction import FeatureExtractor
        from wsl_video.run import load_run

        self.run_dir = Path(run_dir)
        torch_device = resolve_device(device)
        self.config, self.model, state = load_run(self.run_dir, torch_device)
        self.classes: list[str] = list(state["classes"])
        _check_dims(self.run_dir, state, settings.resolved())
        self.extractor = FeatureExtractor(settings, device=torch_device, batch_size=batch_size, workers=workers)

    def localize(self, path: str | Path, progress=None) -> LocalizedVideo:
        """Extract the features of one video file and detect its actions.

        Raises:
            wsl_video.features.VideoError: a missing, undecodable or too short video (a ``ValueError``).
        """
        from wsl_video.inference import predict_video
        from wsl_video.methods import get_method

        path = Path(path)
        extracted = self.extractor.extract(path, progress=progress)
        features = extracted.features
        if self.model.stream_names == ("joint",):
            features = {"joint": np.concatenate([features[s] for s in self.extractor.streams], axis=1)}
        prediction = predict_video(self.model, features, self.config.inference, self.config.train.num_segments)
        duration = float(extracted.info.duration or extracted.num_snippets * extracted.seconds_per_snippet)
        rows = get_method(self.config.model.method).localize(prediction, extracted.seconds_per_snippet,
                                                             self.config.inference, duration)
        detections = sorted(((self.classes[c], float(s), float(e), float(score)) for c, s, e, score in rows),
                            key=lambda row: -row[3])
        return LocalizedVideo(
            name=path.stem, source=str(path), duration=duration,
            seconds_per_snippet=extracted.seconds_per_snippet,
            scores={label: float(p) for label, p in zip(self.classes, prediction.scores)},
            cas=prediction.cas, detections=detections, attention=prediction.attention,
        )

    def plot(self, video: LocalizedVideo, path: str | Path) -> list[str]:
        """A PNG of the CAS of each detected class over time, its detections drawn above it; returns the
        plotted classes (at most :data:`MAX_PLOTTED_CLASSES`, the most probable first)."""
        from wsl_video.inference import VideoPrediction
        from wsl_video.methods import get_method
        from wsl_video.plot import CasRow, plot_cas

        detected = {label for label, *_ in video.detections}
        if not detected:  # nothing found: show the most probable class
            detected = {max(video.scores, key=video.scores.get)}
        ordered = sorted(detected, key=lambda label: -video.scores[label])
        shown = ordered[:MAX_PLOTTED_CLASSES]
        method = get_method(self.config.model.method)
        prediction = VideoPrediction(np.array([video.scores[label] for label in self.classes]), video.cas,
                                     video.attention)
        rows = []
        for label in shown:
            segments = [(start, end, score) for name, start, end, score in video.detections if name == label]
            count = f"{len(segments)} detection{'s' if len(segments) != 1 else ''}"
            class_id = self.classes.index(label)
            rows.append(CasRow(f"{label}: p = {video.scores[label]:.2f}, {count}", video.cas[:, class_id], segments,
                               cut=method.cut_curve(prediction, class_id, self.config.inference)))
        more = (f" (the {len(shown)} most probable of {len(ordered)} detected classes)"
                if len(ordered) > len(shown) else "")
        plot_cas(path, rows, video.seconds_per_snippet, duration=video.duration,
                 title=f"{video.name} — {len(video.detections)} detections{more}")
        return shown

    def close(self) -> None:
        self.extractor.close()

    def __enter__(self) -> VideoLocalizer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
