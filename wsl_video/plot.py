"""Result figures and tables: class activation sequences against ground truth (paper Fig. 5) and a
Table-1-style comparison of detection AP per tIoU and classification mAP."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, NamedTuple, Sequence, Tuple

import numpy as np

from wsl.utils.io import atomic_writer

if TYPE_CHECKING:
    from wsl_video.methods.base import CutCurve

__all__ = ["CasRow", "cas_figure", "plot_cas", "plot_runs", "distinct_path_labels", "format_metrics_table",
           "summarize_runs"]

_TABLE_KEYS = ("average_mAP_0.1_0.7", "cls_mAP")


class CasRow(NamedTuple):
    """One class activation sequence of a CAS figure.

    label: row title (a run, an aggregator or a class); cas (ndarray[T]): the sequence; detections: the
    predicted segments ``(start_s, end_s, score)`` drawn under the ground truth; thresholds: the cuts, as
    fractions of ``max(cas)``, at which proposals were made (dashed lines); cut: what the detections cut
    instead, when the method has its own rule (:meth:`wsl_video.methods.VideoMethod.cut_curve`; replaces
    ``thresholds``): its levels are drawn dashed, on the CAS when the curve is the CAS, else with the curve
    itself on a second y-axis at the right.
    """

    label: str
    cas: np.ndarray
    detections: Sequence[Tuple[float, float, float]] = ()
    thresholds: Sequence[float] = ()
    cut: CutCurve | None = None


_GT_COLOR, _CAS_COLOR, _CUT_COLOR = "tab:green", "tab:blue", "tab:purple"
_LEVEL_COLOR = "0.25"  # the dashed cut levels on the CAS
_SCORE_COLORMAP = "Oranges"  # detection score: light (low) to dark (high), explained by the figure's colour bar
_SCORE_FLOOR = 0.3  # the colour map's range used for scores 0..max (its lightest end is invisible on white)


def _score_colormap():
    """The part of the colour map that detection scores 0..max take (a low score stays visible)."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    return ListedColormap(colormaps[_SCORE_COLORMAP](np.linspace(_SCORE_FLOOR, 1.0, 256)), name="detection_score")


def _segment_strip(axis, ground_truth, detections, duration: float, score_norm, colormap) -> None:
    """Two lanes: the ground truth on top (when given), the detections under it (colour: the score)."""
    from matplotlib.patches import Rectangle

    lanes = [("detections", 0.0)] + ([("ground truth", 1.0)] if ground_truth is not None else [])
    for start, end, score in detections:
        axis.add_patch(Rectangle((start, 0.12), end - start, 0.76, color=colormap(score_norm(float(score))),
                                 linewidth=0, gid="detection"))
    if not detections:  # an empty lane says so (e.g. the class's video-level score is below the cut)
        axis.text(0.005, 0.25, "none of this class", transform=axis.get_yaxis_transform(), fontsize=7,
                  color="0.4", gid="no_detections")
    for start, end in ground_truth or ():
        axis.add_patch(Rectangle((start, 1.12), end - start, 0.76, color=_GT_COLOR, linewidth=0, gid="ground_truth"))
    axis.set_ylim(0, len(lanes))
    axis.set_yticks([offset + 0.5 for _, offset in lanes], [name for name, _ in lanes], fontsize=8)
    axis.tick_params(axis="y", length=0)
    axis.set_xlim(0, duration)
    for side in ("top", "right", "left"):
        axis.spines[side].set_visible(False)


def cas_figure(rows: Sequence[CasRow | Tuple], seconds_per_snippet: float, *,
               ground_truth: Sequence[Tuple[float, float]] | None = None, duration: float | None = None,
               title: str = "", shared_scores: bool = True):
    """A matplotlib figure: per row, its predicted segments under the ground truth, then the CAS.

    Args:
        rows: :class:`CasRow` (or ``(label, cas[, detections[, thresholds[, cut]]])`` tuples), e.g. one per
            run for one class, or one per detected class of a video.
        seconds_per_snippet: duration of one snippet; snippet ``t`` covers [t, t + 1) * this.
        ground_truth: (start_s, end_s) segments of the plotted class; None when the video has no
            annotations (then no ground-truth lane is drawn).
        duration: video length in seconds (default: the longest CAS).
        title: figure title, e.g. "video_test_0000004 — HammerThrow".
        shared_scores: the rows' detection scores are on one scale (the same method); False for rows of
            methods whose scores differ in kind (W-TALC's logit sums against MAAN's CAS means): each row's
            scores are then divided by its best.

    The CAS axes have y ticks and the label "CAS"; each threshold is a dashed line at ``threshold x max``, or
    at the levels of the row's ``cut`` (another curve than the CAS, e.g. CO2-Net's attention, is drawn on a
    right-hand axis, gid ``cut_curve``, its levels dashed in its colour). A detection's colour is its score, on
    one scale for every row (or its fraction of its row's best), explained by a colour bar (gid
    ``score_colorbar``) when there are detections.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.ticker import MaxNLocator

    from wsl_video.methods.base import fractions_of_max

    rows = [row if isinstance(row, CasRow) else CasRow(*row) for row in rows]
    if not rows:
        raise ValueError("a CAS figure needs at least one row")
    if not seconds_per_snippet > 0:
        raise ValueError(f"seconds_per_snippet must be positive, got {seconds_per_snippet}")
    length = max(len(row.cas) for row in rows)
    duration = float(duration) if duration else length * seconds_per_snippet
    if not shared_scores:
        rows = [row._replace(detections=_relative_to_best(row.detections)) for row in rows]
    scores = [float(score) for row in rows for _, _, score in row.detections]
    top = max(scores, default=1.0)
    score_norm = Normalize(vmin=min(0.0, min(scores, default=0.0)), vmax=top if top > 0 else 1.0)
    colormap = _score_colormap()
    height = 0.9 + 1.7 * len(rows)
    figure = plt.figure(figsize=(10, height))
    cuts = [row.cut or (fractions_of_max(row.cas, row.thresholds) if len(row.thresholds) else None) for row in rows]
    twin = any(cut is not None and cut.name != "CAS" for cut in cuts)  # a right-hand axis needs room
    right = (0.89 if scores else 0.98) - (0.05 if twin else 0.0)
    outer = figure.add_gridspec(len(rows), 1, hspace=0.42, left=0.11, right=right, top=1 - 0.55 / height,
                                bottom=0.5 / height)
    axes, first = [], None
    for index in range(len(rows)):
        inner = outer[index].subgridspec(2, 1, hspace=0.06,
                                         height_ratios=[0.55 if ground_truth is not None else 0.3, 1.0])
        for part in range(2):
            axes.append(figure.add_subplot(inner[part], sharex=first))
            first = first or axes[-1]
    for axis in axes[:-1]:
        axis.tick_params(axis="x", labelbottom=False)
    for index, row in enumerate(rows):
        strip, axis = axes[2 * index], axes[2 * index + 1]
        strip.set_gid("segments")
        axis.set_gid("cas")
        _segment_strip(strip, ground_truth, sorted(row.detections), duration, score_norm, colormap)
        strip.set_title(row.label, loc="left", fontsize=9, pad=3)
        cas = np.asarray(row.cas, dtype=np.float64)
        times = (np.arange(len(cas)) + 0.5) * seconds_per_snippet
        for start, end in ground_truth or ():
            axis.axvspan(start, end, color=_GT_COLOR, alpha=0.12, linewidth=0)
        axis.fill_between(times, cas, color=_CAS_COLOR, alpha=0.3, linewidth=0)
        axis.plot(times, cas, color=_CAS_COLOR, linewidth=1.0)
        cut = cuts[index]
        on_cas = cut is not None and cut.name == "CAS"
        _set_value_limits(axis, cas, cut.levels if on_cas else ())
        axis.yaxis.set_major_locator(MaxNLocator(nbins=3, min_n_ticks=2))
        axis.tick_params(axis="y", labelsize=8)
        axis.set_ylabel("CAS", fontsize=9)
        if cut is None:
            continue
        target, color = axis, _LEVEL_COLOR
        if not on_cas:  # another curve: its own axis at the right, in its own colour
            target, color = axis.twinx(), _CUT_COLOR
            target.set_gid("cut_curve")
            values = np.asarray(cut.values, dtype=np.float64)
            target.plot((np.arange(len(values)) + 0.5) * seconds_per_snippet, values, color=color, linewidth=1.0)
            _set_value_limits(target, values, cut.levels)
            target.yaxis.set_major_locator(MaxNLocator(nbins=3, min_n_ticks=2))
            target.tick_params(axis="y", labelsize=8, colors=color)
            target.set_ylabel(cut.name, fontsize=9, color=color)
        for level in cut.levels:
            target.axhline(level, color=color, linestyle="--", linewidth=0.9)
        settings = [float(value) for value in cut.settings]
        text = (", ".join(f"{value:.3g}" for value in settings) if len(settings) <= 4 else
                f"{len(settings)} levels from {min(settings):.3g} to {max(settings):.3g}")
        described = f"{cut.name} cut at {cut.rule.format(text)}"
        if not len(cut.levels):  # the shared rule on a CAS whose maximum is not positive: no proposals
            described += ": no level" + (", its maximum is ≤ 0" if cut.rule == "{} × max" else "")
        strip.set_title(f"dashed: {described}" if len(cut.levels) else described, loc="right", fontsize=8, pad=3,
                        color=color)
    axes[-1].set_xlim(0, duration)
    axes[-1].set_xlabel("time (s)")
    if scores:
        bar_axis = figure.add_axes([0.915, 0.5 / height, 0.014, 1 - 1.05 / height])
        bar = figure.colorbar(ScalarMappable(norm=score_norm, cmap=colormap), cax=bar_axis)
        bar.set_label("detection score (segment colour)" if shared_scores else
                      "detection score / its row's best (segment colour)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
        bar_axis.set_gid("score_colorbar")
    if title:
        figure.suptitle(title, y=1 - 0.15 / height)
    return figure


def _relative_to_best(detections: Sequence[Tuple[float, float, float]]) -> list:
    """The detections with each score divided by the best one's (unchanged when the best is not positive)."""
    best = max((float(score) for _, _, score in detections), default=0.0)
    scale = best if best > 0 else 1.0
    return [(start, end, float(score) / scale) for start, end, score in detections]


def _set_value_limits(axis, values: np.ndarray, levels: Sequence[float]) -> None:
    """y range: 0 (or the lowest value, when negative) to just above the highest value or level."""
    values = np.asarray(values, dtype=np.float64)
    points = np.concatenate([values.reshape(-1), np.asarray(levels, dtype=np.float64), [0.0]])
    low, high = float(points.min()), float(points.max())
    if high <= low:
        high = low + 1.0
    margin = 0.08 * (high - low)
    axis.set_ylim(low - margin if low < 0 else 0.0, high + margin)


def plot_cas(path: str | Path, rows: Sequence[CasRow | Tuple], seconds_per_snippet: float, *,
             ground_truth: Sequence[Tuple[float, float]] | None = None, duration: float | None = None,
             title: str = "", shared_scores: bool = True) -> None:
    """Save :func:`cas_figure` as a PNG, atomically (same arguments)."""
    import matplotlib.pyplot as plt

    figure = cas_figure(rows, seconds_per_snippet, ground_truth=ground_truth, duration=duration, title=title,
                        shared_scores=shared_scores)
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
    """CAS of one video for every run (Fig. 5 style), with each run's detections of the class and what its
    method cuts, at which levels (:meth:`~wsl_video.methods.VideoMethod.cut_curve`); returns the plotted
    class name.

    The class defaults to the video's first ground-truth class, or to the first run's most probable
    class when the video has no action. Runs of different methods get each row's detection scores as
    fractions of its best (their scores differ in kind); runs of one method share one scale.
    """
    from wsl.utils.runs import recorded_path
    from wsl_video.data.opening import open_data
    from wsl_video.inference import predict_video
    from wsl_video.methods import get_method
    from wsl_video.run import check_run_classes, load_run

    if not run_dirs:
        raise ValueError("plot needs at least one run directory")
    datasets: dict = {}
    rows, video, chosen, methods = [], None, class_name, set()
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
        class_id = classes.index(chosen)
        method = get_method(config.model.method)
        methods.add(config.model.method)
        detections = [(start, end, score) for c, start, end, score in
                      method.localize(prediction, video.seconds_per_snippet, config.inference, video.duration)
                      if c == class_id]
        rows.append(CasRow(label, prediction.cas[:, class_id], detections,
                           cut=method.cut_curve(prediction, class_id, config.inference)))
    segments = [(start, end) for start, end, label in video.annotations if label == chosen]
    plot_cas(path, rows, video.seconds_per_snippet, ground_truth=segments, duration=video.duration,
             title=f"{video_name} — {chosen}", shared_scores=len(methods) == 1)
    return chosen


def _run_labels(run_dirs: Sequence[str | Path]) -> list:
    """A label per run: its pooling, or ``method + pooling`` where a run trained another method than MAAN;
    where two runs would share a label, the shortest trailing part of their paths that tells them apart
    (``maa/seed0``)."""
    from wsl_video.config import load_config
    from wsl_video.run import CONFIG_FILE

    models = []
    for run_dir in run_dirs:
        config_path = Path(run_dir) / CONFIG_FILE
        models.append(load_config(config_path).model if config_path.is_file() else None)
    methods = {model.method for model in models if model is not None}
    labels = []
    for run_dir, model in zip(run_dirs, models):
        if model is None:
            labels.append(Path(run_dir).name)
            continue
        aggregator = model.aggregator or "maa"  # runs write the resolved config; older ones meant maa
        labels.append(aggregator if methods == {"maan"} else f"{model.method} + {aggregator}")
    if len(set(labels)) < len(labels):
        labels = distinct_path_labels(run_dirs)
    return labels


def distinct_path_labels(paths: Sequence[str | Path]) -> list:
    """The shortest trailing parts of ``paths`` (as many components for each) that differ from one another:
    ``a/maa/seed0, a/topk_mean/seed0`` -> ``maa/seed0, topk_mean/seed0``; the same path given twice gets
    ``(1)``, ``(2)``."""
    parts = [Path(path).parts or (str(path),) for path in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = [Path(*p[-depth:]).as_posix() for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    labels = [Path(*p).as_posix() for p in parts]
    return [f"{label} ({labels[:i].count(label) + 1})" if labels.count(label) > 1 else label
            for i, label in enumerate(labels)]
