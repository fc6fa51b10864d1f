"""``wsl-video demo``: MAAN against the paper's baseline aggregators on simulated THUMOS14 (Table 1).

Each aggregator trains with its own settings, chosen by ``wsl-video tune`` on videos held out from the
training subset (never on the test split): the ``best.yaml`` files in ``wsl_video/resources/demo/``, or
a live selection with ``--tune``; see ``docs/video-demo.md``. ``--methods`` adds other training methods of
the registry, each with its original pooling and with ``maa``, or with each pooling given by ``--aggregators``
(settings ``<method>/<aggregator>.yaml`` in the same folder when there are some, else the method's defaults).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, NamedTuple, Optional

from wsl.utils.cli import AliasedStore, add_device_argument, add_threads_argument, did_you_mean

HELP = "train MAAN and the paper's baselines (or other methods) on thumos14-sim and print a Table-1-style comparison"
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
DEFAULT_METHOD = "maan"
PROPOSED = "maa"  # the pooling compared with each method's original one


class DemoRow(NamedTuple):
    """One row of the demo's table: a method trained with one pooling.

    key: the row's name in summary.json and its folder under ``runs/``; label: its name in the table;
    original: the pooling is the method's own (its default aggregator).
    """

    method: str
    aggregator: str
    key: str
    label: str
    original: bool


def settings_folder() -> Path:
    """The packaged settings: one ``best.yaml`` of ``wsl-video tune`` per aggregator, and the demo's space."""
    from importlib import resources

    return Path(str(resources.files("wsl_video") / "resources" / "demo"))


def demo_space(method: str = DEFAULT_METHOD) -> Path:
    """The search space of ``method``'s rows under ``--tune``: ``<method>/space.yaml`` where one is packaged (the
    demo's space widened to contain the method's published learning rate and CAS thresholds), else ``space.yaml``."""
    own = settings_folder() / method / "space.yaml"
    return own if own.is_file() else settings_folder() / "space.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from wsl.tuning.cli import add_demo_settings_arguments

    parser.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (default 0)")
    parser.add_argument("--methods", nargs="+", default=[DEFAULT_METHOD], metavar="NAME",
                        help=f"training methods to compare (default {DEFAULT_METHOD}); each other method trains "
                             f"with its original pooling and with each of --aggregators (see wsl-video methods)")
    parser.add_argument("--aggregators", nargs="+", default=None,
                        help=f"poolings to compare: every {DEFAULT_METHOD} row, and every other method's rows beside "
                             f"its original pooling (default: {' '.join(AGGREGATORS)} for {DEFAULT_METHOD}, "
                             f"{PROPOSED} for the other methods)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="training iterations per run (default: the tuned value of each aggregator)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"videos per batch (default {DEMO_BATCH_SIZE} for {DEFAULT_METHOD}; other methods: "
                             "their tuned or default value)")
    parser.add_argument("--sparsity-weight", "--sparsity", type=float, default=None, action=AliasedStore,
                        aliases=("--sparsity",), help="attention L1 weight (default: the tuned value of each "
                        "aggregator)")
    parser.add_argument("--weight-decay", type=float, default=None,
                        help="Adam weight decay (default: the tuned value of each aggregator)")
    parser.add_argument("--sim", action="append", default=[], metavar="KEY=VALUE",
                        help="thumos14-sim simulator override (repeatable), e.g. --sim videos=50")
    parser.add_argument("--plots", type=int, default=DEMO_PLOTS,
                        help=f"test videos to plot (default {DEMO_PLOTS})")
    add_device_argument(parser)
    add_threads_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars (the results are still printed)")
    add_demo_settings_arguments(parser, "wsl-video", "aggregator", TUNE_TRIALS, TUNE_SEEDS,
                                "wsl_video/resources/demo")


def settings_path(aggregator: str, folder: str | Path | None = None, method: str = DEFAULT_METHOD) -> Path:
    """Where the tuned config of ``method`` with ``aggregator`` lives: ``folder/<aggregator>.yaml`` for
    ``maan``, ``folder/<method>/<aggregator>.yaml`` for the other methods."""
    folder = Path(folder or settings_folder())
    return folder / f"{aggregator}.yaml" if method == DEFAULT_METHOD else folder / method / f"{aggregator}.yaml"


def stored_settings(aggregator: str, folder: str | Path | None = None, method: str = DEFAULT_METHOD):
    """The tuned config of ``method`` with ``aggregator`` (see :func:`settings_path`), or None when there is none."""
    from wsl_video.config import load_config

    path = settings_path(aggregator, folder, method)
    return load_config(path) if path.is_file() else None


def default_aggregator(method: str) -> str:
    """The pooling ``method`` trains with when the run leaves ``model.aggregator`` unset (its original one)."""
    from wsl_video.config import RunConfig

    config = RunConfig()
    config.data.dataset = "thumos14-sim"
    config.model.method = method
    return config.resolved().model.aggregator


def demo_rows(methods: List[str], aggregators: Optional[List[str]] = None) -> List[DemoRow]:
    """The rows of the demo: ``maan`` with each of ``aggregators`` (default: the paper's five; keys: the
    aggregator names, as before ``--methods`` existed, when ``maan`` is the only method); every other method
    with its original pooling, then with each of ``aggregators`` (default: ``maa``; keys
    ``<method>/<aggregator>``)."""
    if methods == [DEFAULT_METHOD]:
        return [DemoRow(DEFAULT_METHOD, name, name, LABELS.get(name, name), name == PROPOSED)
                for name in aggregators or AGGREGATORS]
    rows = []
    for method in methods:
        original = default_aggregator(method)
        if method == DEFAULT_METHOD:
            names = list(aggregators or AGGREGATORS)
        else:
            names = list(dict.fromkeys([original, *(aggregators or [PROPOSED])]))
        for name in names:
            rows.append(DemoRow(method, name, f"{method}/{name}", f"{method} + {name}", name == original))
    return rows


def demo_settings(aggregator: str, args: argparse.Namespace, method: str = DEFAULT_METHOD) -> dict:
    """Iterations, weight decay and attention L1 weight of ``method`` with ``aggregator``: the tuned ones
    (for a method other than ``maan`` without tuned settings: the method's defaults) unless given."""
    stored = stored_settings(aggregator, getattr(args, "settings", None), method)
    if method != DEFAULT_METHOD:
        config = demo_config(aggregator, 0, args, method)
        return {"iterations": config.train.iterations, "weight_decay": float(config.train.weight_decay),
                "sparsity": None if config.train.sparsity_weight is None else float(config.train.sparsity_weight),
                "source": "defaults" if stored is None else "tuned"}
    settings = dict(FALLBACK) if stored is None else {
        "iterations": stored.train.iterations, "weight_decay": float(stored.train.weight_decay),
        "sparsity": float(stored.resolved().train.sparsity_weight)}
    for key in ("iterations", "weight_decay", "sparsity"):
        flag = "sparsity_weight" if key == "sparsity" else key
        if getattr(args, flag, None) is not None:
            settings[key] = getattr(args, flag)
    return settings


def demo_config(aggregator: str, seed: int, args: argparse.Namespace, method: str = DEFAULT_METHOD):
    """The demo's run configuration on thumos14-sim: for ``maan`` the paper's recipe with the tuned settings,
    for another method its tuned settings, else its defaults; settings given on the command line win."""
    from wsl_video.commands.train import parse_overrides
    from wsl_video.config import RunConfig

    stored = stored_settings(aggregator, getattr(args, "settings", None), method)
    config = RunConfig() if stored is None else stored
    config.data.dataset = "thumos14-sim"
    config.data.data_root = None
    config.data.sim = parse_overrides(args.sim)
    config.model.method = method
    config.model.aggregator = aggregator
    if method == DEFAULT_METHOD:
        settings = demo_settings(aggregator, args)
        config.train.iterations = settings["iterations"]
        config.train.weight_decay = settings["weight_decay"]
        config.train.sparsity_weight = settings["sparsity"]
        config.train.batch_size = args.batch_size or DEMO_BATCH_SIZE
    else:
        for key in ("iterations", "weight_decay", "sparsity_weight", "batch_size"):
            if getattr(args, key, None) is not None:
                setattr(config.train, key, getattr(args, key))
    config.train.seed = seed
    config.train.device = args.device
    config = config.resolved()  # the iterations may be the method's default
    config.train.log_every = max(1, config.train.iterations // 10)
    config.train.checkpoint_every = config.train.iterations
    return config


def tune_settings(args: argparse.Namespace, rows: List[DemoRow]) -> Path:
    """``--tune``: run ``wsl-video tune`` for every row; returns the folder of the chosen settings."""
    import shutil

    from wsl_video.commands.train import parse_overrides
    from wsl_video.config import RunConfig
    from wsl_video.tune import tune

    out = Path(args.out) / "tune"
    chosen = out / "settings"
    for row in rows:
        config = RunConfig()
        config.data.dataset = "thumos14-sim"
        config.data.sim = parse_overrides(args.sim)
        config.model.method = row.method
        config.model.aggregator = row.aggregator
        if row.method == DEFAULT_METHOD:
            config.train.batch_size = args.batch_size or DEMO_BATCH_SIZE
        elif args.batch_size is not None:
            config.train.batch_size = args.batch_size
        config.train.device = args.device
        name = row.aggregator if row.method == DEFAULT_METHOD else f"{row.method}/{row.aggregator}"
        print(f"== tune {row.label if row.method != DEFAULT_METHOD else LABELS.get(name, name)} ({name})", flush=True)
        space = args.tune_space or str(demo_space(row.method))
        summary = tune(config, out / name, seeds=args.tune_seeds, space_file=space, trials=args.trials,
                       jobs=args.jobs, echo=None if args.quiet else print)  # held out: a fifth, 40 of 200
        if summary.get("best_score") is None:
            raise ValueError(f"tune {name}: no trial completed; raise --trials")
        target = settings_path(row.aggregator, chosen, row.method)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / name / "best.yaml", target)
        if args.save_settings:  # the folder as given on the command line, not this machine's absolute path
            from wsl.utils.io import atomic_write_text

            text = (out / name / "best.yaml").read_text(encoding="utf-8")
            atomic_write_text(settings_path(row.aggregator, args.save_settings, row.method),
                              text.replace(str(Path(args.out).resolve()), str(args.out)))
    return chosen


def check_arguments(args: argparse.Namespace) -> None:
    """One-line ``ValueError`` / ``FileNotFoundError`` for bad options, before anything runs."""
    import wsl
    from wsl_video.methods import REGISTRY

    for name in args.methods:
        if name not in REGISTRY:
            raise REGISTRY.unknown(name)
    args.methods = list(dict.fromkeys(REGISTRY.canonical(name) for name in args.methods))
    known = set(wsl.list_aggregators())
    for name in args.aggregators or []:
        if name not in known:
            hint = did_you_mean(name, known)
            raise ValueError(f"unknown aggregator {name!r}{hint + ' ' if hint else '; '}available: "
                             f"{', '.join(sorted(known))}")
    if args.aggregators is not None:
        args.aggregators = list(dict.fromkeys(args.aggregators))
    if (args.iterations is not None and args.iterations <= 0) or (args.batch_size is not None
                                                                  and args.batch_size <= 0):
        raise ValueError("--iterations and --batch-size must be positive")
    if args.save_settings and not args.tune:
        raise ValueError("--save-settings needs --tune")
    if args.settings and not Path(args.settings).is_dir():
        raise FileNotFoundError(f"settings folder not found: {args.settings}")


def run(args: argparse.Namespace) -> int:
    import time

    from wsl.utils.io import atomic_write_json, atomic_write_text, jsonable
    from wsl_video.data.opening import open_data
    from wsl_video.plot import format_metrics_table, plot_runs, summarize_runs
    from wsl_video.training import train

    check_arguments(args)
    rows = demo_rows(args.methods, args.aggregators)
    out = Path(args.out)
    tic = time.time()
    if args.tune:
        args.settings = str(tune_settings(args, rows))
    data: dict = {}  # streams -> (train, test): the same data for every run that reads the same streams
    results = {}
    for row in rows:
        runs = {}
        for seed in args.seeds:
            config = demo_config(row.aggregator, seed, args, row.method)
            if config.data.streams not in data:
                data[config.data.streams] = (open_data(config, "train"), open_data(config, "test"))
            train_set, test_set = data[config.data.streams]
            run_dir = out / "runs" / row.key / f"seed{seed}"
            runs[seed] = train(config, run_dir, overwrite=True, progress=not args.quiet, train_set=train_set,
                               test_set=test_set)  # the demo's own run folders: replaced on a rerun
            print(f"{row.label:>12} seed {seed}: "
                  f"avg mAP(0.1:0.7) {100 * runs[seed].get('average_mAP_0.1_0.7', float('nan')):.1f}, "
                  f"Cls mAP {100 * runs[seed]['cls_mAP']:.1f} ({time.time() - tic:.0f} s)", flush=True)
        results[row.key] = runs
    if len(args.seeds) == 1:
        summary = {key: runs[args.seeds[0]] for key, runs in results.items()}
    else:
        summary = {
            key: {**summarize_runs(list(runs.values())), "per_seed": {str(s): m for s, m in runs.items()}}
            for key, runs in results.items()
        }
    settings = {row.key: demo_settings(row.aggregator, args, row.method) for row in rows}
    if args.methods != [DEFAULT_METHOD]:
        for row in rows:
            settings[row.key].setdefault("source", "tuned" if stored_settings(
                row.aggregator, getattr(args, "settings", None), row.method) is not None else "fallback")
    units = "fractions in [0, 1] (AP, mAP, Cls mAP, as in metrics.json); table.md prints percent"
    atomic_write_json(out / "summary.json", jsonable({"units": units, **{key: {**metrics, "settings": settings[key]}
                                                                         for key, metrics in summary.items()}}))
    if args.methods == [DEFAULT_METHOD]:
        table = format_metrics_table({row.label: summary[row.key] for row in rows})
    else:
        table = format_metrics_table({f"{row.label} ({'original' if row.original else 'plugged in'}, "
                                      f"{settings[row.key]['source']})": summary[row.key] for row in rows})
        table = table.replace("| Aggregator |", "| Method + pooling (settings) |", 1)
    atomic_write_text(out / "table.md", table + "\n")

    if args.plots > 0:
        seed = args.seeds[0]
        run_dirs = [out / "runs" / row.key / f"seed{seed}" for row in rows]
        test_set = next(iter(data.values()))[1]
        videos = [video.name for video in test_set.videos if video.annotations][: args.plots]
        labels = [row.label for row in rows]
        for video in videos:
            plot_runs(run_dirs, video, out / "plots" / f"{video}.png", labels=labels)
    print(table)
    print(f"wrote {out / 'summary.json'} and {out / 'table.md'}; runs in {out / 'runs'}, "
          f"CAS plots in {out / 'plots'} ({time.time() - tic:.0f} s)")
    return 0
