"""Result figures and tables: class activation sequences against ground truth (paper Fig. 5) and a
Table-1-style comparison of detection AP per tIoU and classification mAP."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence, Tuple

import numpy as np

from wsl.utils.io import atomic_writer

__all__ = ["plot_cas", "plot_runs", "format_metrics_table", "summarize_runs"]

_TABLE_KEYS = ("average_mAP_0.1_0.7", "cls_mAP")


def plot_cas(path: str | Path, sequences: Sequence[Tuple[str, np.ndarray]],
             segments: Sequence[Tuple[float, float]], seconds_per_snippet: float, *,
             duration: float | None = None, title: str = "") -> None:
    """Save a figure with the ground-truth segments on top and one CAS per row below it.

    Args:
        path: PNG file, written atomically.
        sequences: (label, cas (ndarray[T])) per run, e.g. one per aggregator.
        segments: ground-truth (start_s, end_s) of the plotted class.
        seconds_per_snippet: duration of one snippet; snippet ``t`` covers [t, t + 1) * this.
        duration: video length in seconds (default: the longest CAS).
        title: figure title, e.g. "video_test_0000004 — HammerThrow".
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not sequences:
        raise ValueError("plot_cas needs at least one sequence")
    length = max(len(cas) for _, cas in sequences)
    duration = float(duration) if duration else length * seconds_per_snippet
    rows = len(sequences) + 1
    figure, axes = plt.subplots(rows, 1, figsize=(10, 0.6 + 1.1 * rows), sharex=True, squeeze=False)
    axes = axes[:, 0]
    ground_truth = axes[0]
    for start, end in segments:
        ground_truth.axvspan(start, end, color="tab:green", alpha=0.9)
    ground_truth.set_yticks([])
    ground_truth.set_ylabel("GT", rotation=0, ha="right", va="center")
    for axis, (label, cas) in zip(axes[1:], sequences):
        cas = np.asarray(cas, dtype=np.float64)
        times = (np.arange(len(cas)) + 0.5) * seconds_per_snippet
        for start, end in segments:
            axis.axvspan(start, end, color="tab:green", alpha=0.12, linewidth=0)
        axis.fill_between(times, cas, color="tab:blue", alpha=0.35, linewidth=0)
        axis.plot(times, cas, color="tab:blue", linewidth=1.0)
        top = float(cas.max()) if cas.size and cas.max() > 0 else 1.0
        axis.set_ylim(0, top * 1.05)
        axis.set_yticks([])
        axis.set_ylabel(label, rotation=0, ha="right", va="center")
    axes[-1].set_xlim(0, duration)
    axes[-1].set_xlabel("time (s)")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    try:
        with atomic_writer(path, "wb") as handle:
            figure.savefig(handle, format="png", dpi=110)
    finally:
        plt.close(figure)


def summarize_runs(runs: Sequence[Mapping]) -> dict:
    """Mean and sample standard deviation (ddof=1) over seeds of the AP per tIoU, the averages and Cls mAP.

    runs: metrics dicts (``tiou_thresholds``, ``mAP``, ``average_mAP``, ``cls_mAP``, ...).
    """
    if not runs:
        raise ValueError("no runs to summarize")
    summary = {"tiou_thresholds": list(runs[0]["tiou_thresholds"]), "seeds": len(runs)}
    for key in ("mAP", "average_mAP", *_TABLE_KEYS):
        if all(key in run for run in runs):
            values = np.array([run[key] for run in runs], dtype=np.float64)
            summary[key] = values.mean(axis=0).tolist()
            summary[f"{key}_std"] = values.std(axis=0, ddof=1 if len(runs) > 1 else 0).tolist()
    return summary


def _cell(values: Sequence[float], std: Sequence[float] | None, index=None) -> str:
    value = values if index is None else values[index]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = f"{100 * value:.1f}"
    if std is not None:
        deviation = std if index is None else std[index]
        text += f" ± {100 * deviation:.1f}"
    return text


def format_metrics_table(results: Mapping[str, Mapping]) -> str:
    """Markdown table: one row per name, AP (%) at each tIoU, the 0.1–0.7 average and Cls mAP.

    results: name -> metrics dict or :func:`summarize_runs` output (then cells read "mean ± std").
    """
    first = next(iter(results.values()))
    thresholds = list(first["tiou_thresholds"])
    average_key = "average_mAP_0.1_0.7" if "average_mAP_0.1_0.7" in first else "average_mAP"
    average_label = "avg 0.1:0.7" if average_key.endswith("0.7") else "avg"
    header = ["Aggregator", *[f"{t:g}" for t in thresholds], average_label, "Cls mAP"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, metrics in results.items():
        with_std = "mAP_std" in metrics and metrics.get("seeds", 1) > 1
        cells = [_cell(metrics["mAP"], metrics.get("mAP_std") if with_std else None, i)
                 for i in range(len(thresholds))]
        for key in (average_key, "cls_mAP"):
            cells.append(_cell(metrics[key], metrics.get(f"{key}_std") if with_std else None)
                         if key in metrics else "–")
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)


def plot_runs(run_dirs: Sequence[str | Path], video_name: str, path: str | Path, *,
              class_name: str | None = None, subset: str = "test", data_root: str | None = None,
              device: str = "cpu", labels: Sequence[str] | None = None) -> str:
    """CAS of one video for every run (Fig. 5 style); returns the plotted class name.

    The class defaults to the video's first ground-truth class, or to the first run's most probable
    class when the video has no action.
    """
    from wsl.utils.runs import recorded_path
    from wsl_video.inference import predict_video
    from wsl_video.train import check_run_classes, load_run, open_data

    if not run_dirs:
        raise ValueError("plot needs at least one run directory")
    datasets: dict = {}
    sequences, video, chosen = [], None, class_name
    names = list(labels) if labels is not None else _run_labels(run_dirs)
    for run_dir, label in zip(run_dirs, names):
        config, model, state = load_run(run_dir, device)
        key = repr(sorted(vars(config.data).items()))
        if key not in datasets:
            root = recorded_path(config.data.data_root, data_root, source=Path(run_dir) / "config.yaml")
            datasets[key] = open_data(config, subset, root)
        dataset = datasets[key]
        check_run_classes(state, dataset, run_dir)
        video = dataset.video(dataset.index(video_name))
        prediction = predict_video(model, dataset.features(video_name), config.inference,
                                   config.train.num_segments)
        classes = list(state["classes"])
        if chosen is None:
            chosen = video.labels[0] if video.labels else classes[int(np.argmax(prediction.scores))]
        if chosen not in classes:
            raise ValueError(f"class {chosen!r} is not one of the classes of {run_dir}")
        sequences.append((label, prediction.cas[:, classes.index(chosen)]))
    segments = [(start, end) for start, end, label in video.annotations if label == chosen]
    plot_cas(path, sequences, segments, video.seconds_per_snippet, duration=video.duration,
             title=f"{video_name} — {chosen}")
    return chosen


def _run_labels(run_dirs: Sequence[str | Path]) -> list:
    """The aggregator of each run, or the directory name when several runs share an aggregator."""
    from wsl_video.config import load_config
    from wsl_video.train import CONFIG_FILE

    labels = []
    for run_dir in run_dirs:
        config_path = Path(run_dir) / CONFIG_FILE
        has_config = config_path.is_file()
        labels.append(load_config(config_path).model.aggregator if has_config else Path(run_dir).name)
    if len(set(labels)) < len(labels):
        labels = [Path(run_dir).name for run_dir in run_dirs]
    return labels
