"""``thumos14-sim``: simulated two-stream I3D-like features on the real THUMOS14 time line.

The annotations (videos, durations, action instances, classes, Ambiguous segments) are the real THUMOS14
ones shipped in ``wsl_video/resources/thumos14``; only the snippet features are simulated. Features are
generated on the fly per video from ``(seed, video name, stream)``, so any subset is cheap and every
run sees the same numbers. See ``docs/video-data.md`` for the generative model.
"""

from __future__ import annotations

import dataclasses
import zlib
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from wsl_video.data.annotations import (
    THUMOS14_CLASSES,
    keep_thumos_subset,
    make_video,
    parse_database,
    read_ambiguous,
    select_thumos,
)
from wsl_video.data.files import read_json
from wsl_video.data.records import FeatureDataset, Video
from wsl_video.data.sampling import segment_to_snippets

__all__ = ["SimConfig", "SimFeatures", "PRESETS", "open_sim", "sim_extractor", "thumos14_resources"]

STREAMS = ("rgb", "flow")

PRESETS: dict[str, dict[str, Any]] = {
    # A second distribution, for methods and settings developed on the default one: instances whose bulk is
    # more discriminative but less contrasted with their peak, denser features, slower and more isotropic
    # noise, weaker and stream-balanced context, action-like distractor bursts in the background and scenes
    # that co-occur across classes (see docs/video-data.md).
    "shifted": {
        "strong_fraction": 0.35, "strong_level": 1.3, "weak_level": 0.75, "actionness_level": 0.3,
        "context_level": (0.5, 0.5), "noise": (0.6, 0.6), "smoothness": 4.0, "scene_level": 0.5,
        "offset": -0.4, "pooled_draws": 2, "distractor_rate": 1.0, "distractor_level": 0.6,
        "cooccurrence": 0.5,
    },
}
"""Named sets of simulator options (``sim={"preset": "shifted"}``); options given beside a preset win."""


@dataclasses.dataclass(frozen=True)
class SimConfig:
    """Knobs of the simulator (override any of them with ``open_dataset("thumos14-sim", sim={...})``).

    Every snippet feature is the average of ``pooled_draws`` ReLU'd Gaussian draws around a
    pre-activation ``offset + scene + context + actionness + action + noise`` (non-negative and sparse,
    like average-pooled I3D activations). Levels are pre-activation amplitudes on the pattern's dims.
    """

    feature_dim: int = 64
    """Feature size of each stream (RGB and flow)."""
    class_dims: int = 8
    """Dims of each class's action pattern (drawn at random per class and stream; classes may share dims)."""
    context_dims: int = 8
    """Dims of each class's scene-context pattern, present over the whole video (background included)."""
    actionness_dims: int = 6
    """Dims of a class-agnostic pattern active whenever any action happens."""
    strong_fraction: float = 0.2
    """Fraction of each action instance (one contiguous run) that is highly discriminative."""
    strong_level: float = 1.6
    """Action-pattern amplitude in the highly discriminative run."""
    weak_level: float = 0.65
    """Mean action-pattern amplitude in the rest of the instance (drawn in [0.5, 1.5] x this)."""
    actionness_level: float = 0.5
    """Amplitude of the class-agnostic action pattern inside instances."""
    context_level: tuple[float, float] = (0.9, 0.25)
    """Scene-context amplitude (RGB, flow): appearance carries much more context than motion."""
    noise: tuple[float, float] = (0.45, 0.7)
    """Standard deviation of the temporally smooth snippet noise (RGB, flow)."""
    draw_noise: float = 0.3
    """Standard deviation of the independent noise of each pooled draw."""
    smoothness: float = 2.0
    """Gaussian smoothing width of the snippet noise, in snippets (0: white noise)."""
    scene_level: float = 0.35
    """Standard deviation of a per-video scene vector on all dims (class-independent nuisance)."""
    offset: float = -0.6
    """Pre-activation offset; more negative gives sparser features."""
    pooled_draws: int = 3
    """ReLU draws averaged per snippet."""
    ambiguous_level: float = 0.5
    """Action amplitude (of the video's first class) inside THUMOS14 Ambiguous segments."""
    distractor_rate: float = 0.0
    """Background distractor bursts per 100 snippets (each 2-8 snippets of a random class's action pattern)."""
    distractor_level: float = 0.6
    """Action-pattern amplitude of a distractor burst."""
    cooccurrence: float = 0.0
    """Probability that a video's background also shows the scene context of one other, random class."""
    videos: int | None = None
    """Keep only the first ``videos`` videos of the subset (None: all 200 / 212)."""
    cache: bool = True
    """Keep generated features in memory (about 35 MB per subset at feature_dim=64)."""

    def __post_init__(self) -> None:
        for name in ("feature_dim", "class_dims", "context_dims", "actionness_dims", "pooled_draws"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"sim {name} must be a positive integer, got {value!r}")
        for name in ("class_dims", "context_dims", "actionness_dims"):
            if getattr(self, name) > self.feature_dim:
                raise ValueError(f"sim {name}={getattr(self, name)} exceeds feature_dim={self.feature_dim}")
        if not 0.0 < self.strong_fraction <= 1.0:
            raise ValueError(f"sim strong_fraction must be in (0, 1], got {self.strong_fraction!r}")
        for name in ("noise", "context_level"):
            value = getattr(self, name)
            if len(value) != 2 or min(value) < 0:
                raise ValueError(f"sim {name} must be two non-negative numbers (RGB, flow), got {value!r}")
        for name in ("distractor_rate", "distractor_level"):
            if getattr(self, name) < 0:
                raise ValueError(f"sim {name} must be non-negative, got {getattr(self, name)!r}")
        if not 0.0 <= self.cooccurrence <= 1.0:
            raise ValueError(f"sim cooccurrence must be in [0, 1], got {self.cooccurrence!r}")
        if self.videos is not None and self.videos < 1:
            raise ValueError(f"sim videos must be a positive integer or None, got {self.videos!r}")

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any] | None) -> SimConfig:
        """Defaults updated with ``overrides``; an unknown key raises ``ValueError`` listing the knobs.

        ``overrides["preset"]`` names a set of options of :data:`PRESETS`; the other overrides apply on top.
        """
        overrides = dict(overrides or {})
        if "preset" in overrides:
            preset = overrides.pop("preset")
            if preset not in PRESETS:
                raise ValueError(f"unknown sim preset {preset!r}; known presets: {', '.join(PRESETS)}")
            overrides = {**PRESETS[preset], **overrides}
        names = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise ValueError(f"unknown sim option(s) {unknown}; known options: {', '.join(names)}, preset")
        for name in ("noise", "context_level"):
            if name in overrides and np.isscalar(overrides[name]):
                overrides[name] = (float(overrides[name]),) * 2
            elif name in overrides:
                overrides[name] = tuple(float(v) for v in overrides[name])
        return cls(**overrides)


def thumos14_resources() -> Path:
    """Folder of the packaged THUMOS14 annotations (``gt.json``, split lists, ``Ambiguous_test.txt``)."""
    return Path(str(resources.files("wsl_video") / "resources" / "thumos14"))


def _stable_seed(*parts: Any) -> list[int]:
    return [zlib.crc32(str(part).encode("utf-8")) for part in parts]


class SimFeatures:
    """Deterministic feature generator: ``generate(video) -> {"rgb": ndarray[T, D], "flow": ndarray[T, D]}``.

    Class patterns depend on ``seed`` only; everything else on ``(seed, video name, stream)``.
    """

    def __init__(self, classes: tuple[str, ...], config: SimConfig, seed: int = 0,
                 ambiguous: Mapping[str, list[tuple[float, float]]] | None = None) -> None:
        self.classes = tuple(classes)
        self.ambiguous = dict(ambiguous or {})
        self.config = config
        self.seed = int(seed)
        self._index = {name: k for k, name in enumerate(self.classes)}
        self._cache: dict[str, dict[str, np.ndarray]] = {}
        self.patterns = {stream: self._patterns(stream) for stream in STREAMS}

    def _patterns(self, stream: str) -> dict[str, np.ndarray]:
        cfg = self.config
        rng = np.random.default_rng(_stable_seed(self.seed, "patterns", stream))
        k, d = len(self.classes), cfg.feature_dim

        def sparse(count: int) -> np.ndarray:
            pattern = np.zeros(d)
            pattern[rng.choice(d, size=count, replace=False)] = rng.uniform(0.7, 1.3, size=count)
            return pattern

        return {
            "action": np.stack([sparse(cfg.class_dims) for _ in range(k)]),  # (K, D)
            "context": np.stack([sparse(cfg.context_dims) for _ in range(k)]),  # (K, D)
            "actionness": sparse(cfg.actionness_dims),  # (D,)
        }

    def action_strength(self, video: Video) -> np.ndarray:
        """Per-snippet action amplitude ``ndarray[T, K]``: in each instance one highly discriminative run
        (``strong_level``) and a weakly discriminative rest; Ambiguous segments at ``ambiguous_level``.
        Shared by both streams (RGB and flow see the same action)."""
        cfg = self.config
        rng = np.random.default_rng(_stable_seed(self.seed, video.name, "layout"))
        t = video.num_snippets
        strength = np.zeros((t, len(self.classes)))
        for start, end, label in video.annotations:
            first, stop = segment_to_snippets(start, end, video.seconds_per_snippet, t)
            length = stop - first
            if length <= 0:
                continue
            visibility = rng.uniform(0.7, 1.3)  # easy and hard instances
            profile = cfg.weak_level * rng.uniform(0.5, 1.5, size=length)
            run = max(1, int(round(cfg.strong_fraction * length)))
            at = int(rng.integers(0, length - run + 1))
            profile[at:at + run] = cfg.strong_level
            column = strength[first:stop, self._index[label]]  # a view: updated in place
            np.maximum(column, visibility * profile, out=column)
        if video.labels:  # Ambiguous segments: weak, partial actions of the video's class
            column = self._index[video.labels[0]]
            for start, end in self.ambiguous.get(video.name, []):
                first, stop = segment_to_snippets(start, end, video.seconds_per_snippet, t)
                strength[first:stop, column] = np.maximum(strength[first:stop, column], cfg.ambiguous_level)
        return strength

    def distractor_strength(self, video: Video) -> np.ndarray:
        """Per-snippet amplitude ``ndarray[T, K]`` of background distractor bursts: about ``distractor_rate``
        per 100 snippets, each 2-8 snippets of a random class's action pattern at ``distractor_level``, where
        no action happens (all zeros with the default rate 0)."""
        cfg = self.config
        t = video.num_snippets
        strength = np.zeros((t, len(self.classes)))
        if cfg.distractor_rate <= 0:
            return strength
        rng = np.random.default_rng(_stable_seed(self.seed, video.name, "distractors"))
        busy = self.action_strength(video).max(axis=1) > 0
        for _ in range(int(rng.poisson(cfg.distractor_rate * t / 100.0))):
            length = int(rng.integers(2, 9))
            at = int(rng.integers(0, max(1, t - length + 1)))
            column = int(rng.integers(len(self.classes)))
            run = slice(at, min(t, at + length))
            strength[run, column] = np.where(busy[run], 0.0, cfg.distractor_level)
        return strength

    def scene_classes(self, video: Video) -> np.ndarray:
        """``ndarray[K]`` in {0, 1}: the classes whose scene context the video shows (its labels, plus one
        other class with probability ``cooccurrence``)."""
        present = np.zeros(len(self.classes))
        for label in video.labels:
            present[self._index[label]] = 1.0
        if self.config.cooccurrence > 0:
            rng = np.random.default_rng(_stable_seed(self.seed, video.name, "cooccurrence"))
            if rng.random() < self.config.cooccurrence:
                others = np.flatnonzero(present == 0)
                if len(others):
                    present[others[rng.integers(len(others))]] = 1.0
        return present

    def _smooth_noise(self, rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
        noise = rng.standard_normal(shape)
        width = self.config.smoothness
        if width <= 0 or shape[0] == 1:
            return sigma * noise
        radius = int(np.ceil(2.5 * width))
        kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / width) ** 2)
        kernel /= np.sqrt((kernel**2).sum())  # unit variance after smoothing
        padded = np.pad(noise, ((radius, radius), (0, 0)), mode="reflect" if shape[0] > radius else "wrap")
        smooth = np.zeros(shape)
        for i, weight in enumerate(kernel):
            smooth += weight * padded[i:i + shape[0]]
        return sigma * smooth

    def generate(self, video: Video) -> dict[str, np.ndarray]:
        """Features of one video: ``{"rgb": ndarray[T, D] float32, "flow": ndarray[T, D] float32}``."""
        cached = self._cache.get(video.name)
        if cached is not None:  # FeatureDataset.features hands out copies
            return cached
        cfg = self.config
        t, d = video.num_snippets, cfg.feature_dim
        strength = self.action_strength(video)
        if cfg.distractor_rate > 0:  # action-like background: counts as activity for the actionness pattern
            strength = strength + self.distractor_strength(video)
        active = np.minimum(strength.max(axis=1, keepdims=True), 1.0)
        present = self.scene_classes(video)
        out = {}
        for s, stream in enumerate(STREAMS):
            rng = np.random.default_rng(_stable_seed(self.seed, video.name, stream))
            patterns = self.patterns[stream]
            context_over_time = 0.6 + 0.4 * np.clip(self._smooth_noise(rng, (t, 1), 1.0), -1.5, 1.5) / 1.5
            pre = (
                cfg.offset
                + cfg.scene_level * rng.standard_normal(d)
                + cfg.context_level[s] * context_over_time * (present @ patterns["context"])
                + cfg.actionness_level * active * patterns["actionness"]
                + strength @ patterns["action"]
                + self._smooth_noise(rng, (t, d), cfg.noise[s])
            )
            draws = pre[None] + cfg.draw_noise * rng.standard_normal((cfg.pooled_draws, t, d))
            out[stream] = np.maximum(draws, 0.0).mean(axis=0).astype(np.float32)
        if cfg.cache:
            self._cache[video.name] = out
        return out


def _num_snippets(duration: float, seconds_per_snippet: float) -> int:
    """Snippets of a video (whole non-overlapping snippets, at least one)."""
    return max(1, int(np.floor(duration / seconds_per_snippet + 1e-9)))


def open_sim(subset: str = "train", *, streams: str = "two", test_videos: int = 212,
             seconds_per_snippet: float = 16 / 25, seed: int = 0,
             sim: Mapping[str, Any] | None = None) -> FeatureDataset:
    """The ``thumos14-sim`` dataset (see :class:`SimConfig`)."""
    config = SimConfig.from_overrides(sim)
    folder = thumos14_resources()
    gt_path = folder / "gt.json"
    # only the subset's annotations are parsed; the Ambiguous segments are those of test videos
    entries = parse_database(read_json(gt_path), gt_path, THUMOS14_CLASSES, keep=keep_thumos_subset(subset))
    chosen = select_thumos(entries, subset, test_videos)
    if config.videos is not None:
        chosen = chosen[: config.videos]
    ambiguous = read_ambiguous(folder / "Ambiguous_test.txt") if subset == "test" else {}
    videos = [make_video(entry, _num_snippets(entry.duration, seconds_per_snippet), seconds_per_snippet)
              for entry in chosen]
    generator = SimFeatures(THUMOS14_CLASSES, config, seed, ambiguous)
    dims = {stream: config.feature_dim for stream in STREAMS}
    ds = FeatureDataset("thumos14-sim", subset, THUMOS14_CLASSES, videos, generator.generate, dims,
                        streams=streams, ambiguous=ambiguous, version="thumos14-sim")
    ds.simulator = generator  # exposes the class patterns and action layout (for analysis and tests)
    return ds


def sim_extractor(seed: int = 0, sim: Mapping[str, Any] | None = None, streams: tuple[str, ...] = STREAMS,
                  seconds_per_snippet: float = 16 / 25) -> dict[str, Any]:
    """The ``extractor`` record of ``thumos14-sim`` features written in the ``custom`` layout.

    It says that the features were simulated (``"backbone": "thumos14-sim"``, ``"simulated": true``), not
    extracted from videos, and holds the generator's settings (``seed`` and every :class:`SimConfig`
    field but ``videos`` and ``cache``), from which the same features can be generated again.
    """
    if tuple(streams) not in (STREAMS, ("rgb",)):
        raise ValueError(f"streams must be ('rgb', 'flow') or ('rgb',), got {tuple(streams)}")
    config = SimConfig.from_overrides(sim)
    settings = {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(config).items() if key not in ("videos", "cache")}
    return {
        "backbone": "thumos14-sim",
        "simulated": True,
        "streams": list(streams),
        "feature_dims": {stream: config.feature_dim for stream in streams},
        "fps": 25.0,
        "snippet": int(round(25.0 * seconds_per_snippet)),
        "resize": None,
        "flow": "simulated" if "flow" in streams else None,
        "weights": {stream: None for stream in streams},
        "seed": int(seed),
        "sim": settings,
    }
