"""Speed of the detection evaluator at ActivityNet scale.

Generates a synthetic ActivityNet-sized evaluation (5,000 videos, 200 classes, 100,000
predictions by default; ten tIoU thresholds 0.5:0.05:0.95), then times, in the same run:

* the vectorised :func:`wsl.metrics.detection_map`,
* the loop-based :func:`wsl.metrics.reference.detection_map_reference` (checked to agree),
* the whole ``wsl-video evaluate`` command in a fresh process (JSON loading included),

and prints them as a markdown table (the one in docs/video-evaluation.md).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/evaluation.py [--videos 5000] [--classes 200]
        [--predictions-per-video 20] [--skip-reference] [--output timings.json]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wsl.metrics import detection_map  # noqa: E402
from wsl.metrics.detection import ACTIVITYNET_TIOU_THRESHOLDS  # noqa: E402
from wsl.metrics.reference import detection_map_reference  # noqa: E402
from wsl.utils.io import atomic_write_json  # noqa: E402
from wsl_video.detections import write_detections  # noqa: E402


def synthetic_activitynet(videos: int, classes: int, per_video: int, seed: int = 0) -> tuple[dict, dict]:
    """Ground truth and predictions shaped like ActivityNet 1.3 validation.

    Each video has 1-3 segments of one or two classes; predictions are jittered copies of the
    ground truth, segments of other classes and random segments, with random scores.
    """
    rng = np.random.default_rng(seed)
    labels = [f"class_{k:03d}" for k in range(classes)]
    database, results = {}, {}
    for v in range(videos):
        video = f"v_{v:06d}"
        duration = float(rng.uniform(30, 240))
        video_classes = rng.choice(classes, size=int(rng.integers(1, 3)), replace=False)
        annotations = []
        for _ in range(int(rng.integers(1, 4))):
            length = float(rng.uniform(0.05, 0.6)) * duration
            start = float(rng.uniform(0, duration - length))
            label = labels[int(rng.choice(video_classes))]
            annotations.append({"segment": [round(start, 2), round(start + length, 2)], "label": label})
        database[video] = {"subset": "validation", "duration": round(duration, 2), "annotations": annotations}
        entries = []
        for _ in range(per_video):
            kind = rng.random()
            if kind < 0.6:
                base = annotations[int(rng.integers(len(annotations)))]
                start, end = base["segment"]
                jitter = 0.2 * (end - start)
                start = max(0.0, start + float(rng.normal(0, jitter)))
                end = max(start + 0.1, end + float(rng.normal(0, jitter)))
                label = base["label"] if rng.random() < 0.8 else labels[int(rng.integers(classes))]
            else:
                start = float(rng.uniform(0, duration * 0.9))
                end = start + float(rng.uniform(1.0, duration - start))
                label = labels[int(rng.integers(classes))]
            entries.append({"label": label, "segment": [round(start, 2), round(end, 2)], "score": float(rng.random())})
        results[video] = entries
    return {"version": "synthetic ActivityNet-scale", "database": database}, results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=5000)
    parser.add_argument("--classes", type=int, default=200)
    parser.add_argument("--predictions-per-video", type=int, default=20)
    parser.add_argument("--skip-reference", action="store_true", help="do not time the slow reference")
    parser.add_argument("--output", default=None, help="write the timings as JSON")
    args = parser.parse_args(argv)

    ground_truth, results = synthetic_activitynet(args.videos, args.classes, args.predictions_per_video)
    predictions = {"results": results}
    thresholds = list(ACTIVITYNET_TIOU_THRESHOLDS)
    num_predictions = sum(len(v) for v in results.values())
    print(
        f"{args.videos} videos, {args.classes} classes, {num_predictions} predictions, "
        f"{len(thresholds)} tIoU thresholds"
    )
    timings = {"videos": args.videos, "classes": args.classes, "predictions": num_predictions}

    start = time.perf_counter()
    fast = detection_map(ground_truth, predictions, thresholds, subset="validation")
    timings["vectorised_s"] = time.perf_counter() - start
    print(f"vectorised detection_map: {timings['vectorised_s']:.2f} s  (average mAP {100 * fast['average_mAP']:.2f})")

    if not args.skip_reference:
        start = time.perf_counter()
        slow = detection_map_reference(ground_truth, predictions, thresholds, subset="validation")
        timings["reference_s"] = time.perf_counter() - start
        timings["speedup"] = timings["reference_s"] / timings["vectorised_s"]
        difference = float(np.max(np.abs(np.asarray(fast["mAP"]) - np.asarray(slow["mAP"]))))
        timings["max_abs_difference"] = difference
        print(
            f"reference (loops):        {timings['reference_s']:.2f} s  "
            f"-> {timings['speedup']:.0f}x faster, max |mAP difference| {difference:.1e}"
        )

    with tempfile.TemporaryDirectory() as folder:
        gt_path, pred_path = Path(folder, "gt.json"), Path(folder, "pred.json")
        atomic_write_json(gt_path, ground_truth, indent=None)
        write_detections(pred_path, results)
        command = [sys.executable, "-m", "wsl_video", "evaluate", "--ground-truth", str(gt_path)]
        command += ["--predictions", str(pred_path), "--out", str(Path(folder, "metrics.json"))]
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        start = time.perf_counter()
        completed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        timings["command_s"] = time.perf_counter() - start
        if completed.returncode != 0:
            print(completed.stderr, file=sys.stderr)
            return completed.returncode
        print(f"whole `wsl-video evaluate` command: {timings['command_s']:.2f} s")

    rows = [("`detection_map` (vectorised)", f"{timings['vectorised_s']:.2f} s")]
    if "reference_s" in timings:
        rows.append(("`detection_map_reference` (loops)", f"{timings['reference_s']:.1f} s ({timings['speedup']:.0f}x "
                     f"slower; results agree to {timings['max_abs_difference']:.0e})"))
    rows.append(("whole `wsl-video evaluate` command (start-up, JSON reading, evaluation, table)",
                 f"{timings['command_s']:.1f} s"))
    print("\n| | time |\n| --- | --- |\n" + "\n".join(f"| {name} | {value} |" for name, value in rows))
    if args.output:
        atomic_write_json(args.output, timings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
