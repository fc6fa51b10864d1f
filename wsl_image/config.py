"""Training configuration of the CAM model: one dataclass, read from and written to YAML.

``DIR/config.yaml`` written by ``wsl-image train`` holds the full resolved configuration and is
read back by ``--config``, ``--resume``, ``evaluate`` and ``localize``. ``wsl-image config`` prints the
defaults with the comment of every option (:data:`CONFIG_COMMENTS`, :func:`config_yaml`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from wsl.utils.config import check_keys, check_mapping, coerce_fields, load_yaml_mapping, save_yaml
from wsl.utils.device import check_device_name

__all__ = ["DATASETS", "SPG_THRESHOLDS", "TrainConfig", "load_config", "save_config", "parse_grid", "config_yaml",
           "CONFIG_COMMENTS"]

_GRID_CHOICES = (4, 7, None)
# SPG's (high, low) thresholds of its three seed masks, in this order
SPG_THRESHOLDS = ("spg_threshold_1h", "spg_threshold_1l", "spg_threshold_2h", "spg_threshold_2l", "spg_threshold_3h",
                  "spg_threshold_3l")
DATASETS = ("CUB", "ILSVRC", "OpenImages")  # OpenImages is scored with masks, the others with boxes


def parse_grid(value: Any) -> int | None:
    """``4``, ``7``, ``"4"``, ``"7"``, ``None`` or ``"none"`` -> 4, 7 or None (native resolution)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "native", "")):
        return None
    try:
        grid = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"grid must be 4, 7 or none, got {value!r}") from None
    if grid <= 0:
        raise ValueError(f"grid must be a positive size or none, got {value!r}")
    return grid


@dataclass
class TrainConfig:
    """Everything that defines a training run (paths, model, optimisation, evaluation)."""

    # data
    dataset: str = "CUB"
    data_root: str = ""
    metadata: str | None = None
    mask_root: str | None = None
    proxy_train: bool = False
    out: str = ""
    image_size: int = 224
    workers: int = 4
    val_per_class: int = 0
    # model
    method: str = "cam"  # configs written before this key existed mean the default
    backbone: str = "resnet50"
    pretrained: bool = False
    pretrained_path: str | None = None
    backbone_kwargs: dict = field(default_factory=dict)
    grid: int | None = 7
    aggregator: str = "maa"
    aggregator_kwargs: dict = field(default_factory=dict)
    cam_score: str = "auto"
    num_classes: int | None = None
    # method options (null: the method's default; ignored by the methods that do not use them)
    has_patch_sizes: list | None = None
    has_hide_prob: float | None = None
    cutmix_beta: float | None = None
    cutmix_prob: float | None = None
    adl_drop_rate: float | None = None
    adl_threshold: float | None = None
    adl_layers: list | None = None
    acol_threshold: float | None = None
    spg_threshold_1h: float | None = None
    spg_threshold_1l: float | None = None
    spg_threshold_2h: float | None = None
    spg_threshold_2l: float | None = None
    spg_threshold_3h: float | None = None
    spg_threshold_3l: float | None = None
    head_width_scale: float | None = None
    # optimisation
    epochs: int = 30
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float = 0.01
    head_lr_scale: float = 10.0
    momentum: float = 0.9
    weight_decay: float = 1e-4
    scheduler: str = "cosine"
    warmup_epochs: int = 0
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    # evaluation
    cam_threshold: float = 0.2
    iou_threshold: float = 0.5
    eval_batch_size: int | None = None
    cam_clamp_negative: bool = False
    cam_percentile: float | None = None

    def __post_init__(self) -> None:
        self.grid = parse_grid(self.grid)
        coerce_fields(self, skip=("grid",))  # YAML / CLI values to the field types (``1e-3`` is a string to YAML)
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field out of range."""
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}")
        if not isinstance(self.method, str) or not self.method:
            raise ValueError(f"method must be a name, got {self.method!r}")
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {self.image_size}")
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.cam_score not in ("auto", "linear", "sigmoid"):
            raise ValueError(f"cam_score must be auto, linear or sigmoid, got {self.cam_score!r}")
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if self.scheduler not in ("cosine", "step", "none"):
            raise ValueError(f"scheduler must be 'cosine', 'step' or 'none', got {self.scheduler!r}")
        check_device_name(self.device)
        if not 0.0 <= self.cam_threshold <= 1.0:
            raise ValueError(f"cam_threshold must be in [0, 1], got {self.cam_threshold}")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {self.iou_threshold}")
        if self.val_per_class < 0:
            raise ValueError(f"val_per_class must be >= 0, got {self.val_per_class}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.pretrained_path is not None and not self.pretrained_path:
            self.pretrained_path = None
        self._validate_method_options()

    def _validate_method_options(self) -> None:
        if self.has_patch_sizes is not None and (
            not self.has_patch_sizes
            or not all(isinstance(size, int) and not isinstance(size, bool) and size >= 0
                       for size in self.has_patch_sizes)
        ):
            raise ValueError(f"has_patch_sizes must be a non-empty list of patch sides >= 0 (0: nothing hidden), "
                             f"got {self.has_patch_sizes!r}")
        for name in ("has_hide_prob", "cutmix_prob", "adl_drop_rate", "adl_threshold", "acol_threshold",
                     *SPG_THRESHOLDS):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.cutmix_beta is not None and self.cutmix_beta < 0:
            raise ValueError(f"cutmix_beta must be >= 0 (0: no mixing), got {self.cutmix_beta}")
        if self.adl_layers is not None and (
            not self.adl_layers or not all(isinstance(name, str) and name for name in self.adl_layers)
        ):
            raise ValueError(f"adl_layers must be a non-empty list of backbone module names, got {self.adl_layers!r}")
        if self.cam_percentile is not None and not 0.0 < self.cam_percentile <= 100.0:
            raise ValueError(f"cam_percentile must be in (0, 100] or null, got {self.cam_percentile}")
        if self.head_width_scale is not None and not 0.0 < self.head_width_scale <= 4.0:
            raise ValueError(f"head_width_scale must be in (0, 4] or null, got {self.head_width_scale}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> TrainConfig:
        """Build from a mapping; an unknown key raises ``ValueError`` naming it and ``source``."""
        check_mapping(values, source, "option: value")
        check_keys(values, [f.name for f in dataclasses.fields(cls)], source)
        try:
            return cls(**dict(values))
        except TypeError as error:
            raise ValueError(f"{source}: {error}") from None

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (``None`` values are ignored)."""
        values = self.to_dict()
        values.update({key: value for key, value in changes.items() if value is not None})
        return TrainConfig.from_dict(values)


# One line per option: printed above it by `wsl-image config`. A new option needs its line here
# (tests/test_cli_consistency.py checks that every option has one).
CONFIG_COMMENTS = {
    "dataset": "CUB (official or wsolevaluation layout), ILSVRC or OpenImages (wsolevaluation metadata layout; "
               "docs/image-data.md).",
    "data_root": "The CUB_200_2011 folder (images/, images.txt, bounding_boxes.txt, ...), required (or --data-root); "
                 "ILSVRC and OpenImages: the folder the image ids of the metadata are relative to; stored absolute "
                 "in a run.",
    "metadata": "wsolevaluation metadata folder (train/, val/, test/), or null for the official CUB split; "
                "its val split chooses the CAM threshold. ILSVRC and OpenImages: required (DIR/<dataset>/ or the "
                "dataset's folder itself).",
    "mask_root": "OpenImages: the folder the mask paths of localization.txt are relative to (DIR/OpenImages when "
                 "it exists), or null for data_root.",
    "proxy_train": "ILSVRC: train on the images of train/image_ids_proxy.txt instead of train/image_ids.txt.",
    "out": "Run folder (set by `wsl-image train --out`).",
    "image_size": "Input size S: images are resized to S x S, >= 16.",
    "workers": "Data-loading worker processes, >= 0 (0: load in the main process).",
    "val_per_class": "Hold out this many training images per class as a val split that chooses the CAM "
                     "threshold, >= 0 (0: none).",
    "method": "Training method (model, loss, defaults): cam (backbone, aggregator, linear classifier, softmax "
              "cross-entropy), has, cutmix, adl, acol, spg or any plugin (`wsl-image methods` lists them).",
    "backbone": "timm model name, e.g. resnet50, resnet10t, convnext_atto, vit_small_patch16_224.",
    "pretrained": "true: start from timm's pretrained weights (downloaded from the hub); false: from scratch.",
    "pretrained_path": "A local timm weights file to start the backbone from, or null.",
    "backbone_kwargs": "Keyword options of timm.create_model, e.g. {output_stride: 16}.",
    "grid": "Pool the feature map to 4 x 4 or 7 x 7 before aggregation, or null for the native resolution.",
    "aggregator": "Aggregator name: maa (MAAN), weighted_sum (weighted-CAM), mean (CAM), max, ... or any plugin "
                  "(`wsl-image aggregators` lists them).",
    "aggregator_kwargs": "Keyword options of the aggregator, e.g. {hidden: 256}.",
    "cam_score": "Class score of the localization map: linear (CAM), sigmoid (the paper's CAS, Eq. 14) or auto "
                 "(sigmoid with attention-based aggregators, linear otherwise).",
    "num_classes": "Number of classes, or null to take it from the data.",
    "has_patch_sizes": "has: side in pixels of the hidden grid patches, one drawn per image (0: nothing hidden); "
                       "null: the method's default [0, 16, 32, 44, 56].",
    "has_hide_prob": "has: probability that each patch is hidden, in [0, 1]; null: 0.5.",
    "cutmix_beta": "cutmix: lambda ~ Beta(beta, beta), >= 0 (0: no mixing); null: 1.0.",
    "cutmix_prob": "cutmix: probability that a batch is mixed, in [0, 1]; null: 1.0.",
    "adl_drop_rate": "adl: probability that a layer uses its drop mask rather than its importance map, in [0, 1]; "
                     "null: 0.75.",
    "adl_threshold": "adl: drop where the channel-mean attention is >= this x its maximum, in [0, 1]; null: 0.9.",
    "adl_layers": "adl: backbone modules (names of named_modules) followed by an ADL layer; null: the rule for the "
                  "backbone (docs/image-methods.md).",
    "acol_threshold": "acol: erase from branch B's input where branch A's min-max normalised map is >= this, "
                      "in [0, 1]; null: 0.7.",
    "spg_threshold_1h": "spg: foreground (1) of the first seed mask (from the class map, supervising branch B2) "
                        "where the map is > this, in [0, 1]; null: 0.7.",
    "spg_threshold_1l": "spg: background (0) of the first seed mask where the map is < this; null: 0.01.",
    "spg_threshold_2h": "spg: foreground of the second seed mask (from branch B2, supervising B1); null: 0.5.",
    "spg_threshold_2l": "spg: background of the second seed mask; null: 0.05.",
    "spg_threshold_3h": "spg: foreground of the third seed mask (from the B1 / B2 fusion, supervising branch C); "
                        "null: 0.7.",
    "spg_threshold_3l": "spg: background of the third seed mask; null: 0.1.",
    "head_width_scale": "acol, spg: multiply the channels of the method's new convolutions (ACoL's 1024, SPG's "
                        "1024 / 512) by this, in (0, 4], e.g. for a small backbone; null: 1 (the benchmark's widths).",
    "epochs": "Training epochs, >= 0.",
    "batch_size": "Images per batch and process, >= 1.",
    "optimizer": "sgd (with momentum) or adamw.",
    "lr": "Learning rate of the backbone, > 0.",
    "head_lr_scale": "The new layers (aggregator and classifier) learn at lr x this.",
    "momentum": "SGD momentum.",
    "weight_decay": "Weight decay of the optimiser, >= 0.",
    "scheduler": "Learning-rate schedule: cosine, step (x0.1 at 1/2 and 3/4 of training) or none.",
    "warmup_epochs": "Epochs of linear learning-rate warm-up, >= 0.",
    "seed": "Random seed of the initialisation, the data order and the augmentations.",
    "device": "auto (cuda when available), cpu, cuda or cuda:N.",
    "amp": "true: mixed precision on CUDA (no effect on the CPU).",
    "cam_threshold": "Fixed CAM threshold of the classic protocol (top-1 / top-5 / GT-known loc), in [0, 1].",
    "iou_threshold": "IoU a box needs to count as correct in the classic protocol, in (0, 1].",
    "eval_batch_size": "Batch size of the evaluation, or null for batch_size.",
    "cam_clamp_negative": "true: localization maps from the classifier weights clamped at 0 (negative-weight "
                          "clamping, Bae et al. 2020).",
    "cam_percentile": "Normalise each localization map by its p-th percentile instead of its maximum before "
                      "thresholding, in (0, 100] (Bae et al. 2020), or null (off).",
}


def config_yaml(config: TrainConfig | None = None) -> str:
    """``config`` (default: the defaults) as YAML with a comment above every option."""
    from wsl.utils.commented_yaml import commented_yaml

    header = ("wsl-image training configuration. `wsl-image train --config FILE` reads this format, or any subset "
              "of it; command-line flags override it.")
    return commented_yaml((config or TrainConfig()).to_dict(), CONFIG_COMMENTS, header=header)


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write ``config`` as YAML atomically."""
    save_yaml(config.to_dict(), path)


def load_config(path: str | Path) -> TrainConfig:
    """Read a YAML file written by :func:`save_config` (or a partial one: missing keys take defaults)."""
    return TrainConfig.from_dict(load_yaml_mapping(path), source=str(path))
