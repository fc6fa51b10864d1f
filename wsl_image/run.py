"""A ``wsl-image`` run folder: its files, the model it describes, and reading it back.

``wsl-image train`` writes ``config.yaml`` (the full resolved configuration, paths made absolute),
``train.log``, ``checkpoint.pt`` after every epoch (model, optimiser, scheduler, AMP scaler, every rank's RNG
states, epoch, history: tensors, numbers, strings and containers only, read back with ``weights_only=True``),
``history.json`` (per-epoch loss / accuracy / learning rate) and at the end ``metrics.json``;
``wsl-image evaluate`` adds ``eval_<split>.json``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from wsl.utils.device import resolve_device
from wsl.utils.runs import RunFolder
from wsl_image.config import TrainConfig, load_config
from wsl_image.model import CamModel

__all__ = ["run_folder", "build_model", "load_run", "load_run_checkpoint", "CONFIG_NAME", "CHECKPOINT_NAME",
           "LOG_NAME", "HISTORY_NAME", "METRICS_NAME", "RUN_OUTPUTS"]

CHECKPOINT_NAME = RunFolder.CHECKPOINT
METRICS_NAME = RunFolder.METRICS
CONFIG_NAME = RunFolder.CONFIG
HISTORY_NAME = "history.json"
LOG_NAME = RunFolder.LOG
RUN_OUTPUTS = (CONFIG_NAME, CHECKPOINT_NAME, LOG_NAME, HISTORY_NAME, METRICS_NAME, "eval_*.json")


def run_folder(path: str | Path) -> RunFolder:
    """The :class:`~wsl.utils.runs.RunFolder` of a ``wsl-image`` run at ``path``."""
    return RunFolder(path, RUN_OUTPUTS, log_separator="  ")


def build_model(config: TrainConfig, num_classes: int | None = None, *, pretrained: bool | None = None) -> CamModel:
    """The CamModel of ``config``; ``pretrained`` overrides the config (False before loading a checkpoint)."""
    if pretrained is None:
        pretrained = config.pretrained or bool(config.pretrained_path)
    return CamModel(
        config.backbone,
        num_classes or config.num_classes,
        aggregator=config.aggregator,
        grid=config.grid,
        pretrained=pretrained and not config.pretrained_path,
        pretrained_path=config.pretrained_path if pretrained else None,
        aggregator_kwargs=config.aggregator_kwargs,
        image_size=config.image_size,
        backbone_kwargs=config.backbone_kwargs,
        cam_score=config.cam_score,
    )


def load_run_checkpoint(folder: RunFolder) -> dict:
    """The run's ``checkpoint.pt`` (``weights_only=True``); ``ValueError`` when it holds no model weights."""
    checkpoint = folder.load_checkpoint()
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise ValueError(f"{folder.checkpoint_path}: not a wsl-image checkpoint (no model weights)")
    return checkpoint


def load_run(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[CamModel, TrainConfig]:
    """Rebuild the trained model of a run folder (``config.yaml`` + ``checkpoint.pt``), in eval mode."""
    folder = run_folder(run_dir)
    config = load_config(folder.config_path)
    if not folder.checkpoint_path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {folder.checkpoint_path}")
    checkpoint = load_run_checkpoint(folder)
    model = build_model(config, config.num_classes, pretrained=False)
    model.load_state_dict(checkpoint["model"])
    model.class_names = checkpoint.get("class_names")
    return model.to(resolve_device(device)).eval(), config
