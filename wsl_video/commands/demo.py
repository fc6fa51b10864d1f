"""``wsl-video demo``: MAAN against the paper's baseline aggregators on simulated THUMOS14 (Table 1).

Each aggregator trains with its own iterations, weight decay and attention L1 weight, selected on
videos held out from the training subset (never on the test split); see ``docs/video-demo.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "train MAAN and the paper's baselines on thumos14-sim and print a Table-1-style comparison"

AGGREGATORS = ("maa", "weighted_sum", "dropout", "norm", "softmax_norm")
LABELS = {"maa": "MAAN", "weighted_sum": "STPN", "dropout": "Dropout", "norm": "Norm",
          "softmax_norm": "SoftMaxNorm"}
DEMO_BATCH_SIZE = 16
DEMO_PLOTS = 3
# Settings of every aggregator, selected WITHOUT the test split by benchmarks/video_demo_selection.py
# (160 fit / 40 held-out training videos, split seed 0; the same grid for every aggregator: weight
# decay {0, 1e-3, 1e-2} x attention L1 weight {0, 0.02, 0.2} x iterations {500, 1000, 2000, 3000};
# best average mAP@0.1:0.7 on the 40 held-out videos, averaged over training seeds 0 and 1; results
# in benchmarks/results/video_demo_*.json, see docs/video-demo.md):
#     OMP_NUM_THREADS=1 python benchmarks/video_demo_selection.py --seeds 0 1 --jobs 2 --out demo_selection
SELECTED = {  # trailing comment: held-out avg mAP@0.1:0.7 (%) of the selected setting
    "maa": {"iterations": 1000, "weight_decay": 1e-2, "sparsity": 0.02},  # 27.7
    "weighted_sum": {"iterations": 2000, "weight_decay": 1e-2, "sparsity": 0.2},  # 37.5
    "dropout": {"iterations": 3000, "weight_decay": 1e-2, "sparsity": 0.2},  # 41.0
    "norm": {"iterations": 1000, "weight_decay": 1e-2, "sparsity": 0.0},  # 13.8
    "softmax_norm": {"iterations": 2000, "weight_decay": 1e-2, "sparsity": 0.0},  # 31.6
}
FALLBACK = {"iterations": 3000, "weight_decay": 0.0, "sparsity": 0.0}  # aggregators outside the selection


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (default 0)")
    parser.add_argument("--aggregators", nargs="+", default=list(AGGREGATORS),
                        help=f"aggregators to compare (default {' '.join(AGGREGATORS)})")
    parser.add_argument("--iterations", type=int, default=None,
                        help="training iterations per run (default: the selected value of each aggregator)")
    parser.add_argument("--batch-size", type=int, default=DEMO_BATCH_SIZE,
                        help=f"videos per batch (default {DEMO_BATCH_SIZE})")
    parser.add_argument("--sparsity", type=float, default=None,
                        help="attention L1 weight (default: the selected value of each aggregator)")
    parser.add_argument("--weight-decay", type=float, default=None,
                        help="Adam weight decay (default: the selected value of each aggregator)")
    parser.add_argument("--sim", action="append", default=[], metavar="KEY=VALUE",
                        help="thumos14-sim simulator override (repeatable)")
    parser.add_argument("--plots", type=int, default=DEMO_PLOTS,
                        help=f"test videos to plot (default {DEMO_PLOTS})")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, ...")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def demo_settings(aggregator: str, args: argparse.Namespace) -> dict:
    """Iterations, weight decay and attention L1 weight of ``aggregator``: the selected ones unless given."""
    settings = dict(SELECTED.get(aggregator, FALLBACK))
    for key in ("iterations", "weight_decay", "sparsity"):
        if getattr(args, key, None) is not None:
            settings[key] = getattr(args, key)
    return settings


def demo_config(aggregator: str, seed: int, args: argparse.Namespace):
    """The demo's run configuration: the paper's recipe on thumos14-sim with the selected settings."""
    from wsl_video.commands.train import parse_overrides
    from wsl_video.config import RunConfig

    config = RunConfig()
    config.data.dataset = "thumos14-sim"
    config.data.sim = parse_overrides(args.sim)
    config.model.aggregator = aggregator
    settings = demo_settings(aggregator, args)
    config.train.iterations = settings["iterations"]
    config.train.weight_decay = settings["weight_decay"]
    config.train.sparsity_weight = settings["sparsity"]
    config.train.batch_size = args.batch_size
    config.train.seed = seed
    config.train.device = args.device
    config.train.log_every = max(1, settings["iterations"] // 10)
    config.train.checkpoint_every = settings["iterations"]
    return config.resolved()


def run(args: argparse.Namespace) -> int:
    import time

    import wsl
    from wsl.utils.io import atomic_write_json, atomic_write_text
    from wsl_video.plot import format_metrics_table, plot_runs, summarize_runs
    from wsl_video.train import jsonable, open_data, train

    known = set(wsl.list_aggregators())
    for name in args.aggregators:
        if name not in known:
            raise ValueError(f"unknown aggregator {name!r}; available: {', '.join(sorted(known))}")
    if (args.iterations is not None and args.iterations <= 0) or args.batch_size <= 0:
        raise ValueError("--iterations and --batch-size must be positive")
    out = Path(args.out)
    tic = time.time()
    data_config = demo_config(args.aggregators[0], args.seeds[0], args)  # the same data for every run
    train_set, test_set = open_data(data_config, "train"), open_data(data_config, "test")
    per_aggregator = {}
    for aggregator in args.aggregators:
        runs = {}
        for seed in args.seeds:
            config = demo_config(aggregator, seed, args)
            run_dir = out / "runs" / aggregator / f"seed{seed}"
            runs[seed] = train(config, run_dir, overwrite=True, progress=not args.quiet, train_set=train_set,
                               test_set=test_set)  # the demo's own run folders: replaced on a rerun
            print(f"{LABELS.get(aggregator, aggregator):>12} seed {seed}: "
                  f"avg mAP(0.1:0.7) {100 * runs[seed].get('average_mAP_0.1_0.7', float('nan')):.1f}, "
                  f"Cls mAP {100 * runs[seed]['cls_mAP']:.1f} ({time.time() - tic:.0f} s)", flush=True)
        per_aggregator[aggregator] = runs
    if len(args.seeds) == 1:
        summary = {name: runs[args.seeds[0]] for name, runs in per_aggregator.items()}
    else:
        summary = {
            name: {**summarize_runs(list(runs.values())), "per_seed": {str(s): m for s, m in runs.items()}}
            for name, runs in per_aggregator.items()
        }
    settings = {name: demo_settings(name, args) for name in per_aggregator}
    units = "fractions in [0, 1] (AP, mAP, Cls mAP, as in metrics.json); table.md prints percent"
    atomic_write_json(out / "summary.json", jsonable({"units": units, **{name: {**metrics, "settings": settings[name]}
                                                                         for name, metrics in summary.items()}}))
    table = format_metrics_table({LABELS.get(name, name): metrics for name, metrics in summary.items()})
    atomic_write_text(out / "table.md", table + "\n")

    if args.plots > 0:
        seed = args.seeds[0]
        run_dirs = [out / "runs" / name / f"seed{seed}" for name in args.aggregators]
        videos = [video.name for video in test_set.videos if video.annotations][: args.plots]
        labels = [LABELS.get(name, name) for name in args.aggregators]
        for video in videos:
            plot_runs(run_dirs, video, out / "plots" / f"{video}.png", labels=labels)
    print(table)
    print(f"wrote {out / 'summary.json'} and {out / 'table.md'}; runs in {out / 'runs'}, "
          f"CAS plots in {out / 'plots'} ({time.time() - tic:.0f} s)")
    return 0
