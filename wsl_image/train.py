"""Training of the CAM model on CUB-200-2011 (single process, or DDP under ``torchrun``).

``train(config)`` writes into ``config.out``: ``config.yaml`` (full resolved configuration, paths made
absolute), ``train.log``, ``checkpoint.pt`` after every epoch (model, optimiser, scheduler, AMP scaler, every
rank's RNG states, epoch, history: tensors, numbers, strings and containers only, read back with
``weights_only=True``), ``history.json`` (per-epoch loss / accuracy / learning rate) and at the end
``metrics.json``. ``resume=True`` continues bit-for-bit from the last completed epoch; a folder holding
another run or unrelated files is refused unless ``overwrite=True`` replaces that run.

Under ``torchrun`` (``WORLD_SIZE`` > 1) each process trains on its DistributedSampler shard (gloo on
CPU, nccl on CUDA), the batch size is per process, metrics are summed over ranks, and rank 0 writes.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from wsl.utils.errors import TrainingDiverged
from wsl.utils.io import load_checkpoint
from wsl.utils.runs import absolute_path, check_run_dir, remove_run_files
from wsl_image.config import TrainConfig, load_config, save_config
from wsl_image.evaluate import evaluate_run, format_metrics
from wsl_image.model import CamModel

__all__ = ["train", "build_model", "load_run", "resolve_device", "build_splits", "DistributedContext"]

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.json"
CONFIG_NAME = "config.yaml"
HISTORY_NAME = "history.json"
LOG_NAME = "train.log"
RUN_OUTPUTS = (CONFIG_NAME, CHECKPOINT_NAME, LOG_NAME, HISTORY_NAME, METRICS_NAME, "eval_*.json")


@dataclass
class DistributedContext:
    """Rank / world size of this process; ``initialized`` when this module created the process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.initialized and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> the local CUDA device when available, else CPU; ``cuda`` -> ``cuda:local_rank``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError("device cuda requested but CUDA is not available")
        if name == "cuda":
            name = f"cuda:{local_rank}"
    return torch.device(name)


def _init_distributed(device_name: str) -> DistributedContext:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.distributed.is_initialized():
        return DistributedContext(rank, world_size, local_rank, initialized=False)
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistributedContext(rank, world_size, local_rank, initialized=True)


def build_splits(config: TrainConfig) -> dict:
    """Datasets of the run: ``{"train", "test", "val" (or None), "num_classes", "val_note"}``."""
    from wsl_image.data import CubDataset, load_cub, load_wsol_metadata

    root = Path(config.data_root)
    if not config.data_root:
        raise ValueError("--data-root is required (the CUB_200_2011 folder)")
    if not root.is_dir():
        raise FileNotFoundError(f"data root not found: {root}")
    if config.metadata:
        image_root = root / "images" if (root / "images").is_dir() else root
        meta = load_wsol_metadata(config.metadata, image_root)
    else:
        meta = load_cub(root)
    held_out = False
    if config.val_per_class:
        if "val" in meta.available_splits():
            raise ValueError(f"metadata {config.metadata} already has a val split; drop --val-per-class")
        meta = meta.holdout_val(config.val_per_class, seed=config.seed)
        held_out = True
    train_meta = meta.split("train")
    test_meta = meta.split("test")
    val_meta = None
    val_note = "no validation split (CUB train/test split only): the fixed CAM threshold is used"
    if held_out:
        val_meta = meta.split("val")
        val_note = (
            f"CAM threshold chosen on {config.val_per_class} training image(s) per class held out as a val split "
            "(best MaxBoxAcc at IoU 0.5)"
        )
    elif config.metadata:
        try:
            val_meta = meta.split("val")
        except (KeyError, ValueError):
            val_meta = None
        if val_meta is not None and len(val_meta) == 0:
            val_meta = None
        if val_meta is None:
            val_note = f"metadata {config.metadata} has no val split: the fixed CAM threshold is used"
        else:
            val_note = "CAM threshold chosen on the val split (best MaxBoxAcc at IoU 0.5)"
    num_classes = meta.num_classes
    size = config.image_size
    return {
        "train": CubDataset(train_meta, train=True, image_size=size),
        "test": CubDataset(test_meta, train=False, image_size=size),
        "val": None if val_meta is None else CubDataset(val_meta, train=False, image_size=size),
        "num_classes": num_classes,
        "class_names": list(meta.class_names),
        "val_note": val_note,
    }


def build_model(config: TrainConfig, num_classes: int | None = None, *, pretrained: bool | None = None) -> CamModel:
    """The model of the method ``config.method`` (a CamModel for ``cam``); ``pretrained`` overrides the config
    (False before loading a checkpoint)."""
    from wsl_image.methods import get_method

    if pretrained is None:
        pretrained = config.pretrained or bool(config.pretrained_path)
    return get_method(config.method).build_model(config, num_classes or config.num_classes, pretrained=pretrained)


def load_run(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[CamModel, TrainConfig]:
    """Rebuild the trained model of a run folder (``config.yaml`` + ``checkpoint.pt``), in eval mode."""
    run_dir = Path(run_dir)
    config = load_config(run_dir / CONFIG_NAME)
    checkpoint_path = run_dir / CHECKPOINT_NAME
    if not checkpoint_path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint_path}")
    checkpoint = _load_checkpoint(checkpoint_path)
    model = build_model(config, config.num_classes, pretrained=False)
    model.load_state_dict(checkpoint["model"])
    model.class_names = checkpoint.get("class_names")
    return model.to(device).eval(), config


def _load_checkpoint(path: Path) -> dict:
    checkpoint = load_checkpoint(path)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise ValueError(f"{path}: not a wsl-image checkpoint (no model weights)")
    return checkpoint


def _build_optimizer(model: CamModel, config: TrainConfig) -> torch.optim.Optimizer:
    head = {id(p) for p in model.head_parameters()}
    backbone = [p for p in model.parameters() if id(p) not in head]
    groups = [
        {"params": backbone, "lr": config.lr},
        {"params": model.head_parameters(), "lr": config.lr * config.head_lr_scale},
    ]
    groups = [group for group in groups if group["params"]]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


def _build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
    total = max(1, config.epochs * steps_per_epoch)
    warmup = config.warmup_epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if config.scheduler == "cosine":
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if config.scheduler == "step":  # x0.1 at 1/2 and 3/4 of training
            return 0.1 ** sum(step >= total * f for f in (0.5, 0.75))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _rng_state() -> dict:
    """This process's RNG states as tensors and plain values (NumPy's MT19937 key as an int64 tensor)."""
    algorithm, key, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [algorithm, torch.from_numpy(key.astype(np.int64)), int(position), int(has_gauss),
                  float(cached_gaussian)],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    """Restore :func:`_rng_state` (or the NumPy-array form earlier checkpoints hold)."""
    torch.set_rng_state(state["torch"])
    algorithm, key, position, has_gauss, cached_gaussian = state["numpy"]
    key = key.numpy() if isinstance(key, torch.Tensor) else np.asarray(key)
    np.random.set_state((algorithm, key.astype(np.uint32), int(position), int(has_gauss), float(cached_gaussian)))
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _all_gather_objects(obj: Any, context: DistributedContext) -> list:
    if not context.distributed:
        return [obj]
    gathered: list = [None] * context.world_size
    torch.distributed.all_gather_object(gathered, obj)
    return gathered


def _sum_across_ranks(values: list[float], device: torch.device, context: DistributedContext) -> list[float]:
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    if context.distributed:
        torch.distributed.all_reduce(tensor)
    return tensor.cpu().tolist()


def _check_output(config: TrainConfig, resume: bool, overwrite: bool) -> list[Path]:
    """Refuse an output folder holding another run or unrelated files; returns the old run's files to remove."""
    if not config.out:
        raise ValueError("--out is required")
    stale = check_run_dir(config.out, RUN_OUTPUTS, resume=resume, overwrite=overwrite)
    if resume and not (Path(config.out) / CHECKPOINT_NAME).is_file():
        raise FileNotFoundError(f"nothing to resume: {Path(config.out) / CHECKPOINT_NAME} not found")
    return stale


def _absolute_paths(config: TrainConfig) -> TrainConfig:
    """``config`` with its paths absolute, so the run works from any working directory."""
    return config.replace(**{name: absolute_path(getattr(config, name))
                             for name in ("data_root", "metadata", "pretrained_path", "out")})


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    epoch_callback: Callable[[int, dict, CamModel], None] | None = None,
    log: Callable[[str], None] = print,
    splits: dict | None = None,
    evaluate: bool = True,
) -> dict | None:
    """Train and evaluate as described by ``config``; returns the metrics (on rank 0, None elsewhere).

    ``config.out`` must be new or empty unless ``resume`` (continue its run) or ``overwrite`` (remove its
    run's outputs first); a folder with files that are not a run's outputs is always refused (``ValueError``).
    ``epoch_callback(epoch, record, model)`` is called on every rank after each epoch's checkpoint is written.
    ``splits`` replaces the data of ``config`` (a dict like :func:`build_splits`'s; ``test`` and ``val`` may be
    None when ``evaluate`` is False, which skips the final evaluation and returns ``{"history": [...]}``).
    """
    from wsl_image.methods import get_method

    config = get_method(config.method).resolve(_absolute_paths(config))
    stale = _check_output(config, resume, overwrite)  # every rank, before any rank writes
    context = _init_distributed(config.device)
    try:
        return _train(config, context, resume=resume, stale=stale, progress=progress, epoch_callback=epoch_callback,
                      log=log, splits=splits, evaluate=evaluate)
    finally:
        context.close()


def _train(config, context, *, resume, stale, progress, epoch_callback, log, splits, evaluate) -> dict | None:
    from tqdm import tqdm

    from wsl.utils.io import atomic_save, atomic_write_json, atomic_write_text
    from wsl_image.data import collate_boxes

    device = resolve_device(config.device, context.local_rank)
    out = Path(config.out)
    log_path = out / LOG_NAME
    log_lines: list[str] = []
    if resume and log_path.is_file():
        log_lines = log_path.read_text(encoding="utf-8").splitlines()

    def main_log(message: str) -> None:
        """Print on rank 0 and rewrite ``train.log`` atomically."""
        if not context.is_main:
            return
        log(message)
        log_lines.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {message}")
        atomic_write_text(log_path, "\n".join(log_lines) + "\n")

    torch.backends.cudnn.benchmark = device.type == "cuda"

    splits = build_splits(config) if splits is None else splits
    if config.num_classes is None:
        config = config.replace(num_classes=splits["num_classes"])
    if config.num_classes < splits["num_classes"]:
        raise ValueError(f"num_classes={config.num_classes} but the data has {splits['num_classes']} classes")
    if len(splits["train"]) == 0:
        raise ValueError(f"{config.data_root}: the train split is empty")
    checkpoint = _load_checkpoint(out / CHECKPOINT_NAME) if resume else None  # before anything is written

    from wsl_image.methods import get_method

    method = get_method(config.method)
    _seed_everything(config.seed + context.rank)
    model = build_model(config, config.num_classes, pretrained=False if resume else None).to(device)
    model.train()
    optimizer = _build_optimizer(model, config)
    if context.is_main:  # the model could be built: the run starts here
        remove_run_files(stale)
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out / CONFIG_NAME)
    main_log(
        f"{'resuming' if resume else 'training'} {config.aggregator} on {config.backbone} (grid "
        f"{config.grid or 'native'}), {len(splits['train'])} training images, {config.num_classes} classes, "
        f"{context.world_size} process(es) on {device}"
    )
    train_sampler = torch.utils.data.distributed.DistributedSampler(
        splits["train"], num_replicas=context.world_size, rank=context.rank, shuffle=True, seed=config.seed
    )
    loader_kwargs = dict(
        num_workers=config.workers,
        collate_fn=collate_boxes,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    train_loader = torch.utils.data.DataLoader(
        splits["train"],
        batch_size=config.batch_size,
        sampler=train_sampler,
        drop_last=len(train_sampler) > config.batch_size,  # no batch of 1 for BatchNorm
        **loader_kwargs,
    )
    scheduler = _build_scheduler(optimizer, config, len(train_loader))
    use_amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    start_epoch = 0
    history: list[dict] = []
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        start_epoch = int(checkpoint["epoch"])
        history = list(checkpoint.get("history", []))
        rng_states = checkpoint["rng"]
        if len(rng_states) != context.world_size:
            main_log(
                f"resuming with {context.world_size} process(es) from a {len(rng_states)}-process run: "
                "data order continues, random augmentations differ"
            )
            _seed_everything(config.seed + context.rank + 7919 * start_epoch)
        else:
            _set_rng_state(rng_states[context.rank])
        main_log(f"resumed from {out / CHECKPOINT_NAME} after epoch {start_epoch}")

    train_model: torch.nn.Module = model
    if context.distributed:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    for epoch in range(start_epoch, config.epochs):
        train_sampler.set_epoch(epoch)
        train_model.train()
        started = time.time()
        loss_sum, correct, seen = 0.0, 0.0, 0.0
        bar = tqdm(
            train_loader,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            disable=not (progress and context.is_main),
            leave=False,
        )
        for batch in bar:
            images = batch["image"].to(device, non_blocking=True)
            labels = batch["label"].to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, enabled=use_amp):
                outputs = train_model(images)
                logits = outputs.logits
                loss = method.loss(outputs, labels, config)
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"training diverged: loss is {loss.item()} at epoch {epoch + 1} (lower --lr)")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            batch_size = labels.shape[0]
            loss_sum += loss.item() * batch_size
            correct += (logits.argmax(1) == labels).sum().item()
            seen += batch_size
            bar.set_postfix(loss=f"{loss.item():.3f}")
        loss_sum, correct, seen = _sum_across_ranks([loss_sum, correct, seen], device, context)
        record = {
            "epoch": epoch + 1,
            "loss": loss_sum / max(seen, 1),
            "train_acc": correct / max(seen, 1),
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": round(time.time() - started, 2),
        }
        history.append(record)
        rng_states = _all_gather_objects(_rng_state(), context)
        if context.is_main:
            atomic_save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "epoch": epoch + 1,
                    "rng": rng_states,
                    "history": history,
                    "config": config.to_dict(),
                    "class_names": splits["class_names"],
                },
                out / CHECKPOINT_NAME,
            )
            atomic_write_json(out / HISTORY_NAME, history)
            main_log(
                f"epoch {epoch + 1}/{config.epochs}  loss {record['loss']:.4f}  "
                f"train acc {100 * record['train_acc']:.2f}%  "
                f"lr {record['lr']:.2e}  ({record['seconds']:.1f}s)"
            )
        context.barrier()
        if epoch_callback is not None:
            epoch_callback(epoch, record, model)

    if start_epoch >= config.epochs and context.is_main and not (out / CHECKPOINT_NAME).is_file():
        atomic_save(
            {
                "model": model.state_dict(),
                "epoch": 0,
                "rng": [],
                "history": [],
                "config": config.to_dict(),
                "class_names": splits["class_names"],
            },
            out / CHECKPOINT_NAME,
        )
    if not evaluate:
        return {"history": history} if context.is_main else None
    metrics = evaluate_run(
        model, config, splits, device=device, rank=context.rank, world_size=context.world_size, progress=progress
    )
    if context.is_main:
        metrics["history"] = history
        atomic_write_json(out / METRICS_NAME, metrics)
        main_log(format_metrics(metrics))
        return metrics
    return None
