"""``wsl-video evaluate``: detection mAP at several tIoU thresholds, plus classification mAP."""

from __future__ import annotations

import argparse

HELP = "evaluate detections (ActivityNet format) against ground truth: detection mAP and Cls mAP"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ground-truth", required=True, metavar="GT.json", help="ActivityNet-style annotations")
    parser.add_argument("--predictions", required=True, metavar="PRED.json", help="detections (ActivityNet format)")
    parser.add_argument(
        "--subset", default=None, help="subset to evaluate (default: 'test' if present, else 'validation')"
    )
    parser.add_argument(
        "--tiou-thresholds",
        default=None,
        metavar="LIST",
        help="comma-separated thresholds or start:step:stop (default: 0.1:0.1:0.9 for THUMOS14, "
        "0.5:0.05:0.95 otherwise)",
    )
    parser.add_argument(
        "--ambiguous",
        default=None,
        metavar="FILE",
        help="THUMOS14 Ambiguous_test.txt: false positives overlapping these segments are ignored",
    )
    parser.add_argument("--output", default=None, metavar="METRICS.json", help="write the metrics here (fractions)")
    parser.add_argument("--per-class", action="store_true", help="also print the AP of every class")
    parser.add_argument(
        "--ignore-unknown-labels",
        action="store_true",
        help="leave out predictions whose label no ground-truth annotation has (default: an error, as the "
        "reference evaluator), e.g. when the ground truth covers only a few videos",
    )


def parse_thresholds(text: str) -> list[float]:
    """``"0.1,0.2,0.3"`` or ``"0.1:0.1:0.9"`` (start:step:stop, stop included) -> list of floats."""
    import numpy as np

    text = text.strip()
    try:
        if ":" in text:
            start, step, stop = (float(part) for part in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            count = int(round((stop - start) / step)) + 1
            values = list(np.linspace(start, start + (count - 1) * step, count))
        else:
            values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--tiou-thresholds: cannot parse {text!r} (use 0.1,0.2,... or start:step:stop)") from None
    if not values or not all(0.0 < v <= 1.0 for v in values):
        raise ValueError(f"--tiou-thresholds: thresholds must lie in (0, 1], got {text!r}")
    return [float(v) for v in values]


def is_thumos14(ground_truth: dict) -> bool:
    """THUMOS14-style ground truth: version mentions TH14/THUMOS or video ids like ``video_test_*``."""
    version = str(ground_truth.get("version") or "").lower()
    if "th14" in version or "thumos" in version:
        return True
    return any(str(video).startswith(("video_test_", "video_validation_")) for video in ground_truth["database"])


def default_subset(ground_truth: dict) -> str | None:
    subsets = {entry.get("subset") for entry in ground_truth["database"].values()} - {None}
    if not subsets:
        return None
    return "test" if "test" in subsets else "validation"


def _table(metrics: dict, subset: str | None, per_class: bool) -> str:
    thresholds = metrics["tiou_thresholds"]
    width = 7
    scope = "all videos" if subset is None else f"subset {subset!r}"
    lines = [
        f"Detection on {scope}: {metrics['num_classes']} classes, "
        f"{metrics['num_ground_truth']} ground-truth segments, {metrics['num_predictions']} predictions",
        "tIoU      " + "".join(f"{t:>{width}.2f}" for t in thresholds),
        "mAP (%)   " + "".join(f"{100 * v:>{width}.2f}" for v in metrics["mAP"]),
    ]
    if per_class:
        for label, ap in metrics["per_class_ap"].items():
            name = label if len(label) <= 9 else label[:8] + "."
            lines.append(f"{name:<10}" + "".join(f"{100 * v:>{width}.2f}" for v in ap))
    lines.append(f"average mAP ({thresholds[0]:.2f}-{thresholds[-1]:.2f}): {100 * metrics['average_mAP']:.2f}")
    if "average_mAP_0.1_0.7" in metrics:
        lines.append(f"average mAP (0.10-0.70): {100 * metrics['average_mAP_0.1_0.7']:.2f}")
    if "classification_mAP" in metrics:
        lines.append(f"classification mAP: {100 * metrics['classification_mAP']:.2f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    # numpy and json only: no torch, so the command starts quickly.
    from wsl.metrics.classification import video_classification_map
    from wsl.metrics.detection import ACTIVITYNET_TIOU_THRESHOLDS, THUMOS14_TIOU_THRESHOLDS, detection_map
    from wsl.utils.io import atomic_write_json
    from wsl_video.data.annotations import load_ground_truth, read_ambiguous
    from wsl_video.detections import load_detections

    thresholds = parse_thresholds(args.tiou_thresholds) if args.tiou_thresholds is not None else None
    ground_truth = load_ground_truth(args.ground_truth)
    # detection_map validates every detection (messages name the video), so skip a second pass.
    results, video_scores = load_detections(args.predictions, validate=False)
    ambiguous = read_ambiguous(args.ambiguous) if args.ambiguous else None

    subset = args.subset if args.subset is not None else default_subset(ground_truth)
    if args.subset is not None:
        subsets = sorted({str(e.get("subset")) for e in ground_truth["database"].values()})
        if args.subset not in subsets:
            raise ValueError(f"{args.ground_truth}: no subset {args.subset!r} (subsets: {', '.join(subsets)})")
    if thresholds is None:
        thresholds = list(THUMOS14_TIOU_THRESHOLDS if is_thumos14(ground_truth) else ACTIVITYNET_TIOU_THRESHOLDS)

    unknown_labels = "ignore" if args.ignore_unknown_labels else "error"
    try:
        metrics = detection_map(
            ground_truth,
            {"results": results},
            thresholds,
            subset=subset,
            ambiguous=ambiguous,
            unknown_labels=unknown_labels,
        )
    except ValueError as error:
        source = args.ground_truth if str(error).startswith("no ground-truth") else args.predictions
        raise ValueError(f"{source}: {error}") from None
    if video_scores is not None:
        try:
            metrics["classification_mAP"] = video_classification_map(
                ground_truth, video_scores, subset=subset, unknown_labels=unknown_labels
            )
        except ValueError as error:
            raise ValueError(f"{args.predictions}: {error}") from None
    metrics = {
        "subset": subset,
        **metrics,
        "ground_truth": str(args.ground_truth),
        "predictions": str(args.predictions),
        "ambiguous": str(args.ambiguous) if args.ambiguous else None,
    }
    print(_table(metrics, subset, args.per_class))
    if args.output:
        atomic_write_json(args.output, metrics)
        print(f"metrics written to {args.output}")
    return 0
