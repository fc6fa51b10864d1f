"""Choosing training settings on held-out training images (``wsl-image tune``).

The held-out images are the train-fullsup split of the protocol of Choe et al. (CVPR 2020): the ``val``
split of the wsolevaluation metadata (CUBV2 for CUB, ImageNetV2 for ILSVRC, OpenImages30k ``val`` with its
masks), else, for CUB, a stratified share of the training split or a given list; the test split is never
opened (not its metadata, not its images, not its masks). Each Optuna trial draws the training settings
(epochs, learning rates, weight decay, grid, the method's own options, ...), trains one model per seed on
the fit images and scores the held-out images after every epoch of the first seed, by the benchmark's
selection metric: MaxBoxAccV2 (CUB, ILSVRC) or PxAP (OpenImages). Scores are reported at the percentage of
the schedule done, so runs of different lengths compare at the same point of their learning-rate schedule;
hopeless trials are pruned. A trial's value is the seed-averaged score of the final models. The CAM
threshold needs no training: on box datasets it is read off the held-out MaxBoxAcc curve (IoU 0.5, largest
box) of the selected models. ``best.yaml`` is a config for ``wsl-image train --config``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np

from wsl.tuning.options import TuneOptions
from wsl.tuning.space import Key, SearchSpace, float_value, int_value, str_value
from wsl.tuning.task import Evaluation, TuneTask, protocol_hash
from wsl.utils.device import resolve_device
from wsl_image.config import SPG_THRESHOLDS, TrainConfig, parse_grid

__all__ = ["IMAGE_KEYS", "DEFAULT_SPACE", "ImageTuneTask", "tune", "open_training_images", "apply_settings",
           "method_keys", "image_keys", "default_space", "SELECTION_METRICS"]


def _cam_threshold(value: Any) -> Any:
    if value == "auto":
        return value
    number = float_value(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"expected auto or a threshold in [0, 1], got {value!r}")
    return number


#: The settings every study knows; a method adds its own (:attr:`wsl_image.methods.ImageMethod.tunable`).
IMAGE_KEYS = {
    "lr": Key("train", float_value, "backbone learning rate (lr)"),
    "head_lr_scale": Key("train", float_value, "learning-rate multiplier of the new layers (head_lr_scale)"),
    "weight_decay": Key("train", float_value, "weight decay (weight_decay)"),
    "epochs": Key("train", int_value, "epochs (epochs; the schedule spans them)", integer=True),
    "grid": Key("train", parse_grid, "aggregation grid: 4, 7 or none (grid)", numeric=False),
    "batch_size": Key("train", int_value, "batch size (batch_size)", integer=True),
    "warmup_epochs": Key("train", int_value, "warm-up epochs (warmup_epochs)", integer=True),
    "momentum": Key("train", float_value, "SGD momentum (momentum)"),
    "optimizer": Key("train", str_value, "sgd or adamw (optimizer)", numeric=False),
    "cam_score": Key("inference", str_value, "class score of the map: auto, linear, sigmoid (cam_score)",
                     numeric=False),
    "cam_threshold": Key("inference", _cam_threshold,
                         "CAM threshold: auto (best held-out MaxBoxAcc at IoU 0.5) or a number (cam_threshold)",
                         numeric=False),
}

#: The selection metric of the benchmark per dataset: (label, trials.csv column).
SELECTION_METRICS = {"CUB": ("held-out MaxBoxAccV2", "held_out_max_box_acc_v2"),
                     "ILSVRC": ("held-out MaxBoxAccV2", "held_out_max_box_acc_v2"),
                     "OpenImages": ("held-out PxAP", "held_out_pxap")}


def _any_value(value: Any) -> Any:
    return value


def method_keys(method: str) -> Dict[str, Key]:
    """The search-space keys of ``method``'s own options (its ``tunable`` declarations), all of kind train."""
    from wsl_image.methods import get_method

    keys = {}
    for name, option in get_method(method).tunable.items():
        coerce = (int_value if option.integer else float_value) if option.numeric else _any_value
        keys[name] = Key("train", coerce, option.help, numeric=option.numeric, integer=option.integer)
    return keys


def image_keys(method: str = "cam") -> Dict[str, Key]:
    """Every key a search space of ``method`` may set: :data:`IMAGE_KEYS` and the method's own options."""
    return {**IMAGE_KEYS, **method_keys(method)}


def default_space(method: str = "cam") -> Dict[str, Any]:
    """The default search space of ``method``'s studies: :data:`DEFAULT_SPACE`, then the method's options that
    declare a default entry."""
    from wsl_image.methods import get_method

    extra = {name: option.space for name, option in get_method(method).tunable.items() if option.space is not None}
    return {**DEFAULT_SPACE, **extra}


#: The default search space of every method (``docs/tuning.md``); :func:`default_space` adds the method's own
#: options; a ``--space`` YAML file overrides it key by key.
DEFAULT_SPACE: Dict[str, Any] = {
    "lr": {"low": 1e-4, "high": 1e-1, "log": True},
    "head_lr_scale": {"low": 1.0, "high": 10.0, "log": True},
    "weight_decay": {"low": 1e-5, "high": 1e-1, "log": True},
    "epochs": {"choices": [10, 20, 30]},
    "grid": {"choices": [4, 7]},
    "cam_threshold": "auto",
}

_IGNORED = ("data_root", "metadata", "out", "device", "workers", "seed", "eval_batch_size", "num_classes")
# options newer than some studies: recorded in a study's protocol only when set away from their defaults
_RECORDED_WHEN_SET = ("method", "has_patch_sizes", "has_hide_prob", "cutmix_beta", "cutmix_prob", "adl_drop_rate",
                      "adl_threshold", "adl_layers", "cam_clamp_negative", "cam_percentile", "acol_threshold",
                      *SPG_THRESHOLDS, "head_width_scale")
PRUNE_FROM_PERCENT = 30


def open_training_images(config: TrainConfig, held_out: int | None = None, held_out_list: str | None = None,
                         split_seed: int = 0):
    """``(fit, held_out, how)`` CubMetadata of the training images, never reading the test split.

    CUB: the held-out images are ``held_out_list`` (a wsolevaluation split folder such as ``metadata/CUB/val``,
    or a file naming training images), else ``held_out`` training images drawn stratified by class, else the
    ``val`` split of ``config.metadata`` when it has one, else a tenth of the training images.
    ILSVRC and OpenImages (:func:`_open_wsol_images`): the ``val`` split of the metadata (train-fullsup), or
    another split folder given as ``held_out_list``.
    """
    from wsl.tuning.split import holdout_by_names, read_name_list, stratified_holdout
    from wsl_image.data import load_cub, load_wsol_metadata

    if config.dataset != "CUB":
        return _open_wsol_images(config, held_out, held_out_list)
    if not config.data_root:
        raise ValueError("--data-root is required (the CUB_200_2011 folder)")
    root = Path(config.data_root)
    if not root.is_dir():
        raise FileNotFoundError(f"data root not found: {root}")
    image_root = root / "images" if (root / "images").is_dir() else root
    if config.metadata:
        meta = load_wsol_metadata(config.metadata, image_root, splits=("train",))
    else:
        meta = load_cub(root, splits=("train",))
    labels = [[int(label)] for label in meta.labels]
    val_folder = Path(config.metadata) / "val" if config.metadata else None
    if held_out_list is not None and Path(held_out_list).is_dir():
        held = load_wsol_metadata(held_out_list, image_root)
        return meta, _checked_held_out(held, meta, held_out_list), f"the images of {held_out_list}"
    if held_out_list is not None:
        names = read_name_list(held_out_list)
        chosen = holdout_by_names(meta.image_ids, names, str(held_out_list), labels, "image")
        how = f"listed in {held_out_list}"
    elif held_out is None and val_folder is not None and (val_folder / "image_ids.txt").is_file():
        held = load_wsol_metadata(val_folder, image_root)
        return meta, _with_classes(held, meta), f"the val split of {config.metadata}"
    else:
        count = held_out if held_out is not None else max(1, round(0.1 * len(meta)))
        chosen = stratified_holdout(labels, count, split_seed, noun="image")
        how = f"stratified by class, split seed {split_seed}"
    keep = np.setdiff1d(np.arange(len(meta)), chosen)
    return meta.subset(keep), meta.subset(chosen), how


def _open_wsol_images(config: TrainConfig, held_out: int | None, held_out_list: str | None):
    """ILSVRC / OpenImages: the train split (``proxy_train`` honoured) and the train-fullsup ``val`` split (or the
    split folder ``held_out_list``), read with :func:`wsl_image.data.load_wsol_metadata` split by split so that
    ``test/`` is never opened; OpenImages without boxes (its held-out masks are read by the task)."""
    from wsl_image.data import load_wsol_metadata
    from wsl_image.data.splits import MASK_DATASETS, check_wsol_paths, dataset_metadata

    dataset = config.dataset
    check_wsol_paths(config)
    if held_out is not None or (held_out_list is not None and not Path(held_out_list).is_dir()):
        raise ValueError(f"--dataset {dataset}: the held-out images are the train-fullsup split (the metadata's "
                         "val split, or a split folder given with --held-out-list), not training images, which "
                         "have no localization annotations")
    root = Path(config.data_root)
    if not root.is_dir():
        raise FileNotFoundError(f"data root not found: {root}")
    folder = dataset_metadata(config.metadata, dataset)
    boxes = dataset not in MASK_DATASETS
    meta = load_wsol_metadata(folder, root, splits=("train",), proxy_train=config.proxy_train, boxes=False)
    held_folder = Path(held_out_list) if held_out_list is not None else folder / "val"
    if held_folder.resolve() == (folder / "test").resolve():
        raise ValueError(f"{held_folder}: the test split is for the final report only; settings are chosen on the "
                         "train-fullsup (val) split")
    if not (held_folder / "image_ids.txt").is_file():
        raise FileNotFoundError(f"{held_folder}: the train-fullsup split that scores the settings is missing "
                                "(no image_ids.txt)")
    held = load_wsol_metadata(held_folder, root, boxes=boxes)
    if boxes and not (held_folder / "localization.txt").is_file():
        raise FileNotFoundError(f"{held_folder / 'localization.txt'}: the held-out images need their boxes")
    how = f"the images of {held_out_list}" if held_out_list is not None else f"the val split of {folder}"
    return meta, _checked_held_out(held, meta, held_folder), how


def _checked_held_out(held, meta, source):
    """``held`` with the training split's class names, after checking it shares no image and no unknown label."""
    overlap = sorted(set(held.image_ids) & set(meta.image_ids))
    if overlap:
        raise ValueError(f"{source}: image {overlap[0]} is also a training image")
    if len(held) and held.labels.max() >= meta.num_classes:
        raise ValueError(f"{source}: label {int(held.labels.max())} has no training image "
                         f"(the training split has {meta.num_classes} classes)")
    return _with_classes(held, meta)


def apply_settings(config: TrainConfig, settings: Dict[str, Any]) -> TrainConfig:
    """A copy of ``config`` with tune settings (names of :data:`IMAGE_KEYS`); ``grid: None`` is native."""
    values = dict(settings)
    if "grid" in values and values["grid"] is None:
        values["grid"] = "none"
    return config.replace(**values)


def _has_masks(config: TrainConfig) -> bool:
    """The dataset is scored with masks (PxAP), not boxes."""
    from wsl_image.data.splits import MASK_DATASETS

    return config.dataset in MASK_DATASETS


def _with_classes(held, meta):
    from dataclasses import replace

    return replace(held, class_names=list(meta.class_names))


class ImageTuneTask(TuneTask):
    """The held-out selection of ``wsl-image tune`` for one method and aggregator (see the module docstring).

    Args:
        config: the base configuration (defaults < ``--config`` < flags).
        held_out, held_out_list, split_seed: the held-out images (:func:`open_training_images`).
        seeds: training seeds; a setting's score is the mean over them.
        space_file: YAML overriding the default space (:func:`default_space` of the method).
    """

    command = "wsl-image tune"
    metric = "held-out MaxBoxAccV2"
    metric_key = "held_out_max_box_acc_v2"
    unit = "%"
    scale = 100.0
    noun = "image"

    def __init__(self, config: TrainConfig, *, held_out: int | None = None, held_out_list: str | None = None,
                 split_seed: int = 0, seeds: Sequence[int] = (0,), space_file: str | None = None) -> None:
        from wsl.aggregators import check_aggregator_options
        from wsl.utils.runs import absolute_path

        config = config.replace(**{name: absolute_path(getattr(config, name))
                                   for name in ("data_root", "metadata", "pretrained_path")})
        if held_out is not None and held_out_list is not None:
            raise ValueError("give --held-out or --held-out-list, not both")
        seeds = [int(seed) for seed in seeds]
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"--seeds must list distinct seeds, got {seeds}")
        check_aggregator_options(config.aggregator, config.aggregator_kwargs)  # fail fast on a bad name
        from wsl_image.methods import get_method

        config = get_method(config.method).resolve(config)  # the method's defaults are the base settings
        self.config, self.seeds = config, seeds
        self.metric, self.metric_key = SELECTION_METRICS[config.dataset]
        self.space_file = None if space_file is None else absolute_path(space_file)
        self.held_out_count, self.split_seed = held_out, int(split_seed)
        self.held_out_list = None if held_out_list is None else absolute_path(held_out_list)
        self.space = self._space(config, self.space_file)
        self.study_name = config.aggregator
        self.fit, self.held, self.how = open_training_images(config, held_out, self.held_out_list, split_seed)
        self.masks = self._held_out_masks(config) if _has_masks(config) else None

    def _held_out_masks(self, config: TrainConfig):
        """The masks of the held-out split (OpenImages), every file checked now."""
        from wsl_image.data import read_mask_set
        from wsl_image.data.splits import dataset_metadata
        from wsl_image.evaluate_maps import mask_folder

        folder = Path(self.held_out_list) if self.held_out_list is not None else \
            dataset_metadata(config.metadata, config.dataset) / "val"
        return read_mask_set(folder, mask_folder(config.mask_root or config.data_root), self.held.image_ids)

    def _space(self, config: TrainConfig, space_file: str | None) -> SearchSpace:
        keys = image_keys(config.method)
        if space_file is not None:
            self._check_method_keys(config.method, space_file, keys)
        space = SearchSpace.from_file(keys, default_space(config.method), space_file)
        threshold = space.settings.get("cam_threshold")
        if threshold is not None and threshold.searched:
            raise ValueError(f"{space_file}: cam_threshold is read off the held-out box-accuracy curve of the "
                             "chosen models: give auto or a number, not a list")
        if _has_masks(config) and "cam_threshold" in space.settings:
            del space.settings["cam_threshold"]  # PxAP needs no threshold: nothing to read off
        for name, s in space.settings.items():
            values = [s.low, s.high] if s.low is not None else s.options
            for value in values:
                if name == "cam_threshold" and value == "auto":
                    continue
                try:
                    apply_settings(config, {name: value})
                except ValueError as error:
                    raise ValueError(f"{space_file or 'search space'}: {name} = {value!r}: {error}") from None
        return space

    @staticmethod
    def _check_method_keys(method: str, space_file: str, keys: Dict[str, Key]) -> None:
        """A ``--space`` key that is another method's option gets a message naming that method."""
        from wsl.utils.io import read_yaml
        from wsl_image.methods import get_method, list_methods

        spec = read_yaml(space_file) or {}
        if not isinstance(spec, dict):
            return  # SearchSpace reports it
        for name in spec:
            if name in keys:
                continue
            owners = [other for other in list_methods() if name in get_method(other).tunable]
            if owners:
                raise ValueError(f"{space_file}: search-space key '{name}' is an option of method "
                                 f"{', '.join(owners)}, not of {method} (--method)")

    # ------------------------------------------------------------------ TuneTask
    def protocol(self) -> Dict[str, Any]:
        values = {key: value for key, value in self.config.to_dict().items() if key not in _IGNORED}
        defaults = TrainConfig().to_dict()
        for key in _RECORDED_WHEN_SET:  # as recorded by studies before these options existed
            if values[key] == defaults[key]:
                del values[key]
        return {"command": self.command, "config": values, "seeds": self.seeds, "space": self.space.to_spec(),
                "held_out": {"images": len(self.held), "fit": len(self.fit),
                             "names": protocol_hash(sorted(self.held.image_ids))},
                "scores": "fractions"}  # studies run when scores were stored in percent are not mixed in

    def describe(self) -> str:
        method = "" if self.config.method == "cam" else f"{self.config.method} with "
        return (f"{method}{self.config.aggregator} on {self.config.data_root}: {len(self.fit)} fit images, "
                f"{len(self.held)} held-out images ({self.how}); seeds {' '.join(map(str, self.seeds))}; "
                "the test split is not read")

    def base_settings(self):
        train = {name: getattr(self.config, name) for name, s in self.space.settings.items() if s.kind == "train"}
        inference = {"cam_score": self.config.cam_score} if "cam_score" in self.space.settings else {}
        return train, [self.config.epochs], [inference]

    def pruner_warmup(self) -> int:
        return PRUNE_FROM_PERCENT

    def _datasets(self, config: TrainConfig) -> dict:
        from wsl_image.data import CubDataset

        return {"train": CubDataset(self.fit, train=True, image_size=config.image_size), "test": None, "val": None,
                "num_classes": self.fit.num_classes, "class_names": list(self.fit.class_names),
                "val_note": "tuning: no evaluation"}

    def _meters(self, model, config: TrainConfig, grid: Sequence[Dict[str, Any]]) -> list:
        """One held-out meter per combination of inference settings: a LocalizationMeter (boxes) or a MaskMeter
        (masks)."""
        import torch

        from wsl_image.data import CubDataset, collate_boxes
        from wsl_image.evaluate import localization_meter
        from wsl_image.mask_evaluation import mask_meter

        dataset = CubDataset(self.held, train=False, image_size=config.image_size, masks=self.masks)
        device = resolve_device(config.device)
        meters = []
        before = model.cam_score
        for combo in grid:
            model.cam_score = combo.get("cam_score", config.cam_score)
            loader = torch.utils.data.DataLoader(  # its own generator: the training RNG is left untouched
                dataset, batch_size=config.eval_batch_size or config.batch_size, shuffle=False,
                num_workers=config.workers, collate_fn=collate_boxes, generator=torch.Generator().manual_seed(0))
            amp = config.amp and device.type == "cuda"
            if self.masks is not None:
                meters.append(mask_meter(model, loader, device=device, amp=amp))
            else:
                meters.append(localization_meter(model, loader, device=device, iou_threshold=config.iou_threshold,
                                                 amp=amp))
        model.cam_score = before
        return meters

    def evaluate(self, params, checkpoints, grid, work_dir, report=None) -> Evaluation:
        from wsl_image.training import train

        grid = [{k: v for k, v in combo.items() if k != "cam_threshold"} for combo in grid] or [{}]
        grid = [dict(t) for t in dict.fromkeys(tuple(sorted(combo.items())) for combo in grid)]
        config = apply_settings(self.config, params)
        final: List[list] = []  # per seed: meters per combination
        for index, seed in enumerate(self.seeds):
            run = config.replace(seed=seed, out=str(Path(work_dir) / f"seed{seed}"))
            last: dict = {}

            def after_epoch(epoch: int, record: dict, model, run=run, last=last) -> None:
                meters = self._meters(model, run, grid)
                last["meters"], last["epoch"] = meters, epoch + 1
                if report is not None:
                    step = int(round(100 * (epoch + 1) / run.epochs))
                    report(step, max(_score(m) for m in meters), [])

            train(run, overwrite=True, progress=False, log=lambda message: None, splits=self._datasets(run),
                  evaluate=False, epoch_callback=after_epoch if index == 0 else None)
            if last.get("epoch") == run.epochs:
                final.append(last["meters"])
            else:
                from wsl_image.run import load_run

                model, _ = load_run(run.out, device=resolve_device(run.device))
                final.append(self._meters(model, run, grid))
        scores = np.array([[_score(meter) for meter in meters] for meters in final])  # seeds x combos
        means = scores.mean(axis=0)
        best = int(np.argmax(means))
        settings = dict(grid[best])
        fixed = self.space.settings.get("cam_threshold")
        if fixed is not None and fixed.value != "auto":
            settings["cam_threshold"] = float(fixed.value)
        elif self.masks is None:  # the best held-out MaxBoxAcc (IoU 0.5, largest box) of the chosen models, seed mean
            curves = np.mean([meters[best].box_acc.curves()[0] for meters in final], axis=0)
            thresholds = final[0][best].box_acc.cam_thresholds
            settings["cam_threshold"] = round(float(thresholds[int(np.argmax(curves))]), 6)
        profile = [[dict(combo), float(score)] for combo, score in zip(grid, means)]
        return Evaluation(score=float(means[best]), settings=settings, profile=profile,
                          per_seed=[float(v) for v in scores[:, best]])

    def best_config_text(self, settings, header) -> str:
        import yaml

        config = apply_settings(self.config, settings)
        lines = [f"# {line}" for line in header]
        lines.append("# train on every training image with these settings:")
        lines.append("#   wsl-image train --config best.yaml --out RUN")
        return "\n".join(lines) + "\n" + yaml.safe_dump(config.to_dict(), sort_keys=False)

    def worker(self):
        return _task_from_dict, {"config": self.config.to_dict(), "held_out": self.held_out_count,
                                 "held_out_list": self.held_out_list, "split_seed": self.split_seed,
                                 "seeds": self.seeds, "space_file": self.space_file}


def _score(meter) -> float:
    """The held-out selection score of a meter (a fraction): MaxBoxAccV2 of a LocalizationMeter, PxAP of a
    MaskMeter."""
    from wsl_image.mask_evaluation import MaskMeter

    if isinstance(meter, MaskMeter):
        return float(meter.pixels.compute()["pxap"])
    return float(meter.box_acc_v2.compute()["mean"])


def _task_from_dict(config: dict, **kwargs) -> ImageTuneTask:
    """Rebuild a task in another process (``jobs``)."""
    return ImageTuneTask(TrainConfig.from_dict(config), **kwargs)



def tune(config: TrainConfig, options: TuneOptions | str | Path, **fields: Any) -> Dict[str, Any]:
    """Run (or continue) the held-out selection of ``config``'s aggregator; see ``docs/tuning.md``.

    ``options``: a :class:`~wsl.tuning.TuneOptions`, or the output folder with its other fields as keywords.
    """
    from wsl.tuning.study import tune as tune_study

    return tune_study(ImageTuneTask, config, options, **fields)
