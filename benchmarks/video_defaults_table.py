"""Every video method at its published defaults (untuned) on a simulated distribution, over training seeds.

For each method, its original pooling and ``maa`` (or ``--aggregators``), and each seed, this runs

    wsl-video train --dataset thumos14-sim --method M --aggregator A --seed S --threads T --out OUT/M-A-sS

(plus ``--sim preset=P`` for ``--distribution P``, a preset of the simulator such as ``shifted``) with nothing
chosen: the method's own batch, snippets, learning rate, weight decay, iterations and
inference, evaluated on the 212 test videos. Runs already finished in ``OUT`` (their ``metrics.json``
written) are kept, so the table can be built over several sittings; an unfinished run folder stops the
script with its name (continue it with ``wsl-video train --resume --out ...``). ``OUT/table.md`` then
names the runs' simulated data on its first line, then holds one row per method x pooling over *every*
finished run in ``OUT``: mean ± sample std over its seeds, in percent, with the seeds and the median
training time. One ``OUT`` holds one distribution: runs whose recorded simulator options differ from the
others' (or from ``--distribution``) stop the script.

    OMP_NUM_THREADS=1 python benchmarks/video_defaults_table.py --methods delu --seeds 0 1 2 --jobs 2 \\
        --out defaults     # about 45 min per pair of DELU runs on 2 cores
    python benchmarks/video_defaults_table.py --table-only --out defaults
    OMP_NUM_THREADS=1 python benchmarks/video_defaults_table.py --distribution shifted --out defaults_shifted
    python benchmarks/video_defaults_table.py --methods basnet --device cuda --out defaults  # on a GPU

The tuned comparison, with settings chosen on held-out training videos, is ``benchmarks/methods_table.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

RUN_NAME = re.compile(r"^(?P<method>[a-z0-9_]+)-(?P<aggregator>[a-z0-9_]+)-s(?P<seed>\d+)$")
LAST_ITERATION = re.compile(r"iteration (\d+)/\1 loss \S+ \(([\d.]+) s\)")
SEEDS = (0, 1, 2)
ORDER = ("maan", "wtalc", "basnet", "co2net", "delu")
"""Row order: by year of publication, MAAN first; methods registered later follow by name."""


def distribution_overrides(distribution: str) -> List[str]:
    """The ``--sim`` overrides of a distribution: none for ``thumos14-sim``, else the simulator preset's name."""
    return [] if distribution == "thumos14-sim" else [f"preset={distribution}"]


def run_sim(run: Path) -> dict | None:
    """The simulator options a run recorded in its ``config.yaml`` (``data.sim``); None without the file."""
    import yaml

    if not (run / "config.yaml").is_file():
        return None
    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}
    return dict((config.get("data") or {}).get("sim") or {})


def mixed_runs(runs: Sequence[Path], expected: dict | None = None) -> str | None:
    """A message naming a run simulated otherwise than ``expected`` (or than the first run); None if all agree."""
    reference = None if expected is None else ("this call", expected)
    for run in runs:
        sim = run_sim(run)
        if sim is None:
            return f"{run} has no config.yaml to tell its simulated data"
        if reference is None:
            reference = (str(run), sim)
        elif sim != reference[1]:
            return (f"{run} was simulated with {sim or 'the default options'}, {reference[0]} with "
                    f"{reference[1] or 'the default options'}")
    return None


def describe_sim(sim: dict) -> str:
    """One line naming the simulated data of a table's runs (their recorded ``data.sim``)."""
    if not sim:
        return "Simulated data: `thumos14-sim` (the simulator's default options)."
    if set(sim) == {"preset"}:
        return f"Simulated data: `{sim['preset']}` (`--sim preset={sim['preset']}`)."
    options = " ".join(f"--sim {key}={value}" for key, value in sim.items())
    return f"Simulated data: `thumos14-sim` with `{options}` (a quick check, not a table's distribution)."


def run_name(method: str, aggregator: str, seed: int) -> str:
    """The folder of one run inside ``--out``."""
    return f"{method}-{aggregator}-s{seed}"


def train_argv(run: Path, method: str, aggregator: str, seed: int, threads: int,
               extra: Sequence[str] = (), device: str = "cpu") -> List[str]:
    """The ``wsl-video train`` command of one run (``python -m wsl_video`` with this interpreter)."""
    return [sys.executable, "-m", "wsl_video", "train", "--dataset", "thumos14-sim", "--method", method,
            "--aggregator", aggregator, "--seed", str(seed), "--threads", str(threads), "--device", device,
            "--out", str(run), *extra]


def training_seconds(run: Path) -> float | None:
    """Seconds of training up to the last iteration, from the run's ``train.log`` (None if not found)."""
    log = run / "train.log"
    if not log.is_file():
        return None
    found = LAST_ITERATION.findall(log.read_text(encoding="utf-8"))
    return float(found[-1][1]) if found else None


def finished_runs(out: Path) -> Dict[Tuple[str, str], List[Path]]:
    """(method, aggregator) -> its finished run folders in ``out``, by seed."""
    rows: Dict[Tuple[str, str], List[Tuple[int, Path]]] = {}
    for run in sorted(out.iterdir()) if out.is_dir() else []:
        match = RUN_NAME.match(run.name)
        if match and (run / "metrics.json").is_file():
            key = (match["method"], match["aggregator"])
            rows.setdefault(key, []).append((int(match["seed"]), run))
    return {key: [run for _, run in sorted(runs)] for key, runs in rows.items()}


def _cell(summary: dict, key: str, index: int | None = None) -> str:
    """``mean ± std`` in percent (the mean alone for one seed) of ``summary[key]`` or its ``index``-th value."""
    value = summary[key] if index is None else summary[key][index]
    if summary["seeds"] == 1:
        return f"{100 * value:.1f}"
    std = summary[f"{key}_std"] if index is None else summary[f"{key}_std"][index]
    return f"{100 * value:.1f} ± {100 * std:.1f}"


def format_table(out: Path, order: Sequence[str], original: Dict[str, str]) -> str:
    """Markdown table of every finished run in ``out``: one row per method x pooling."""
    from wsl_video.plot import summarize_runs

    header = ["method", "pooling", "seeds", "avg mAP@0.1:0.7", "mAP@0.3", "mAP@0.5", "mAP@0.7", "Cls mAP",
              "training time (median)"]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---|" + "---:|" * (len(header) - 3)]
    runs = finished_runs(out)
    rank = {name: index for index, name in enumerate(order)}
    keys = sorted(runs, key=lambda key: (rank.get(key[0], len(rank)), key[0], key[1] != original.get(key[0]),
                                         key[1] != "maa", key[1]))
    for method, aggregator in keys:
        folders = runs[(method, aggregator)]
        metrics = [json.loads((run / "metrics.json").read_text(encoding="utf-8")) for run in folders]
        summary = summarize_runs(metrics)
        tious = [round(t, 2) for t in summary["tiou_thresholds"]]
        seconds = [s for s in map(training_seconds, folders) if s is not None]
        median = statistics.median(seconds) if seconds else None
        minutes = "–" if median is None else "< 1 min" if median < 60 else f"{median / 60:.0f} min"
        seeds = ", ".join(RUN_NAME.match(run.name)["seed"] for run in folders)
        kind = "original" if aggregator == original.get(method) else "plugged in"
        lines.append("| " + " | ".join([
            f"`{method}`", f"`{aggregator}` ({kind})", seeds, _cell(summary, "average_mAP_0.1_0.7"),
            *(_cell(summary, "mAP", tious.index(t)) for t in (0.3, 0.5, 0.7)), _cell(summary, "cls_mAP"),
            minutes]) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from wsl.utils.io import atomic_write_text
    from wsl_video.commands.demo import default_aggregator
    from wsl_video.commands.train import parse_overrides
    from wsl_video.data.sim import PRESETS
    from wsl_video.methods import list_methods

    methods_known = list_methods()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="defaults_table", help="folder of the runs (default defaults_table)")
    parser.add_argument("--methods", nargs="+", default=None, choices=methods_known,
                        help="methods (default: every registered one)")
    parser.add_argument("--aggregators", nargs="+", default=None,
                        help="poolings (default: each method's original and maa)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="training seeds (default 0 1 2)")
    parser.add_argument("--threads", type=int, default=1, help="threads per training (default 1)")
    parser.add_argument("--jobs", type=int, default=1, help="trainings run side by side (default 1)")
    parser.add_argument("--device", default="cpu", help="training device: cpu (default), cuda or cuda:N")
    parser.add_argument("--distribution", default="thumos14-sim", choices=["thumos14-sim", *PRESETS],
                        help="simulated distribution: thumos14-sim (default) or a simulator preset")
    parser.add_argument("--sim", action="append", default=[], metavar="KEY=VALUE",
                        help="simulator override, for quick checks only (e.g. videos=12): no longer the table's data")
    parser.add_argument("--iterations", type=int, default=None,
                        help="training iterations, for quick checks only (default: each method's own)")
    parser.add_argument("--table-only", action="store_true", help="train nothing; tabulate the finished runs")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.threads < 1:
        parser.error("--jobs and --threads must be >= 1")
    out = Path(args.out)
    original = {method: default_aggregator(method) for method in methods_known}
    overrides = distribution_overrides(args.distribution) + args.sim
    if not args.table_only:
        finished = [run for runs in finished_runs(out).values() for run in runs]
        mixed = mixed_runs(finished, parse_overrides(overrides))
        if mixed:
            print(f"video_defaults_table: error: {mixed}; use another --out", file=sys.stderr)
            return 2
        todo = []
        for method in args.methods or methods_known:
            for aggregator in args.aggregators or dict.fromkeys([original[method], "maa"]):
                for seed in args.seeds:
                    run = out / run_name(method, aggregator, seed)
                    if (run / "metrics.json").is_file():
                        continue
                    if run.exists():
                        print(f"video_defaults_table: error: {run} holds an unfinished run; continue it with "
                              f"'wsl-video train --resume --out {run}' or remove it", file=sys.stderr)
                        return 2
                    todo.append((run, method, aggregator, seed))
        out.mkdir(parents=True, exist_ok=True)
        extra = [item for value in overrides for item in ("--sim", value)]
        if args.iterations is not None:
            extra += ["--iterations", str(args.iterations)]
        environment = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}

        def train(job: Tuple[Path, str, str, int]) -> Tuple[Path, int]:
            run, method, aggregator, seed = job
            print(f"== {run.name}", flush=True)
            with open(out / f"{run.name}.log", "w", encoding="utf-8") as log:
                status = subprocess.run(train_argv(run, method, aggregator, seed, args.threads, extra,
                                                   args.device),
                                        stdout=log, stderr=subprocess.STDOUT, env=environment).returncode
            return run, status

        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            failed = [(run, status) for run, status in pool.map(train, todo) if status != 0]
        for run, status in failed:
            print(f"video_defaults_table: error: {run.name} failed (exit status {status}); see "
                  f"{out / (run.name + '.log')}", file=sys.stderr)
        if failed:
            return 1
    finished = [run for runs in finished_runs(out).values() for run in runs]
    if not finished:
        print(f"video_defaults_table: error: no finished runs in {out}", file=sys.stderr)
        return 1
    mixed = mixed_runs(finished)
    if mixed:
        print(f"video_defaults_table: error: {mixed}; one --out per distribution", file=sys.stderr)
        return 2
    table = describe_sim(run_sim(finished[0]) or {}) + "\n\n" + format_table(out, ORDER, original)
    atomic_write_text(out / "table.md", table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
