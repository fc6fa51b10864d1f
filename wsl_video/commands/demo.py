"""``wsl-video demo``: MAAN against the paper's baseline aggregators on simulated THUMOS14 (Table 1).

Each aggregator trains with its own settings, chosen by ``wsl-video tune`` on videos held out from the
training subset (never on the test split): the ``best.yaml`` files in ``wsl_video/resources/demo/``, or
a live selection with ``--tune``; see ``docs/video-demo.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "train MAAN and the paper's baselines on thumos14-sim and print a Table-1-style comparison"
REQUIRES = ("matplotlib",)  # optional modules, checked before the command runs

AGGREGATORS = ("maa", "weighted_sum", "dropout", "norm", "softmax_norm")
LABELS = {"maa": "MAAN", "weighted_sum": "STPN", "dropout": "Dropout", "norm": "Norm",
          "softmax_norm": "SoftMaxNorm"}
DEMO_BATCH_SIZE = 16
DEMO_PLOTS = 3
# The protocol of the stored settings (resources/demo/<aggregator>.yaml: 40 of the 200 training videos
# held out, stratified by class, split seed 0; the search space resources/demo/space.yaml), regenerated with
#     OMP_NUM_THREADS=1 wsl-video demo --tune --jobs 2 --seeds 0 1 2 --save-settings wsl_video/resources/demo
TUNE_TRIALS = 24
TUNE_SEEDS = (0, 1)
FALLBACK = {"iterations": 3000, "weight_decay": 0.0, "sparsity": 0.0}  # aggregators without stored settings


def settings_folder() -> Path:
    """The packaged settings: one ``best.yaml`` of ``wsl-video tune`` per aggregator, and the demo's space."""
    from importlib import resources

    return Path(str(resources.files("wsl_video") / "resources" / "demo"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from wsl.tuning.cli import add_demo_settings_arguments

    parser.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (default 0)")
    parser.add_argument("--aggregators", nargs="+", default=list(AGGREGATORS),
                        help=f"aggregators to compare (default {' '.join(AGGREGATORS)})")
    parser.add_argument("--iterations", type=int, default=None,
                        help="training iterations per run (default: the tuned value of each aggregator)")
    parser.add_argument("--batch-size", type=int, default=DEMO_BATCH_SIZE,
                        help=f"videos per batch (default {DEMO_BATCH_SIZE})")
    parser.add_argument("--sparsity", type=float, default=None,
                        help="attention L1 weight (default: the tuned value of each aggregator)")
    parser.add_argument("--weight-decay", type=float, default=None,
                        help="Adam weight decay (default: the tuned value of each aggregator)")
    parser.add_argument("--sim", action="append", default=[], metavar="KEY=VALUE",
                        help="thumos14-sim simulator override (repeatable)")
    parser.add_argument("--plots", type=int, default=DEMO_PLOTS,
                        help=f"test videos to plot (default {DEMO_PLOTS})")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, ...")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_demo_settings_arguments(parser, "wsl-video", "aggregator", TUNE_TRIALS, TUNE_SEEDS,
                                "wsl_video/resources/demo")


def stored_settings(aggregator: str, folder: str | Path | None = None):
    """The tuned config of ``aggregator`` (``folder/<aggregator>.yaml``), or None when there is none."""
    from wsl_video.config import load_config

    path = Path(folder or settings_folder()) / f"{aggregator}.yaml"
    return load_config(path) if path.is_file() else None


def demo_settings(aggregator: str, args: argparse.Namespace) -> dict:
    """Iterations, weight decay and attention L1 weight of ``aggregator``: the tuned ones unless given."""
    stored = stored_settings(aggregator, getattr(args, "settings", None))
    settings = dict(FALLBACK) if stored is None else {
        "iterations": stored.train.iterations, "weight_decay": float(stored.train.weight_decay),
        "sparsity": float(stored.resolved().train.sparsity_weight)}
    for key in ("iterations", "weight_decay", "sparsity"):
        if getattr(args, key, None) is not None:
            settings[key] = getattr(args, key)
    return settings


def demo_config(aggregator: str, seed: int, args: argparse.Namespace):
    """The demo's run configuration: the paper's recipe on thumos14-sim with the tuned settings."""
    from wsl_video.commands.train import parse_overrides
    from wsl_video.config import RunConfig

    stored = stored_settings(aggregator, getattr(args, "settings", None))
    config = RunConfig() if stored is None else stored
    config.data.dataset = "thumos14-sim"
    config.data.data_root = None
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


def tune_settings(args: argparse.Namespace) -> Path:
    """``--tune``: run ``wsl-video tune`` for every aggregator; returns the folder of the chosen settings."""
    import shutil

    from wsl_video.commands.train import parse_overrides
    from wsl_video.config import RunConfig
    from wsl_video.tune import tune

    out = Path(args.out) / "tune"
    chosen = out / "settings"
    for aggregator in args.aggregators:
        config = RunConfig()
        config.data.dataset = "thumos14-sim"
        config.data.sim = parse_overrides(args.sim)
        config.model.aggregator = aggregator
        config.train.batch_size = args.batch_size
        config.train.device = args.device
        print(f"== tune {LABELS.get(aggregator, aggregator)} ({aggregator})", flush=True)
        space = args.tune_space or str(settings_folder() / "space.yaml")
        summary = tune(config, out / aggregator, seeds=args.tune_seeds, space_file=space, trials=args.trials,
                       jobs=args.jobs, echo=None if args.quiet else print)  # held out: a fifth, 40 of 200
        if summary.get("best_score") is None:
            raise ValueError(f"tune {aggregator}: no trial completed; raise --trials")
        chosen.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / aggregator / "best.yaml", chosen / f"{aggregator}.yaml")
        if args.save_settings:  # the folder as given on the command line, not this machine's absolute path
            from wsl.utils.io import atomic_write_text

            text = (out / aggregator / "best.yaml").read_text(encoding="utf-8")
            atomic_write_text(Path(args.save_settings) / f"{aggregator}.yaml",
                              text.replace(str(Path(args.out).resolve()), str(args.out)))
    return chosen


def run(args: argparse.Namespace) -> int:
    import time

    import wsl
    from wsl.utils.io import atomic_write_json, atomic_write_text, jsonable
    from wsl_video.data.opening import open_data
    from wsl_video.plot import format_metrics_table, plot_runs, summarize_runs
    from wsl_video.training import train

    known = set(wsl.list_aggregators())
    for name in args.aggregators:
        if name not in known:
            raise ValueError(f"unknown aggregator {name!r}; available: {', '.join(sorted(known))}")
    if (args.iterations is not None and args.iterations <= 0) or args.batch_size <= 0:
        raise ValueError("--iterations and --batch-size must be positive")
    if args.save_settings and not args.tune:
        raise ValueError("--save-settings needs --tune")
    if args.settings and not Path(args.settings).is_dir():
        raise FileNotFoundError(f"settings folder not found: {args.settings}")
    out = Path(args.out)
    tic = time.time()
    if args.tune:
        args.settings = str(tune_settings(args))
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
