"""Every video method with its original pooling and with MAA, on two simulated distributions.

For each distribution (``thumos14-sim`` as it is, and the ``shifted`` preset that the recipes were not
developed on) this runs ``wsl-video demo --methods ... --aggregators maa --tune``: every (method, pooling)
pair gets its own settings from ``wsl-video tune`` on training videos held out from the training subset
(never the test split), then trains on all training videos with ``--seeds`` and is evaluated on the test
split. It writes ``OUT/<distribution>/`` (the demo's outputs and the studies) and ``OUT/table.md``: one row
per distribution x method x pooling, mean ± std over seeds, in percent.

    OMP_NUM_THREADS=1 python benchmarks/methods_table.py --out methods_table --jobs 2   # hours on 2 cores

``benchmarks/regenerate_docs.py methods-table`` runs it and puts the table into docs/video-methods-results.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Sequence

DISTRIBUTIONS: Dict[str, List[str]] = {"thumos14-sim": [], "shifted": ["preset=shifted"]}
"""Distribution name -> its ``--sim`` overrides."""
TRIALS = 24
TUNE_SEEDS = (0, 1)
SEEDS = (0, 1, 2)


def demo_argv(out: Path, methods: Sequence[str], sim: Sequence[str], args: argparse.Namespace) -> List[str]:
    """The ``wsl-video demo`` command line of one distribution."""
    argv = ["demo", "--methods", *methods, "--aggregators", "maa", "--tune", "--trials", str(args.trials),
            "--tune-seeds", *map(str, args.tune_seeds), "--jobs", str(args.jobs), "--seeds", *map(str, args.seeds),
            "--plots", "0", "--out", str(out), "--device", args.device]
    for item in [*sim, *args.sim]:
        argv += ["--sim", item]
    if args.tune_space:
        argv += ["--tune-space", args.tune_space]
    if args.quiet:
        argv.append("--quiet")
    return argv


def _cell(entry: dict, key: str, index: int | None = None) -> str:
    value = entry[key] if index is None else entry[key][index]
    std = entry.get(f"{key}_std")
    if std is None or entry.get("seeds", 1) <= 1:
        return f"{100 * value:.1f}"
    return f"{100 * value:.1f} ± {100 * (std if index is None else std[index]):.1f}"


def format_table(results: Dict[str, dict]) -> str:
    """Markdown table of ``distribution -> demo summary.json``: one row per method x pooling."""
    header = ["distribution", "method", "pooling", "settings", "avg mAP@0.1:0.7", "mAP@0.3", "mAP@0.5", "Cls mAP"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for distribution, summary in results.items():
        for key, entry in summary.items():
            if key == "units":
                continue
            method, pooling = key.split("/", 1) if "/" in key else ("maan", key)
            tious = [round(t, 2) for t in entry["tiou_thresholds"]]
            original = "original" if pooling == entry.get("original_pooling", pooling) else "plugged in"
            lines.append("| " + " | ".join([
                distribution, f"`{method}`", f"`{pooling}` ({original})", entry["settings"].get("source", "tuned"),
                _cell(entry, "average_mAP_0.1_0.7"), _cell(entry, "mAP", tious.index(0.3)),
                _cell(entry, "mAP", tious.index(0.5)), _cell(entry, "cls_mAP")]) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from wsl_video.cli import main as wsl_video
    from wsl_video.commands.demo import default_aggregator
    from wsl_video.methods import list_methods

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="methods_table", help="output folder (default methods_table)")
    parser.add_argument("--methods", nargs="+", default=None, help="methods (default: every registered one)")
    parser.add_argument("--distributions", nargs="+", default=list(DISTRIBUTIONS), choices=list(DISTRIBUTIONS),
                        help="simulated distributions (default: both)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="training seeds (default 0 1 2)")
    parser.add_argument("--trials", type=int, default=TRIALS, help=f"tune trials per row (default {TRIALS})")
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=list(TUNE_SEEDS),
                        help="seeds averaged per tune trial (default 0 1)")
    parser.add_argument("--tune-space", default=None, help="search space (default: the demo's)")
    parser.add_argument("--jobs", type=int, default=1, help="processes per study (default 1)")
    parser.add_argument("--sim", action="append", default=[], metavar="KEY=VALUE",
                        help="extra simulator overrides for both distributions (e.g. videos=40, for a quick run)")
    parser.add_argument("--device", default="cpu", help="training device (default cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    methods = args.methods or list_methods()
    out = Path(args.out)
    results = {}
    for distribution in args.distributions:
        folder = out / distribution
        print(f"== {distribution}: {' '.join(methods)}", flush=True)
        status = wsl_video(demo_argv(folder, methods, DISTRIBUTIONS[distribution], args))
        if status != 0:
            print(f"methods_table: error: wsl-video demo on {distribution} failed (exit status {status})",
                  file=sys.stderr)
            return status
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        for key, entry in summary.items():
            if key != "units":
                entry["original_pooling"] = default_aggregator(key.split("/")[0] if "/" in key else "maan")
        results[distribution] = summary
    from wsl.utils.io import atomic_write_text

    table = format_table(results)
    atomic_write_text(out / "table.md", table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
