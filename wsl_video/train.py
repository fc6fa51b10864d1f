"""Training MAAN (or any registered aggregator) on video-level labels, with exact resumption.

Recipe (paper Sec. 3.1): every iteration draws a batch of training videos; each video is divided
uniformly into ``num_segments`` (T = 20) segments and one random snippet is taken from each
(:func:`wsl_video.data.sample_snippets`); the loss is the video-level multi-label cross-entropy
(Eq. 10), optimised with Adam at 5e-4.

A run directory holds ``config.yaml`` (the resolved config, paths made absolute), ``train.log``,
``checkpoint.pt`` (model, optimiser, NumPy and torch RNG states and the iteration: tensors, numbers,
strings and containers only, read back with ``weights_only=True``; replaced atomically every
``checkpoint_every`` iterations and at the end) and, after evaluation on the test subset,
``detections.json`` (ActivityNet format) and ``metrics.json``. Training refuses a folder that holds
another run or unrelated files, unless told to resume or to overwrite that run.

A run on a ``custom`` dataset records in ``config.yaml`` (``data.extractor``) the ``extractor`` mapping of
the dataset's ``manifest.json``: the settings its features were extracted with, so that features of new
videos can be made the same way. :func:`run_extractor` reads it; it is None for features of unknown
origin (THUMOS14, ActivityNet, thumos14-sim, and runs written before the record existed).
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Tuple

import numpy as np
import torch

from wsl.utils.errors import TrainingDiverged
from wsl.utils.io import atomic_save, atomic_write_json, atomic_write_text, load_checkpoint
from wsl.utils.runs import absolute_path, check_run_dir, remove_run_files
from wsl_video.config import RunConfig, config_to_dict, load_config, save_config
from wsl_video.inference import DatasetPrediction
from wsl_video.methods import get_method
from wsl_video.model import TemporalLocalizer

__all__ = ["resolve_device", "open_data", "split_held_out", "build_model", "train", "load_run", "run_extractor",
           "evaluate_run", "evaluate_predictions", "check_run_classes", "jsonable", "CONFIG_FILE", "CHECKPOINT_FILE",
           "LOG_FILE", "DETECTIONS_FILE", "METRICS_FILE", "RUN_OUTPUTS"]

CONFIG_FILE = "config.yaml"
CHECKPOINT_FILE = "checkpoint.pt"
LOG_FILE = "train.log"
DETECTIONS_FILE = "detections.json"
METRICS_FILE = "metrics.json"
RUN_OUTPUTS = (CONFIG_FILE, CHECKPOINT_FILE, LOG_FILE, DETECTIONS_FILE, METRICS_FILE)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; any other name is passed to :class:`torch.device`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"unknown device {name!r}: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


def check_aggregator(config: RunConfig) -> None:
    """Fail fast on an unknown aggregator name or bad aggregator keyword arguments (``ValueError``), for methods
    that take an aggregator."""
    from wsl.aggregators import check_aggregator_options

    if get_method(config.model.method).takes_aggregator:
        check_aggregator_options(config.model.aggregator, config.model.aggregator_kwargs)


def open_data(config: RunConfig, subset: str, data_root: str | None = None):
    """Open the ``subset`` ("train" or "test") of the configured dataset."""
    from wsl_video.data import open_dataset

    data = config.data
    kwargs: Dict[str, Any] = {"data_root": data_root or data.data_root, "layout": data.layout,
                              "streams": data.streams, "skip_missing": data.skip_missing, "seed": data.seed}
    if data.test_videos is not None:
        kwargs["test_videos"] = data.test_videos
    if data.seconds_per_snippet is not None:
        if data.dataset == "custom":
            raise ValueError("data.seconds_per_snippet does not apply to custom data: the snippet times of "
                             "each video come from its manifest.json")
        kwargs["seconds_per_snippet"] = data.seconds_per_snippet
    if data.dataset == "thumos14-sim":
        kwargs["sim"] = dict(data.sim)
    elif data.sim:
        raise ValueError(f"data.sim overrides only apply to thumos14-sim, not {data.dataset}")
    dataset = open_dataset(data.dataset, subset, **kwargs)
    if len(dataset) == 0:
        raise ValueError(f"{data.dataset} {subset} subset has no videos")
    return dataset


def split_held_out(dataset, num_held_out: int | None = None, seed: int = 0, *, names=None,
                   source: str = "the held-out list"):
    """Split a training subset into (fit, held-out) views for choosing settings (``wsl-video tune``).

    ``num_held_out`` videos with temporal annotations form the held-out view (their annotations serve
    only to score settings), drawn with ``seed`` and stratified by class
    (:func:`wsl.tuning.split.stratified_holdout`: each video counts in its rarest class); or ``names``
    lists them. Every class keeps training videos. Both views share the parent's feature loader (and
    its preloaded features) and keep its video order. Returns ``(fit, held_out)``
    :class:`~wsl_video.data.records.FeatureDataset` objects.

    Raises:
        ValueError: a size out of range, an unknown or unannotated video in ``names``, or a split that
            leaves a class without training videos; the message names it.
    """
    from wsl.tuning.split import holdout_by_names, stratified_holdout
    from wsl_video.data.records import FeatureDataset

    labels = [video.labels for video in dataset.videos]
    if names is not None:
        chosen = holdout_by_names([video.name for video in dataset.videos], list(names), source, labels, "video")
        for index in chosen:
            if not dataset.videos[index].annotations:
                raise ValueError(f"{source}: {dataset.videos[index].name} has no temporal annotation to score "
                                 "settings with")
    else:
        if num_held_out is None:
            raise ValueError("give the number of held-out videos or their names")
        annotated = [bool(video.annotations) for video in dataset.videos]
        chosen = stratified_holdout(labels, num_held_out, seed, eligible=annotated, noun="video")
    chosen = set(int(i) for i in chosen)

    def view(keep: bool, subset: str):
        videos = [video for i, video in enumerate(dataset.videos) if (i in chosen) == keep]
        return FeatureDataset(dataset.name, subset, dataset.classes, videos,
                              lambda video: dataset._preloaded.get(video.name) or dataset._loader(video),
                              dataset._native_dims, streams=dataset._mode, ambiguous=dataset.ambiguous,
                              version=dataset.version, extractor=getattr(dataset, "extractor", None))

    return view(False, dataset.subset), view(True, "held-out")


def build_model(config: RunConfig, feature_dims: Dict[str, int], num_classes: int) -> TemporalLocalizer:
    """The model of the method ``config.model.method`` for the given streams and classes."""
    return get_method(config.model.method).build_model(config, feature_dims, num_classes)


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


def _sample_batch(features: _Features, videos: np.ndarray, num_segments: int, rng: np.random.Generator,
                  streams, device: torch.device) -> Dict[str, torch.Tensor]:
    from wsl_video.data import sample_snippets

    batch: Dict[str, List[np.ndarray]] = {name: [] for name in streams}
    for index in videos:
        video = features(int(index))
        length = len(next(iter(video.values())))
        snippets = sample_snippets(length, num_segments, rng)
        for name in streams:
            batch[name].append(video[name][snippets])
    return {name: torch.as_tensor(np.stack(arrays), dtype=torch.float32, device=device)
            for name, arrays in batch.items()}


class _Log:
    """``train.log``, rewritten atomically on every line (it is small); ``append`` keeps earlier lines."""

    def __init__(self, path: Path, echo: Callable[[str], None] | None, append: bool) -> None:
        self.path = path
        self.lines = path.read_text(encoding="utf-8").splitlines() if append and path.is_file() else []
        self.echo = echo

    def __call__(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        self.lines.append(line)
        atomic_write_text(self.path, "\n".join(self.lines) + "\n")
        if self.echo is not None:
            self.echo(message)


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

    out_dir = Path(out_dir)
    config = config.resolved()
    config.data.data_root = absolute_path(config.data.data_root)
    stale = check_run_dir(out_dir, RUN_OUTPUTS, resume=resume, overwrite=overwrite)
    check_aggregator(config)
    device = resolve_device(config.train.device)
    checkpoint_path = out_dir / CHECKPOINT_FILE
    state = None
    if resume:
        if not checkpoint_path.is_file():
            raise FileNotFoundError(f"cannot resume: no checkpoint at {checkpoint_path}")
        state = load_checkpoint(checkpoint_path)
    train_set = train_set if train_set is not None else open_data(config, "train")
    config.data.extractor = _recorded_extractor(train_set, state, out_dir)
    remove_run_files(stale)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, out_dir / CONFIG_FILE)
    log = _Log(out_dir / LOG_FILE, echo, append=resume)

    feature_dims = dict(train_set.feature_dims)
    torch.manual_seed(config.train.seed)
    rng = np.random.default_rng(config.train.seed)
    model = build_model(config, feature_dims, len(train_set.classes)).to(device)
    method = get_method(config.model.method)
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
        log(f"training {config.model.aggregator} on {config.data.dataset} ({len(train_set)} videos, "
            f"streams {', '.join(train_set.streams)}, {len(train_set.classes)} classes) on {device}")

    labels = torch.as_tensor(train_set.label_matrix(), dtype=torch.float32)
    features = _Features(train_set, config.train.cache_features)
    iterations, batch_size = config.train.iterations, config.train.batch_size
    model.train()
    running, tic = [], time.time()
    bar = tqdm(range(start, iterations), desc=f"train {config.model.aggregator}", unit="it",
               disable=not progress, leave=False)
    for iteration in bar:
        videos = rng.choice(len(train_set), size=batch_size, replace=batch_size > len(train_set))
        batch = _sample_batch(features, videos, config.train.num_segments, rng, train_set.streams, device)
        outputs = model(batch)
        loss = method.loss(outputs, labels[videos].to(device), config)
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
            atomic_save(_checkpoint(model, optimizer, rng, done, config, train_set.classes, feature_dims),
                        checkpoint_path)
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
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: not a trained run directory")
    try:
        config = load_config(path).resolved()
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
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    for name in (CONFIG_FILE, CHECKPOINT_FILE):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir / name} is missing: not a trained run directory")
    config = load_config(run_dir / CONFIG_FILE).resolved()
    device = resolve_device(device) if isinstance(device, str) else device
    state = load_checkpoint(run_dir / CHECKPOINT_FILE)
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


def evaluate_predictions(dataset, prediction: DatasetPrediction, tiou_thresholds) -> Dict[str, Any]:
    """Detection mAP (ActivityNet protocol, THUMOS14 ambiguous segments ignored) and classification mAP.

    As in the official evaluation, only classes with ground truth in ``dataset`` are averaged, so
    detections of classes absent from it (possible on a small subset) are left out.
    """
    from wsl.metrics import classification_map, detection_map

    ground_truth = dataset.ground_truth()
    database = ground_truth["database"]
    present = {a["label"] for entry in database.values() for a in entry.get("annotations", [])}
    results = {video: [d for d in rows if d["label"] in present]
               for video, rows in prediction.results(dataset.classes).items()}
    metrics = dict(detection_map(ground_truth, {"results": results}, list(tiou_thresholds),
                                 ambiguous=getattr(dataset, "ambiguous", None) or None))
    metrics["cls_mAP"] = float(classification_map(prediction.scores, dataset.label_matrix()))
    metrics["num_videos"] = len(dataset)
    return metrics


def write_prediction(path: str | Path, dataset, prediction: DatasetPrediction) -> None:
    """ActivityNet-format detections JSON with the video-level class probabilities."""
    from wsl_video.detections import write_detections

    write_detections(path, prediction.results(dataset.classes),
                     video_scores=prediction.video_scores(dataset.classes))


def evaluate_run(model: TemporalLocalizer, config: RunConfig, out_dir: str | Path, *, subset: str = "test",
                 dataset=None, data_root: str | None = None, progress: bool = True) -> Dict[str, Any]:
    """Predict ``subset`` (or the given ``dataset``) and write ``detections.json`` and ``metrics.json``."""
    from wsl_video.inference import predict_dataset

    out_dir = Path(out_dir)
    dataset = dataset if dataset is not None else open_data(config, subset, data_root)
    prediction = predict_dataset(model, dataset, config.inference, config.train.num_segments,
                                 progress=progress)
    write_prediction(out_dir / DETECTIONS_FILE, dataset, prediction)
    metrics = evaluate_predictions(dataset, prediction, config.inference.tiou_thresholds)
    metrics = {"dataset": config.data.dataset, "subset": subset, "aggregator": config.model.aggregator,
               **metrics}
    atomic_write_json(out_dir / METRICS_FILE, jsonable(metrics))
    return metrics


def jsonable(value):
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
