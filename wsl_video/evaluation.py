"""Evaluate a ``wsl-video`` model: detections, detection mAP and classification mAP of a subset."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from wsl.utils.io import atomic_write_json, jsonable
from wsl_video.config import RunConfig
from wsl_video.inference import DatasetPrediction
from wsl_video.model import TemporalLocalizer
from wsl_video.run import DETECTIONS_FILE, METRICS_FILE

__all__ = ["evaluate_run", "evaluate_predictions", "write_prediction"]


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
    from wsl_video.data.opening import open_data
    from wsl_video.inference import predict_dataset
    from wsl_video.methods import get_method

    out_dir = Path(out_dir)
    dataset = dataset if dataset is not None else open_data(config, subset, data_root)
    prediction = predict_dataset(model, dataset, config.inference, config.train.num_segments,
                                 localize_video=get_method(config.model.method).localize,
                                 progress=progress)
    write_prediction(out_dir / DETECTIONS_FILE, dataset, prediction)
    metrics = evaluate_predictions(dataset, prediction, config.inference.tiou_thresholds)
    metrics = {"dataset": config.data.dataset, "subset": subset, "aggregator": config.model.aggregator,
               **metrics}
    atomic_write_json(out_dir / METRICS_FILE, jsonable(metrics))
    return metrics

