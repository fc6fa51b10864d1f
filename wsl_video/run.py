"""A ``wsl-video`` run folder: its files, the model it describes, and reading it back.

A run directory holds ``config.yaml`` (the resolved config, paths made absolute), ``train.log``,
``checkpoint.pt`` (model, optimiser, NumPy and torch RNG states and the iteration: tensors, numbers,
strings and containers only, read back with ``weights_only=True``) and, after evaluation on the test
subset, ``detections.json`` (ActivityNet format) and ``metrics.json``.

A run on a ``custom`` dataset records in ``config.yaml`` (``data.extractor``) the ``extractor`` mapping of
the dataset's ``manifest.json``: the settings its features were extracted with, so that features of new
videos can be made the same way. :func:`run_extractor` reads it; it is None for features of unknown
origin (THUMOS14, ActivityNet, thumos14-sim, and runs written before the record existed).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple

import torch

from wsl.utils.device import resolve_device
from wsl.utils.runs import RunFolder
from wsl_video.config import RunConfig, load_run_config
from wsl_video.model import TemporalLocalizer

__all__ = ["run_folder", "build_model", "check_aggregator", "load_run", "run_extractor", "check_run_classes",
           "CONFIG_FILE", "CHECKPOINT_FILE", "LOG_FILE", "DETECTIONS_FILE", "METRICS_FILE", "RUN_OUTPUTS"]

CONFIG_FILE = RunFolder.CONFIG
CHECKPOINT_FILE = RunFolder.CHECKPOINT
LOG_FILE = RunFolder.LOG
DETECTIONS_FILE = "detections.json"
METRICS_FILE = RunFolder.METRICS
RUN_OUTPUTS = (CONFIG_FILE, CHECKPOINT_FILE, LOG_FILE, DETECTIONS_FILE, METRICS_FILE)


def run_folder(path: str | Path) -> RunFolder:
    """The :class:`~wsl.utils.runs.RunFolder` of a ``wsl-video`` run at ``path``."""
    return RunFolder(path, RUN_OUTPUTS)


def check_aggregator(config: RunConfig) -> None:
    """Fail fast on an unknown aggregator name or bad aggregator keyword arguments (``ValueError``), for methods
    that take an aggregator."""
    from wsl.aggregators import check_aggregator_options
    from wsl_video.methods import get_method

    if get_method(config.model.method).takes_aggregator:
        check_aggregator_options(config.model.aggregator, config.model.aggregator_kwargs)


def build_model(config: RunConfig, feature_dims: Dict[str, int], num_classes: int) -> TemporalLocalizer:
    """The model of the method ``config.model.method`` for the given streams and classes."""
    from wsl_video.methods import get_method

    return get_method(config.model.method).build_model(config, feature_dims, num_classes)


def run_extractor(run_dir: str | Path) -> Dict[str, Any] | None:
    """The settings the features of a run's training data were extracted with, or None when unknown.

    The record is ``data.extractor`` of the run's ``config.yaml``: a copy of the ``extractor`` mapping of
    the ``manifest.json`` of the ``custom`` dataset the run was trained on (``backbone``, ``streams``,
    ``feature_dims``, ``fps``, ``snippet``, ``resize``, ``flow``, ``weights``, ...). None means features
    of unknown origin: runs on ``thumos14``, ``activitynet`` and ``thumos14-sim``, and runs written
    before the record existed.

    Raises:
        FileNotFoundError: ``run_dir`` has no ``config.yaml``.
        ValueError: the config cannot be read or its ``data.extractor`` is not a mapping.
    """
    path = run_folder(run_dir).config_path
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: not a trained run directory")
    try:
        config = load_run_config(path).resolved()
    except ValueError as error:
        message = str(error)
        raise ValueError(message if message.startswith(str(path)) else f"{path}: {message}") from None
    extractor = config.data.extractor
    return copy.deepcopy(extractor) if extractor is not None else None


def load_run(run_dir: str | Path,
             device: str | torch.device = "cpu") -> Tuple[RunConfig, TemporalLocalizer, dict]:
    """Load ``config.yaml`` and ``checkpoint.pt`` of a run directory.

    Returns (config, model in eval mode on ``device``, checkpoint dict).
    """
    folder = run_folder(run_dir)
    folder.require(CONFIG_FILE, CHECKPOINT_FILE)
    config = load_run_config(folder.config_path).resolved()
    device = resolve_device(device)
    state = folder.load_checkpoint()
    model = build_model(config, dict(state["feature_dims"]), len(state["classes"]))
    model.load_state_dict(state["model"])
    return config, model.to(device).eval(), state


def check_run_classes(state: Mapping[str, Any], dataset, run_dir: str | Path) -> None:
    """Refuse a dataset whose class list differs from the run's (detections would get wrong labels)."""
    classes = list(state["classes"])
    if classes != list(dataset.classes):
        theirs = list(dataset.classes)
        missing = sorted(set(classes) ^ set(theirs))
        detail = (f"classes only one side has: {', '.join(missing[:5])}" if missing
                  else "the same classes in another order")
        raise ValueError(f"{run_dir} was trained on {len(classes)} classes and {dataset.name} ({dataset.subset}) has "
                         f"{len(theirs)}, {detail}")
