"""Training of the CAM model on CUB-200-2011 (single process, or DDP under ``torchrun``).

``train(config)`` writes the run folder ``config.out`` (:mod:`wsl_image.run`): ``config.yaml``, ``train.log``,
``checkpoint.pt`` and ``history.json`` after every epoch, and at the end ``metrics.json``. ``resume=True``
continues bit-for-bit from the last completed epoch; a folder holding another run or unrelated files is refused
unless ``overwrite=True`` replaces that run.

Under ``torchrun`` (``WORLD_SIZE`` > 1) each process trains on its DistributedSampler shard (gloo on
CPU, nccl on CUDA), the batch size is per process, metrics are summed over ranks, and rank 0 writes.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from wsl.utils.device import resolve_device
from wsl.utils.errors import TrainingDiverged
from wsl.utils.runs import RunFolder, absolute_path
from wsl_image.config import TrainConfig, save_config
from wsl_image.data.splits import build_splits
from wsl_image.distributed import all_gather_objects, init_distributed, sum_across_ranks
from wsl_image.evaluate import evaluate_run, format_metrics
from wsl_image.model import CamModel
from wsl_image.run import HISTORY_NAME, build_model, load_run_checkpoint, run_folder

__all__ = ["train"]


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


def _check_output(config: TrainConfig, resume: bool, overwrite: bool) -> list[Path]:
    """Refuse an output folder holding another run or unrelated files; returns the old run's files to remove."""
    if not config.out:
        raise ValueError("--out is required")
    return run_folder(config.out).check(resume=resume, overwrite=overwrite)


def _absolute_paths(config: TrainConfig) -> TrainConfig:
    """``config`` with its paths absolute, so the run works from any working directory."""
    return config.replace(**{name: absolute_path(getattr(config, name))
                             for name in ("data_root", "metadata", "mask_root", "pretrained_path", "out")})


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
    context = init_distributed(config.device)
    try:
        return _train(config, context, resume=resume, stale=stale, progress=progress, epoch_callback=epoch_callback,
                      log=log, splits=splits, evaluate=evaluate)
    finally:
        context.close()


def _train(config, context, *, resume, stale, progress, epoch_callback, log, splits, evaluate) -> dict | None:
    from tqdm import tqdm

    from wsl_image.data import collate_boxes

    device = resolve_device(config.device, context.local_rank)
    folder: RunFolder = run_folder(config.out)
    run_log = folder.log(log, append=resume)

    def main_log(message: str) -> None:
        """Print on rank 0 and rewrite ``train.log`` atomically."""
        if context.is_main:
            run_log(message)

    torch.backends.cudnn.benchmark = device.type == "cuda"

    splits = build_splits(config) if splits is None else splits
    if config.num_classes is None:
        config = config.replace(num_classes=splits["num_classes"])
    if config.num_classes < splits["num_classes"]:
        raise ValueError(f"num_classes={config.num_classes} but the data has {splits['num_classes']} classes")
    if len(splits["train"]) == 0:
        raise ValueError(f"{config.data_root}: the train split is empty")
    checkpoint = load_run_checkpoint(folder) if resume else None  # before anything is written

    from wsl_image.methods import get_method

    method = get_method(config.method)
    _seed_everything(config.seed + context.rank)
    model = build_model(config, config.num_classes, pretrained=False if resume else None).to(device)
    model.train()
    optimizer = _build_optimizer(model, config)
    if context.is_main:  # the model could be built: the run starts here
        folder.start(stale)
        save_config(config, folder.config_path)
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
        main_log(f"resumed from {folder.checkpoint_path} after epoch {start_epoch}")

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
            inputs, targets = method.training_batch(images, labels, config)
            with torch.autocast(device_type=device.type, enabled=use_amp):
                outputs = method.training_forward(train_model, inputs, targets, config)
                logits = outputs.logits
                loss = method.loss(outputs, targets, config)
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
        loss_sum, correct, seen = sum_across_ranks([loss_sum, correct, seen], device, context)
        record = {
            "epoch": epoch + 1,
            "loss": loss_sum / max(seen, 1),
            "train_acc": correct / max(seen, 1),
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": round(time.time() - started, 2),
        }
        history.append(record)
        rng_states = all_gather_objects(_rng_state(), context)
        if context.is_main:
            folder.save_checkpoint(
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
            )
            folder.write_json(HISTORY_NAME, history)
            main_log(
                f"epoch {epoch + 1}/{config.epochs}  loss {record['loss']:.4f}  "
                f"train acc {100 * record['train_acc']:.2f}%  "
                f"lr {record['lr']:.2e}  ({record['seconds']:.1f}s)"
            )
        context.barrier()
        if epoch_callback is not None:
            epoch_callback(epoch, record, model)

    if start_epoch >= config.epochs and context.is_main and not folder.checkpoint_path.is_file():
        folder.save_checkpoint(
            {
                "model": model.state_dict(),
                "epoch": 0,
                "rng": [],
                "history": [],
                "config": config.to_dict(),
                "class_names": splits["class_names"],
            },
        )
    if not evaluate:
        return {"history": history} if context.is_main else None
    if context.distributed:  # every rank evaluates the model rank 0 saved (BatchNorm statistics included)
        for buffer in model.buffers():
            torch.distributed.broadcast(buffer, 0)
    metrics = evaluate_run(
        model, config, splits, device=device, rank=context.rank, world_size=context.world_size, progress=progress
    )
    if context.is_main:
        metrics["history"] = history
        folder.write_json(folder.METRICS, metrics)
        main_log(format_metrics(metrics))
        return metrics
    return None
