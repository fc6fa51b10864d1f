"""The resolved configuration of a ``wsl-video`` run: data, model, training and inference settings.

A run directory holds ``config.yaml`` with every field below; ``wsl-video train --config FILE`` reads
the same format (any subset of the fields), and command-line flags override it. Unknown sections or
keys are rejected with a ``ValueError`` that names them. ``wsl-video config`` prints the defaults with the
comment of every key (:data:`CONFIG_COMMENTS`, :func:`config_yaml`).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping

from wsl.utils.config import load_yaml_mapping, save_yaml, sections_from_dict
from wsl.utils.device import check_device_name
from wsl_video.data.factory import ACTIVITYNET_DATASETS, DATASETS

__all__ = [
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "InferenceConfig",
    "RunConfig",
    "load_config",
    "load_run_config",
    "RUN_ABSENT_KEYS",
    "apply_fallbacks",
    "FALLBACKS",
    "save_config",
    "config_from_dict",
    "config_to_dict",
    "config_yaml",
    "CONFIG_COMMENTS",
    "DATASETS",
    "THUMOS_TIOU",
    "ACTIVITYNET_TIOU",
]

THUMOS_TIOU = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
ACTIVITYNET_TIOU = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]


@dataclass
class DataConfig:
    """Which features to read (see :func:`wsl_video.data.open_dataset`).

    ``extractor`` is recorded, not set: training replaces whatever a config file says with the
    ``extractor`` mapping of the ``manifest.json`` of a ``custom`` dataset (how its features were extracted
    from the videos). It is None (features of unknown origin) for ``thumos14``, ``activitynet`` and
    ``thumos14-sim``, and in runs written before it existed. Read it with :func:`wsl_video.run.run_extractor`.
    """

    dataset: str = "thumos14"
    data_root: str | None = None
    layout: str = "auto"
    streams: str | None = None  # None: the method's default (maan: two)
    test_videos: int | None = None
    skip_missing: bool = False
    seconds_per_snippet: float | None = None
    seed: int = 0  # simulator seed (thumos14-sim)
    sim: Dict[str, Any] = field(default_factory=dict)
    extractor: Dict[str, Any] | None = None  # recorded from the custom dataset's manifest.json

    def describe(self) -> str:
        """The dataset's name, with the simulator's preset and overrides for ``thumos14-sim`` (sorted)."""
        if self.dataset == "thumos14-sim" and self.sim:
            return f"{self.dataset} ({', '.join(f'{key}={value}' for key, value in sorted(self.sim.items()))})"
        return self.dataset


@dataclass
class ModelConfig:
    """The training method (any registered name) and its aggregator (any registered name).

    Configs written before ``method`` existed lack the key: they mean the default, ``maan``.
    """

    method: str = "maan"
    aggregator: str | None = None  # None: the method's default (maan: maa)
    aggregator_kwargs: Dict[str, Any] = field(default_factory=dict)
    temporal_filter: int | None = None  # None: the method's default (1, no filter; co2net, delu: 13 on ActivityNet)


@dataclass
class TrainConfig:
    """The paper's recipe: T segments with one random snippet each, BCE, Adam 5e-4.

    Keys left None take the method's default (:attr:`wsl_video.methods.VideoMethod.defaults`), else
    :data:`FALLBACKS` (MAAN's values).
    """

    iterations: int | None = None  # None: the method's default (5000; co2net, delu: 22000 on ActivityNet)
    batch_size: int | None = None  # None: the method's default (maan: 16)
    num_segments: int | None = None  # None: the method's default (maan: 20)
    lr: float | None = None  # None: the method's default (maan: 5e-4)
    weight_decay: float | None = None  # None: the method's default (maan: 0)
    sparsity_weight: float | None = None  # None: the method's default (maan: 1e-4 for weighted_sum, else 0)
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 500
    log_every: int = 50
    cache_features: bool = True  # keep training features in memory after the first read


@dataclass
class InferenceConfig:
    """From features to detections.

    ``video_scores`` decides how video-level class probabilities are computed at test time:
    ``"sampled"`` (default) aggregates ``num_segments`` uniformly spaced snippets, exactly the footing
    of training, averaged over ``score_samples`` uniformly shifted samples; ``"full"`` aggregates all
    snippets (which saturates unnormalised aggregators such as ``weighted_sum`` on long videos).
    """

    class_threshold: float | None = None  # None: the method's default (maan: 0.1)
    cas_thresholds: List[float] | None = None  # None: the method's, else [0.2] THUMOS14, [0.2, ..., 0.05] ANet
    scoring: str | None = None  # None: the method's default (maan: mean)
    nms: str | None = None  # None: the method's default (maan: hard)
    nms_iou: float | None = None  # None: the method's default (maan: 0.5)
    soft_sigma: float | None = None  # None: the method's default (maan: 0.5)
    max_detections: int = 100
    video_scores: str | None = None  # None: the method's default (maan: sampled)
    score_samples: int = 5
    stream_weights: List[float] | None = None  # None: equal weights (0.5 / 0.5 for two streams)
    tiou_thresholds: List[float] | None = None  # None: 0.1:0.1:0.9 THUMOS14, 0.5:0.05:0.95 ActivityNet


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)

    def resolved(self) -> RunConfig:
        """A copy with the dataset- and method-dependent ``None`` defaults filled in, after validation.

        Raises:
            ValueError: a value out of range, or an unknown method (the message lists the available ones).
        """
        from wsl_video.methods import get_method

        config = config_from_dict(config_to_dict(self))
        _check(isinstance(config.model.method, str), "model.method must be a name")
        get_method(config.model.method).resolve(config)
        apply_fallbacks(config)
        validate_config(config)
        thumos = config.data.dataset not in ACTIVITYNET_DATASETS
        if config.data.test_videos is None and config.data.dataset == "thumos14":
            config.data.test_videos = 212
        if config.inference.cas_thresholds is None:
            config.inference.cas_thresholds = [0.2] if thumos else [0.2, 0.15, 0.1, 0.05]
        if config.inference.tiou_thresholds is None:
            config.inference.tiou_thresholds = list(THUMOS_TIOU if thumos else ACTIVITYNET_TIOU)
        return config


#: Values of the keys a run and its method leave unset (None): MAAN's recipe. A method's own ``defaults``
#: come first (:meth:`wsl_video.methods.VideoMethod.resolve`).
FALLBACKS: Dict[str, Any] = {
    "data.streams": "two",
    "model.aggregator": "maa",
    "model.temporal_filter": 1,
    "train.iterations": 5000,
    "train.batch_size": 16,
    "train.num_segments": 20,
    "train.lr": 5e-4,
    "train.weight_decay": 0.0,
    "inference.class_threshold": 0.1,
    "inference.scoring": "mean",
    "inference.nms": "hard",
    "inference.nms_iou": 0.5,
    "inference.soft_sigma": 0.5,
    "inference.video_scores": "sampled",
}


def apply_fallbacks(config: RunConfig) -> None:
    """Fill the keys of :data:`FALLBACKS` that are still None, in place."""
    for key, value in FALLBACKS.items():
        section, _, name = key.partition(".")
        target = getattr(config, section)
        if getattr(target, name) is None:
            setattr(target, name, copy.deepcopy(value))


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "inference": InferenceConfig}

# One line per section and per key: printed above it by `wsl-video config`. A new key needs its line here
# (tests/test_cli_consistency.py checks that every key has one).
CONFIG_COMMENTS = {
    "data": "Which features to read.",
    "data.dataset": "thumos14, activitynet (1.3), activitynet1.2 (W-TALC layout), thumos14-sim (simulated THUMOS14 "
                    "features, no files needed) or custom "
                    "(own videos: annotations.json + manifest.json + features/ under data_root).",
    "data.data_root": "Folder with the features and annotations (null for thumos14-sim); stored absolute in a run.",
    "data.layout": "Feature layout on disk: auto (detected), wtalc, bas or acm (THUMOS14), wtalc (ActivityNet1.2), "
                   "activitynet, custom.",
    "data.streams": "two: separate RGB and flow models fused at the score level (RGB alone for RGB-only "
                    "features); joint: one model on the concatenated vector. null: the method's default "
                    "(maan, co2net, delu: two; wtalc, basnet: joint).",
    "data.test_videos": "THUMOS14 test videos: 212 (all) or 210 (without two wrongly annotated ones); "
                        "null: 212 for thumos14.",
    "data.skip_missing": "true: skip videos whose feature files are missing (one warning); false: fail.",
    "data.seconds_per_snippet": "Snippet length in seconds for THUMOS14 (null: 16 frames at 25 fps = 0.64); "
                                "ActivityNet uses duration / T per video.",
    "data.seed": "Seed of the thumos14-sim simulator.",
    "data.sim": "thumos14-sim simulator overrides, e.g. {videos: 50, feature_dim: 32} "
                "(see wsl_video.data.sim.SimConfig).",
    "data.extractor": "Recorded, not set: a custom dataset's manifest.json extractor settings, copied at train "
                      "time; null for the other datasets.",
    "model": "The training method and its aggregator.",
    "model.method": "Training method (model head, loss, defaults): maan (aggregator + linear classifier per "
                    "stream, video-level BCE), wtalc, basnet, co2net, delu or any plugin (`wsl-video methods` lists "
                    "them).",
    "model.aggregator": "Aggregator name: maa (MAAN), weighted_sum (STPN), dropout, norm, softmax_norm, mean, max, "
                        "topk_mean or any plugin (`wsl-video aggregators` lists them); null: the method's "
                        "default (maan: maa; wtalc, basnet, co2net, delu: topk_mean).",
    "model.aggregator_kwargs": "Keyword options of the aggregator, e.g. {hidden: 256}; empty: the method's "
                               "(co2net, delu with topk_mean: {ratio: 5} on ActivityNet, else ratio 7).",
    "model.temporal_filter": "Width (odd) of the moving average over time of the CAS and the attentions, zeros "
                             "beyond the video counted (co2net, delu; the authors' ActivityNet model); 1: none. "
                             "null: the method's default (co2net, delu: 13 on ActivityNet; else 1).",
    "train": "Optimisation: T segments with one random snippet each, video-level BCE, Adam.",
    "train.iterations": "Training iterations (batches), a positive integer; null: the method's default (5000; "
                        "co2net, delu: 22000 on ActivityNet).",
    "train.batch_size": "Videos per batch, a positive integer; null: the method's default (maan, basnet: 16; "
                        "wtalc, co2net, delu: 10).",
    "train.num_segments": "T: segments per training video, one random snippet from each (the paper uses 20); "
                          "wtalc: the longest training sequence (longer videos are cropped); null: the "
                          "method's default (maan: 20; wtalc, basnet: 750; co2net: 500; delu: 320; co2net, delu on "
                          "ActivityNet: 60).",
    "train.lr": "Adam learning rate, > 0; null: the method's default (maan: 5e-4; wtalc, basnet: 1e-4; "
                "co2net, delu: 5e-5, 3e-5 on ActivityNet).",
    "train.weight_decay": "Adam weight decay, >= 0; null: the method's default (maan: 0; wtalc, basnet: 5e-4; "
                          "co2net, delu: 1e-3, 5e-4 on ActivityNet).",
    "train.sparsity_weight": "Weight of the L1 norm of the attention in the loss, >= 0; null: the method's "
                             "default (maan: 1e-4 for weighted_sum as in STPN, 0 otherwise).",
    "train.seed": "Random seed of the initialisation and of the batch sampling.",
    "train.device": "auto (cuda when available), cpu, cuda, cuda:1, ...",
    "train.checkpoint_every": "Write checkpoint.pt every this many iterations (and at the end).",
    "train.log_every": "Write a line to train.log every this many iterations.",
    "train.cache_features": "true: keep the training features in memory after the first read; false: read "
                            "them from disk every time.",
    "inference": "From features to detections.",
    "inference.class_threshold": "Classes whose video-level probability is below this, in [0, 1], are not "
                                 "localized (the most probable class always is); null: the method's default "
                                 "(maan: 0.1; wtalc: 0.5; basnet: 0.25; co2net, delu: 0.2).",
    "inference.cas_thresholds": "Cut the CAS of a class at these fractions of its maximum; every run of snippets "
                                "above a cut is a proposal. null: the method's default (wtalc: [0.5]; basnet: "
                                "0.025:0.025:0.225; co2net, delu: ten cuts 0.1 to 0.9 of the attention, not of "
                                "the CAS), else [0.2] THUMOS14, [0.2, 0.15, 0.1, 0.05] ActivityNet.",
    "inference.scoring": "Proposal score: mean (mean CAS inside) or outer_inner (inside minus the surrounding "
                         "region); null: the method's default (maan, wtalc: mean; basnet, co2net, delu: outer_inner).",
    "inference.nms": "Per-class suppression of overlapping proposals: hard, soft (Gaussian) or none; null: the "
                     "method's default (maan, basnet: hard; wtalc: none; co2net, delu: soft).",
    "inference.nms_iou": "tIoU above which hard NMS removes the lower-scored proposal; null: the method's default "
                         "(maan: 0.5; basnet: 0.7).",
    "inference.soft_sigma": "Width of the Gaussian score decay of soft NMS; null: the method's default "
                            "(maan: 0.5; co2net, delu: 0.3).",
    "inference.max_detections": "At most this many detections per video (the best scores over all classes).",
    "inference.video_scores": "Video-level probabilities from sampled (num_segments snippets as in training, "
                              "averaged over score_samples shifted samples) or full (all snippets); null: the "
                              "method's default (maan: sampled; wtalc, basnet: full).",
    "inference.score_samples": "Shifted uniform samples averaged for sampled video scores, a positive integer.",
    "inference.stream_weights": "Fusion weight of each stream (rgb, flow); null: equal weights.",
    "inference.tiou_thresholds": "tIoU thresholds of the detection mAP; null: 0.1:0.1:0.9 THUMOS14, "
                                 "0.5:0.05:0.95 ActivityNet.",
}


def config_to_dict(config: RunConfig) -> Dict[str, Dict[str, Any]]:
    """Plain nested dict (YAML/JSON serialisable)."""
    return {name: dataclasses.asdict(getattr(config, name)) for name in _SECTIONS}


def config_from_dict(values: Mapping[str, Any], base: RunConfig | None = None,
                     source: str = "config") -> RunConfig:
    """Build a :class:`RunConfig` from a (partial) nested dict on top of ``base`` (defaults when None).

    Values are converted to the field types (``"1e-3"`` -> 0.001, ``8.0`` -> 8; :mod:`wsl.utils.config`).

    Raises:
        ValueError: an unknown section or key, a section that is not a mapping or a value of the wrong
            type; the message names ``source`` and the key.
    """
    config = RunConfig() if base is None else config_from_dict(config_to_dict(base))
    return sections_from_dict(config, values, source)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def validate_config(config: RunConfig) -> None:
    """Check ranges and choices; raises ``ValueError`` naming the offending key."""
    data, train, inference = config.data, config.train, config.inference
    _check(data.dataset in DATASETS, f"data.dataset must be one of {DATASETS}, got {data.dataset!r}")
    _check(data.streams in ("two", "joint"), f"data.streams must be 'two' or 'joint', got {data.streams!r}")
    _check(isinstance(data.sim, dict), "data.sim must be a mapping of simulator overrides")
    _check(data.extractor is None or isinstance(data.extractor, dict),
           f"data.extractor must be a mapping or null, got {data.extractor!r}")
    check_device_name(train.device, "train.device")
    _check(isinstance(config.model.method, str), "model.method must be a name")
    _check(isinstance(config.model.aggregator, str), "model.aggregator must be a name")
    _check(isinstance(config.model.aggregator_kwargs, dict), "model.aggregator_kwargs must be a mapping")
    width = config.model.temporal_filter
    _check(isinstance(width, int) and width >= 1 and width % 2 == 1,
           f"model.temporal_filter must be an odd positive integer (1: no filter), got {width!r}")
    for key in ("iterations", "batch_size", "num_segments", "checkpoint_every", "log_every"):
        value = getattr(train, key)
        _check(isinstance(value, int) and value > 0, f"train.{key} must be a positive integer, got {value!r}")
    _check(float(train.lr) > 0, f"train.lr must be positive, got {train.lr!r}")
    _check(float(train.weight_decay) >= 0, f"train.weight_decay must be >= 0, got {train.weight_decay!r}")
    _check(train.sparsity_weight is None or float(train.sparsity_weight) >= 0,
           f"train.sparsity_weight must be >= 0, got {train.sparsity_weight!r}")
    _check(inference.video_scores in ("sampled", "full"),
           f"inference.video_scores must be 'sampled' or 'full', got {inference.video_scores!r}")
    _check(inference.nms in ("hard", "soft", "none"),
           f"inference.nms must be 'hard', 'soft' or 'none', got {inference.nms!r}")
    _check(inference.scoring in ("mean", "outer_inner"),
           f"inference.scoring must be 'mean' or 'outer_inner', got {inference.scoring!r}")
    _check(isinstance(inference.score_samples, int) and inference.score_samples > 0,
           f"inference.score_samples must be a positive integer, got {inference.score_samples!r}")
    _check(0.0 <= float(inference.class_threshold) <= 1.0,
           f"inference.class_threshold must lie in [0, 1], got {inference.class_threshold!r}")
    _check(isinstance(inference.max_detections, int) and inference.max_detections > 0,
           f"inference.max_detections must be a positive integer, got {inference.max_detections!r}")


def save_config(config: RunConfig, path: str | Path) -> None:
    """Write ``config`` as YAML, atomically."""
    save_yaml(config_to_dict(config), path)


def config_yaml(config: RunConfig | None = None) -> str:
    """``config`` (default: the defaults) as YAML with a comment above every section and key."""
    from wsl.utils.commented_yaml import commented_yaml

    header = ("wsl-video run configuration. `wsl-video train --config FILE` reads this format, or any subset of it; "
              "command-line flags override it. null: the dataset-dependent default named in the comment.")
    return commented_yaml(config_to_dict(config or RunConfig()), CONFIG_COMMENTS, sections=tuple(_SECTIONS),
                          header=header)


def load_config(path: str | Path, base: RunConfig | None = None) -> RunConfig:
    """Read a (partial) YAML config on top of ``base``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unparsable YAML or an unknown key.
    """
    return config_from_dict(load_yaml_mapping(path), base=base, source=str(path))


#: Keys added after run folders were first written, with the value a run's ``config.yaml`` without them means
#: (how those runs were trained), where that differs from what resolving null would give today.
RUN_ABSENT_KEYS: Dict[str, Any] = {"model.temporal_filter": 1}


def load_run_config(path: str | Path, base: RunConfig | None = None) -> RunConfig:
    """Read a run folder's ``config.yaml`` (as :func:`load_config`); a key of :data:`RUN_ABSENT_KEYS` the file
    lacks takes the value the run was trained with (e.g. no temporal filter in runs older than the key).
    """
    values = load_yaml_mapping(path)
    config = config_from_dict(values, base=base, source=str(path))
    for key, value in RUN_ABSENT_KEYS.items():
        section, _, name = key.partition(".")
        if name not in (values.get(section) or {}):
            setattr(getattr(config, section), name, copy.deepcopy(value))
    return config
