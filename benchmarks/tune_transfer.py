"""Tuned settings against the defaults on features the project has never seen.

Writes THUMOS14-timeline features from the simulator with another seed and another distribution
(``--sim`` overrides) in the BaS-Net layout, keeps a few training videos per class (a small training
set, as a new user has; all 212 test videos), and makes a copy without any test file or test
annotation. For every aggregator, ``wsl-video tune`` chooses the settings on videos held out from the
training subset of that copy (it never sees the test split), then both the default recipe and
``train --config best.yaml`` train on all training videos and are tested, over several seeds.

    OMP_NUM_THREADS=1 python benchmarks/tune_transfer.py --out tune_transfer --jobs 2

Writes ``<out>/results.json`` and ``<out>/table.md`` (held-out and test average mAP@0.1:0.7, in %).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages first

AGGREGATORS = ("maa", "weighted_sum", "dropout", "norm", "softmax_norm")
SIM = ["feature_dim=128", "class_dims=12", "strong_fraction=0.3", "strong_level=1.2", "weak_level=0.5",
       "noise=[0.6, 0.9]", "scene_level=0.5", "offset=-0.8", "context_level=[1.2, 0.4]"]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tune_transfer", help="output folder (default tune_transfer)")
    parser.add_argument("--aggregators", nargs="+", default=list(AGGREGATORS))
    parser.add_argument("--per-class", type=int, default=3,
                        help="training videos kept per class (default 3: 60 videos for the 20 classes)")
    parser.add_argument("--videos", type=int, default=None,
                        help="write only the first N videos of each subset (default: all; for quick runs)")
    parser.add_argument("--data-seed", type=int, default=7, help="simulator seed (default 7; the demo's is 0)")
    parser.add_argument("--sim", action="append", default=None, metavar="KEY=VALUE",
                        help=f"simulator overrides (default: {' '.join(SIM)})")
    parser.add_argument("--trials", type=int, default=20, help="tune trials per aggregator (default 20)")
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=[0, 1], help="tune seeds (default 0 1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="test seeds (default 0 1 2)")
    parser.add_argument("--jobs", type=int, default=1, help="tune processes (default 1)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 40 iterations for the defaults, a tune space of 20 and 40 iterations")
    return parser.parse_args(argv)


def keep_per_class(root: Path, per_class: int) -> int:
    """Keep the first ``per_class`` training videos (by name) of every class in a BaS-layout root; the
    other training videos leave ``gt.json``, ``split_train.txt`` and ``features/train``. Returns the count."""
    gt = json.loads((root / "gt.json").read_text())
    database = gt["database"]
    train = sorted(name for name, entry in database.items() if entry["subset"] != "test")
    labels = {name: {a["label"] for a in database[name]["annotations"]} for name in train}
    kept: list = []
    for label in sorted({label for names in labels.values() for label in names}):
        have = sum(label in labels[name] for name in kept)
        for name in train:
            if have >= per_class:
                break
            if label in labels[name] and name not in kept:
                kept.append(name)
                have += 1
    dropped = [name for name in train if name not in kept]
    for name in dropped:
        del database[name]
        for stream in ("rgb", "flow"):
            (root / "features" / "train" / stream / f"{name}.npy").unlink(missing_ok=True)
    (root / "gt.json").write_text(json.dumps(gt))
    split = root / "split_train.txt"
    if split.is_file():
        split.write_text("".join(f"{name}\n" for name in split.read_text().split() if name in kept))
    return len(kept)


def strip_test(root: Path, dest: Path) -> Path:
    """A copy of a BaS-layout root without the test features, test annotations and test lists."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(root, dest, ignore=shutil.ignore_patterns("test", "split_test.txt", "Ambiguous_test.txt"))
    gt = json.loads((root / "gt.json").read_text())
    gt["database"] = {name: entry for name, entry in gt["database"].items() if entry["subset"] != "test"}
    (dest / "gt.json").write_text(json.dumps(gt))
    return dest


def summarize(values):
    import numpy as np

    values = 100 * np.asarray(values, dtype=float)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "values": values.tolist()}


def main(argv=None) -> int:
    import torch

    from wsl.utils.io import atomic_write_json, atomic_write_text
    from wsl_video.cli import main as wsl_video
    from wsl_video.config import RunConfig, load_config
    from wsl_video.training import train
    from wsl_video.tune import tune

    torch.set_num_threads(1)
    args = parse_args(argv)
    out = Path(args.out)
    data, train_only = out / "data", out / "data-train-only"
    sim = args.sim if args.sim is not None else SIM
    tic = time.time()
    if not (data / "gt.json").is_file():
        argv = ["make-sim", "--layout", "bas", "--seed", str(args.data_seed), "--out", str(data), "--overwrite"]
        argv += ["--videos", str(args.videos)] if args.videos else []
        if wsl_video(argv + [item for value in sim for item in ("--sim", value)]) != 0:
            return 1
        print(f"kept {keep_per_class(data, args.per_class)} training videos ({args.per_class} per class)")
    strip_test(data, train_only)
    space = None
    if args.quick:
        space = out / "quick_space.yaml"
        atomic_write_text(space, "iterations: {choices: [20, 40]}\nbatch_size: 4\n")
    results = {"data": {"seed": args.data_seed, "per_class": args.per_class, "videos": args.videos, "sim": sim},
               "aggregators": {}}
    for aggregator in args.aggregators:
        base = RunConfig()
        base.data.dataset, base.data.data_root, base.data.layout = "thumos14", str(train_only), "bas"
        base.model.aggregator = aggregator
        base.train.device = "cpu"
        if args.quick:
            base.train.iterations, base.train.batch_size = 40, 4
        summary = tune(base, out / "tune" / aggregator, seeds=args.tune_seeds, trials=args.trials, jobs=args.jobs,
                       baseline=True, echo=print, space_file=space, overwrite=True)
        row = {"held_out_default": summary["baseline"]["score"] * 100, "held_out_tuned": summary["best_score"] * 100,
               "settings": summary["best_settings"]}
        for name in ("default", "tuned"):
            scores = []
            for seed in args.seeds:
                run = load_config(out / "tune" / aggregator / "best.yaml") if name == "tuned" else RunConfig()
                if name == "default":
                    run.data.dataset, run.model.aggregator, run.data.layout = "thumos14", aggregator, "bas"
                    if args.quick:
                        run.train.iterations, run.train.batch_size = 40, 4
                run.data.data_root = str(data)  # the full data: the test subset is read here, once
                run.train.seed = seed
                run.train.device = "cpu"
                metrics = train(run.resolved(), out / "runs" / aggregator / f"{name}-seed{seed}", overwrite=True,
                                progress=False)
                scores.append(metrics["average_mAP_0.1_0.7"])
            row[f"test_{name}"] = summarize(scores)
        results["aggregators"][aggregator] = row
        print(f"{aggregator}: held-out {row['held_out_default']:.1f} -> {row['held_out_tuned']:.1f}, test "
              f"{row['test_default']['mean']:.1f} -> {row['test_tuned']['mean']:.1f} ({time.time() - tic:.0f} s)",
              flush=True)
        atomic_write_json(out / "results.json", results)
    lines = ["| aggregator | held-out, defaults | held-out, tuned | test, defaults | test, tuned |",
             "|---|---|---|---|---|"]
    for aggregator, row in results["aggregators"].items():
        lines.append(f"| {aggregator} | {row['held_out_default']:.1f} | {row['held_out_tuned']:.1f} | "
                     f"{row['test_default']['mean']:.1f} ± {row['test_default']['std']:.1f} | "
                     f"{row['test_tuned']['mean']:.1f} ± {row['test_tuned']['std']:.1f} |")
    atomic_write_text(out / "table.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"{time.time() - tic:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
