"""Choosing training and inference settings on held-out training videos (``wsl-video tune``).

The training subset is split into fit videos and held-out videos
(:func:`wsl_video.data.held_out.split_held_out`: stratified by class, or a given list); the test subset is never
opened. Each Optuna trial draws the training settings (learning rate, weight decay, attention L1 weight, ...)
and trains one run per seed on the fit videos, stopping at every checkpoint of the ``iterations`` list and
continuing from it with exact resumption (a method whose loss follows a schedule over the whole run, such as
DELU's curriculum, trains each ``iterations`` value from scratch instead: ``uses_training_progress``). At each
checkpoint every combination of the inference settings (video-score mode, CAS threshold, ...) is scored on the
held-out videos without retraining. A trial's value is the best seed-averaged held-out average mAP@0.1:0.7
(THUMOS14) or average mAP@0.5:0.95 (ActivityNet) over its checkpoints and inference settings; the checkpoint
scores drive the pruning of hopeless trials. ``best.yaml`` is a config for ``wsl-video train --config`` that
trains on all training videos with the best settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np

from wsl.tuning.options import TuneOptions
from wsl.tuning.space import Key, SearchSpace, float_value, int_value, str_value
from wsl.tuning.task import Evaluation, TuneTask, protocol_hash
from wsl.utils.device import resolve_device
from wsl.utils.io import jsonable
from wsl_video.config import RunConfig, config_from_dict, config_to_dict

__all__ = ["VIDEO_KEYS", "DEFAULT_SPACE", "VideoTuneTask", "tune"]


def _thresholds(value: Any) -> List[float]:
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise ValueError("expected one or more CAS thresholds")
    numbers = [float_value(v) for v in values]
    if any(not 0.0 < v < 1.0 for v in numbers):
        raise ValueError(f"CAS thresholds are fractions of the maximum in (0, 1), got {value!r}")
    return numbers


VIDEO_KEYS = {
    "lr": Key("train", float_value, "Adam learning rate (train.lr)"),
    "weight_decay": Key("train", float_value, "Adam weight decay (train.weight_decay)"),
    "sparsity_weight": Key("train", float_value,
                           "L1 weight on the attention (train.sparsity_weight; attention-based aggregators)"),
    "batch_size": Key("train", int_value, "videos per batch (train.batch_size)", integer=True),
    "num_segments": Key("train", int_value, "T, snippets per training video (train.num_segments)", integer=True),
    "iterations": Key("checkpoint", int_value, "training iterations (train.iterations)", integer=True),
    "video_scores": Key("inference", str_value, "video-level scores: sampled or full (inference.video_scores)",
                        numeric=False),
    "cas_thresholds": Key("inference", _thresholds,
                          "CAS cut(s), fractions of its per-class maximum (inference.cas_thresholds)"),
    "class_threshold": Key("inference", float_value, "class rejection threshold (inference.class_threshold)"),
    "scoring": Key("inference", str_value, "proposal score: mean or outer_inner (inference.scoring)", numeric=False),
    "nms_iou": Key("inference", float_value, "NMS tIoU (inference.nms_iou)"),
}

#: The default search space (``docs/tuning.md``); a ``--space`` YAML file overrides it key by key.
DEFAULT_SPACE: Dict[str, Any] = {
    "lr": {"low": 1e-4, "high": 3e-3, "log": True},
    "weight_decay": {"low": 1e-5, "high": 1.0, "log": True},
    "sparsity_weight": {"low": 1e-4, "high": 1.0, "log": True},
    "iterations": {"choices": [500, 1000, 2000, 3000, 5000]},
    "video_scores": {"choices": ["sampled", "full"]},
    "cas_thresholds": {"choices": [0.05, 0.1, 0.2, 0.3, 0.5, [0.2, 0.15, 0.1, 0.05]]},
}

_TRAIN_FIELDS = ("lr", "weight_decay", "sparsity_weight", "batch_size", "num_segments", "iterations")
_IGNORED = {"data": ("data_root", "skip_missing"), "train": ("seed", "device", "checkpoint_every", "log_every",
                                                             "cache_features")}


def _uses_attention(config: RunConfig) -> bool:
    from wsl.aggregators import aggregator_info, check_aggregator_options

    check_aggregator_options(config.model.aggregator, config.model.aggregator_kwargs)
    return aggregator_info(config.model.aggregator).uses_attention


def apply_settings(config: RunConfig, settings: Dict[str, Any]) -> RunConfig:
    """A copy of ``config`` with tune settings (names of :data:`VIDEO_KEYS`) in their sections."""
    config = config_from_dict(config_to_dict(config))
    for name, value in settings.items():
        if name in _TRAIN_FIELDS:
            setattr(config.train, name, value)
        elif name == "cas_thresholds":
            config.inference.cas_thresholds = [float(v) for v in (value if isinstance(value, (list, tuple))
                                                                   else [value])]
        else:
            setattr(config.inference, name, value)
    return config


class VideoTuneTask(TuneTask):
    """The held-out selection of ``wsl-video tune`` for one aggregator (see the module docstring).

    Args:
        config: the base configuration (defaults < ``--config`` < flags): data, aggregator and every
            setting the space leaves alone.
        held_out: number of held-out training videos (default: a fifth of the training subset).
        held_out_list: a file naming the held-out videos, one per line (instead of ``held_out``).
        split_seed: seed of the stratified draw.
        seeds: training seeds; a setting's score is the mean over them.
        space_file: YAML overriding the default space (:data:`DEFAULT_SPACE`).
        progress: show a bar while features are read.
    """

    command = "wsl-video tune"
    unit = "%"
    scale = 100.0
    noun = "video"

    @classmethod
    def from_options(cls, config: RunConfig, options: TuneOptions) -> VideoTuneTask:
        return cls(config, held_out=options.held_out, held_out_list=options.held_out_list,
                   split_seed=options.split_seed, seeds=options.seeds, space_file=options.space_file,
                   progress=options.progress)

    def __init__(self, config: RunConfig, *, held_out: int | None = None, held_out_list: str | None = None,
                 split_seed: int = 0, seeds: Sequence[int] = (0,), space_file: str | None = None,
                 progress: bool = False) -> None:
        from wsl.utils.runs import absolute_path
        from wsl_video.data.held_out import split_held_out
        from wsl_video.data.opening import open_data
        from wsl_video.run import check_aggregator

        config = config.resolved()
        config.data.data_root = absolute_path(config.data.data_root)
        check_aggregator(config)
        if held_out is not None and held_out_list is not None:
            raise ValueError("give --held-out or --held-out-list, not both")
        seeds = [int(seed) for seed in seeds]
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"--seeds must list distinct seeds, got {seeds}")
        self.config, self.seeds = config, seeds
        self.space_file = None if space_file is None else absolute_path(space_file)
        self.held_out_list = None if held_out_list is None else absolute_path(held_out_list)
        self.held_out_count, self.split_seed = held_out, int(split_seed)
        self.space = self._space(config, self.space_file)
        tious = config.inference.tiou_thresholds
        short = all(any(abs(t - 0.1 * k) < 1e-9 for t in tious) for k in range(1, 8))  # THUMOS14's 0.1:0.7
        self.metric_name = "average_mAP_0.1_0.7" if short else "average_mAP"
        self.metric = "held-out average mAP@" + ("0.1:0.7" if short else f"{min(tious):g}:{max(tious):g}")
        self.metric_key = "held_out_" + self.metric_name
        self.study_name = config.model.aggregator
        dataset = open_data(config, "train")  # the training subset only: the test subset is never opened
        if held_out_list is not None:
            from wsl.tuning.split import read_name_list

            names = read_name_list(held_out_list)
            self.fit, self.held_out = split_held_out(dataset, names=names, source=str(held_out_list))
        else:
            count = held_out if held_out is not None else max(1, round(0.2 * len(dataset)))
            self.fit, self.held_out = split_held_out(dataset, count, self.split_seed)
        if progress:
            from tqdm import tqdm

            dataset.preload(progress=lambda items, **kw: tqdm(items, leave=False, **kw))
        else:
            dataset.preload()

    # ------------------------------------------------------------------ space
    def _space(self, config: RunConfig, space_file: str | None) -> SearchSpace:
        defaults = dict(DEFAULT_SPACE)
        attention = _uses_attention(config)
        if not attention:
            defaults["sparsity_weight"] = 0.0
        space = SearchSpace.from_file(VIDEO_KEYS, defaults, space_file)
        setting = space.settings.get("sparsity_weight")
        if not attention and setting is not None and setting.searched:
            raise ValueError(f"{space_file}: aggregator {config.model.aggregator!r} has no attention, so the L1 "
                             "weight on the attention (sparsity_weight) cannot be tuned; remove it from the file")
        for name, s in space.settings.items():  # every value the space can take must make a valid config
            values = [s.low, s.high] if s.low is not None else s.options
            for value in values:
                try:
                    apply_settings(config, {name: value}).resolved()
                except ValueError as error:
                    raise ValueError(f"{space_file or 'search space'}: {name} = {value!r}: {error}") from None
        return space

    # ------------------------------------------------------------------ TuneTask
    def protocol(self) -> Dict[str, Any]:
        values = config_to_dict(self.config)
        for section, keys in _IGNORED.items():
            for key in keys:
                values[section].pop(key, None)
        if values["model"]["method"] == RunConfig().model.method:  # as recorded by studies before methods existed
            del values["model"]["method"]
        return {"command": self.command, "config": values, "seeds": self.seeds, "space": self.space.to_spec(),
                "held_out": {"videos": len(self.held_out), "fit": len(self.fit),
                             "names": protocol_hash(sorted(v.name for v in self.held_out.videos))}}

    def describe(self) -> str:
        how = (f"listed in {self.held_out_list}" if self.held_out_list else
               f"stratified by class, split seed {self.split_seed}")
        dataset = self.config.data.describe()  # with the simulator's preset and overrides
        return (f"{self.config.model.aggregator} on {dataset}: {len(self.fit)} fit videos, "
                f"{len(self.held_out)} held-out training videos ({how}); seeds "
                f"{' '.join(map(str, self.seeds))}; the test subset is not read")

    def base_settings(self):
        train = {name: getattr(self.config.train, name) for name in self.space.settings
                 if VIDEO_KEYS[name].kind == "train"}
        inference = {name: getattr(self.config.inference, name) for name in self.space.settings
                     if VIDEO_KEYS[name].kind == "inference"}
        return train, [self.config.train.iterations], [inference]

    def pruner_warmup(self) -> int:
        return self.space.checkpoints(self.config.train.iterations)[0] + 1

    def evaluate(self, params, checkpoints, grid, work_dir, report=None) -> Evaluation:
        from wsl_video.methods import get_method
        from wsl_video.run import load_run
        from wsl_video.training import train

        config = apply_settings(self.config, params)
        fresh = get_method(config.model.method).uses_training_progress  # its n-iteration run is not a prefix
        scores: Dict[int, List[List[float]]] = {}  # checkpoint index -> per combination, per seed
        profile: List[list] = []
        for k, iterations in enumerate(sorted(checkpoints)):
            per_seed = []
            for seed in self.seeds:
                run = apply_settings(config, {"iterations": iterations})
                run.train.seed = seed
                run.train.checkpoint_every = iterations
                run.train.log_every = max(1, iterations // 10)
                run_dir = Path(work_dir) / f"seed{seed}"
                train(run, run_dir, resume=k > 0 and not fresh, overwrite=k == 0 or fresh, evaluate=False,
                      progress=False, train_set=self.fit)
                _, model, _ = load_run(run_dir, device=resolve_device(run.train.device))
                per_seed.append(self.score_grid(model, run, grid))
            scores[k] = [list(values) for values in zip(*per_seed)]
            means = [float(np.mean(values)) for values in scores[k]]
            for combo, mean in zip(grid, means):
                profile.append([{"iterations": int(iterations), **jsonable(combo)}, mean])
            if report is not None:
                report(int(iterations), max(means), profile)
        best_index = int(np.argmax([score for _, score in profile]))  # the first best: fewest iterations
        settings, score = profile[best_index]
        k, combo = divmod(best_index, len(grid))
        return Evaluation(score=score, settings=settings, profile=profile, per_seed=scores[k][combo])

    def score_grid(self, model, config: RunConfig, grid: Sequence[Dict[str, Any]]) -> List[float]:
        """Held-out score of ``model`` for every combination of inference settings (no retraining)."""
        from wsl_video.evaluation import evaluate_predictions
        from wsl_video.inference import DatasetPrediction, predict_video
        from wsl_video.methods import get_method

        localize = get_method(config.model.method).localize

        held = self.held_out
        predictions: Dict[str, list] = {}
        for mode in dict.fromkeys(combo.get("video_scores", config.inference.video_scores) for combo in grid):
            inference = apply_settings(config, {"video_scores": mode}).inference
            predictions[mode] = [predict_video(model, held.features(i), inference, config.train.num_segments)
                                 for i in range(len(held))]
        values = []
        for combo in grid:
            inference = apply_settings(config, combo).resolved().inference
            rows = predictions[inference.video_scores]
            detections = {video.name: localize(row, video.seconds_per_snippet, inference, video.duration)
                          for video, row in zip(held.videos, rows)}
            prediction = DatasetPrediction(detections, np.stack([row.scores for row in rows]),
                                           [video.name for video in held.videos])
            metrics = evaluate_predictions(held, prediction, inference.tiou_thresholds)
            values.append(float(metrics[self.metric_name]))
        return values

    def best_config_text(self, settings, header) -> str:
        import yaml

        config = apply_settings(self.config, settings)
        config.train.seed = self.config.train.seed
        lines = [f"# {line}" for line in header]
        lines.append("# train on every training video with these settings:")
        lines.append("#   wsl-video train --config best.yaml --out RUN")
        return "\n".join(lines) + "\n" + yaml.safe_dump(config_to_dict(config.resolved()), sort_keys=False)

    def worker(self):
        return _task_from_dict, {"config": config_to_dict(self.config), "held_out": self.held_out_count,
                               "held_out_list": self.held_out_list, "split_seed": self.split_seed,
                               "seeds": self.seeds, "space_file": self.space_file}



def _task_from_dict(config: dict, **kwargs) -> VideoTuneTask:
    """Rebuild a task in another process (``jobs``)."""
    return VideoTuneTask(config_from_dict(config), **kwargs)



def tune(config: RunConfig, options: TuneOptions | str | Path, **fields: Any) -> Dict[str, Any]:
    """Run (or continue) the held-out selection of ``config``'s aggregator; see ``docs/tuning.md``.

    ``options``: a :class:`~wsl.tuning.TuneOptions`, or the output folder with its other fields as
    keywords (``tune(config, "tune/maa", seeds=[0, 1], trials=20)``). Writes ``out/best.yaml``,
    ``out/trials.csv`` and ``out/study.png``; returns a summary (best score and settings, number of
    trials, importances).
    """
    from wsl.tuning.study import tune as tune_study

    return tune_study(VideoTuneTask, config, options, **fields)
