"""Training MAAN (or any registered aggregator) on video-level labels, with exact resumption.

Recipe (paper Sec. 3.1): every iteration draws a batch of training videos; each video is divided
uniformly into ``num_segments`` (T = 20) segments and one random snippet is taken from each
(:func:`wsl_video.data.sample_snippets`); the loss is the video-level multi-label cross-entropy
(Eq. 10), optimised with Adam at 5e-4. Other methods draw their batches and compute their loss
through :meth:`wsl_video.methods.VideoMethod.sample_batch` and ``loss``; the rest of the loop is shared.

The run folder (:mod:`wsl_video.run`) gets ``config.yaml``, ``train.log`` and ``checkpoint.pt``, replaced
atomically every ``checkpoint_every`` iterations and at the end, then the evaluation's ``detections.json``
and ``metrics.json``. Training refuses a folder that holds another run or unrelated files, unless told to
resume or to overwrite that run.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any, Callable, Dict

import numpy as np
import torch

from wsl.utils.device import resolve_device
from wsl.utils.errors import TrainingDiverged
from wsl.utils.runs import absolute_path
from wsl_video.config import RunConfig, config_to_dict, save_config
from wsl_video.methods import get_method
from wsl_video.run import build_model, check_aggregator, run_folder

__all__ = ["train"]


class _Features:
    """Per-video features, kept in memory after the first read when ``cache`` is set."""

    def __init__(self, dataset, cache: bool) -> None:
        self.dataset = dataset
        self.cache: Dict[int, Dict[str, np.ndarray]] | None = {} if cache else None

    def __call__(self, index: int) -> Dict[str, np.ndarray]:
        if self.cache is None:
            return self.dataset.features(index)
        if index not in self.cache:
            self.cache[index] = self.dataset.features(index)
        return self.cache[index]


def _checkpoint(model, optimizer, rng, iteration: int, config: RunConfig, classes, feature_dims) -> dict:
    state = {
        "iteration": iteration,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "numpy_rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "config": config_to_dict(config),
        "classes": list(classes),
        "feature_dims": dict(feature_dims),
    }
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def train(config: RunConfig, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
          evaluate: bool = True, progress: bool = True, echo: Callable[[str], None] | None = None,
          train_set=None, test_set=None) -> Dict[str, Any]:
    """Train (or resume) a run in ``out_dir``; evaluate it on the test subset unless ``evaluate`` is False.

    ``out_dir`` must be new or empty unless ``resume`` (continue its run) or ``overwrite`` (remove
    its run's outputs first); a folder with files that are not a run's outputs is always refused
    (``ValueError``). ``train_set`` / ``test_set`` are already opened datasets matching ``config.data``
    (opened from the config when None). Returns the metrics (empty when not evaluated).
    """
    from tqdm import tqdm

    from wsl_video.data.opening import open_data
    from wsl_video.evaluation import evaluate_run

    out_dir = Path(out_dir)
    folder = run_folder(out_dir)
    config = config.resolved()
    config.data.data_root = absolute_path(config.data.data_root)
    stale = folder.check(resume=resume, overwrite=overwrite)
    check_aggregator(config)
    device = resolve_device(config.train.device)
    state = folder.load_checkpoint() if resume else None
    train_set = train_set if train_set is not None else open_data(config, "train")
    method = get_method(config.model.method)
    method.check_features(train_set, config)
    started = ((state or {}).get("config") or {}).get("train", {}).get("iterations")
    if method.uses_training_progress and started is not None and int(started) != config.train.iterations:
        raise ValueError(f"cannot resume {out_dir}: method {config.model.method!r} schedules its loss over "
                         f"the run's {int(started)} iterations; resume with --iterations {int(started)}")
    config.data.extractor = _recorded_extractor(train_set, state, out_dir)
    folder.start(stale)
    save_config(config, folder.config_path)
    log = folder.log(echo, append=resume)

    feature_dims = dict(train_set.feature_dims)
    torch.manual_seed(config.train.seed)
    rng = np.random.default_rng(config.train.seed)
    model = build_model(config, feature_dims, len(train_set.classes)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr,
                                 weight_decay=config.train.weight_decay)
    start = 0
    if state is not None:
        if list(state["classes"]) != list(train_set.classes) or dict(state["feature_dims"]) != feature_dims:
            raise ValueError(f"cannot resume {out_dir}: the checkpoint was trained on other classes "
                             "or features")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        for group in optimizer.param_groups:  # the resumed config decides (flags may change them)
            group["lr"], group["weight_decay"] = config.train.lr, config.train.weight_decay
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        start = int(state["iteration"])
        log(f"resumed at iteration {start}")
    else:
        recipe = config.model.aggregator if config.model.method == "maan" else \
            f"{config.model.method} ({config.model.aggregator})"
        log(f"training {recipe} on {config.data.describe()} ({len(train_set)} videos, "
            f"streams {', '.join(train_set.streams)}, {len(train_set.classes)} classes) on {device}")

    label_matrix = train_set.label_matrix()
    labels = torch.as_tensor(label_matrix, dtype=torch.float32)
    features = _Features(train_set, config.train.cache_features)
    iterations = config.train.iterations
    model.train()
    running, tic = [], time.time()
    bar = tqdm(range(start, iterations), desc=f"train {config.model.aggregator}", unit="it",
               disable=not progress, leave=False)
    for iteration in bar:
        batch = method.sample_batch(features, label_matrix, train_set.streams, config, rng, device)
        outputs = model(batch.features) if batch.mask is None else model(batch.features, batch.mask)
        loss = method.training_loss(outputs, labels[batch.videos].to(device), config, iteration)
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"training diverged at iteration {iteration + 1} (loss {loss.item()})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running.append(loss.item())
        done = iteration + 1
        if done % config.train.log_every == 0 or done == iterations:
            log(f"iteration {done}/{iterations} loss {np.mean(running):.4f} ({time.time() - tic:.1f} s)")
            bar.set_postfix(loss=f"{np.mean(running):.4f}")
            running = []
        if done % config.train.checkpoint_every == 0 or done == iterations:
            folder.save_checkpoint(_checkpoint(model, optimizer, rng, done, config, train_set.classes,
                                               feature_dims))
    bar.close()
    if start >= iterations:
        log(f"nothing to train: checkpoint is at iteration {start} of {iterations}")
    if not evaluate:
        return {}
    metrics = evaluate_run(model, config, out_dir, dataset=test_set, progress=progress)
    average = "average_mAP_0.1_0.7" if "average_mAP_0.1_0.7" in metrics else "average_mAP"
    summary = ", ".join(f"{key} {100 * metrics[key]:.1f}" for key in (average, "cls_mAP"))
    log(f"test: {summary}")
    return metrics


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=True)


def _recorded_extractor(train_set, state: dict | None, out_dir: Path) -> Dict[str, Any] | None:
    """The extractor record of a run: its training features' own (None: unknown origin).

    A record is not a setting: whatever a config file says is replaced. A resumed run must find its
    features extracted as recorded in its checkpoint, so that one run never mixes two kinds of features.
    """
    found = getattr(train_set, "extractor", None)
    found = copy.deepcopy(dict(found)) if found is not None else None
    if state is not None:
        recorded = (state.get("config") or {}).get("data", {}).get("extractor")
        if _canonical(recorded) != _canonical(found):
            keys = sorted(key for key in set(recorded or {}) | set(found or {})
                          if _canonical((recorded or {}).get(key)) != _canonical((found or {}).get(key)))
            raise ValueError(f"cannot resume {out_dir}: its features were extracted with other settings than "
                             f"those of the run's checkpoint (differing: {', '.join(keys) or 'the whole record'})")
    return found
