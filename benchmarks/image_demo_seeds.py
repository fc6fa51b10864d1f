"""``wsl-image demo`` over several training seeds on one cub-sim: mean ± std of its main columns.

    OMP_NUM_THREADS=1 python benchmarks/image_demo_seeds.py --seeds 0 1 2 --out image_demo_seeds

Runs the demo once per seed (``OUT/seed<s>/``, the packaged tuned settings, or ``--settings DIR``) on the
same cub-sim (``--sim``, default: made once in ``OUT/cub-sim`` with seed 0) and writes ``OUT/table.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages first

COLUMNS = (
    ("top-1 loc err @val", lambda m: 100.0 - (m["at_val_threshold"] or m)["top1_loc"]),
    ("GT-known loc @val", lambda m: (m["at_val_threshold"] or m)["gt_known_loc"]),
    ("MaxBoxAcc", lambda m: m["max_box_acc"]),
    ("MaxBoxAccV2", lambda m: m["max_box_acc_v2"]),
    ("top-1 cls", lambda m: m["top1_cls"]),
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="image_demo_seeds", help="output folder (default image_demo_seeds)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    parser.add_argument("--sim", default=None, help="cub-sim folder (default: OUT/cub-sim, made with seed 0)")
    parser.add_argument("--settings", default=None, help="settings folder (default: the packaged ones)")
    parser.add_argument("--demo-args", nargs=argparse.REMAINDER, default=[],
                        help="further wsl-image demo arguments (last on the line)")
    return parser.parse_args(argv)


def percent(metrics: dict, units: str) -> dict:
    """One model's demo metrics in percent (scaled when the summary's ``units`` say fractions)."""
    if "fraction" not in units:
        return metrics
    scaled = {}
    for key, value in metrics.items():
        if isinstance(value, float) and key not in ("cam_threshold", "val_cam_threshold", "iou_threshold",
                                                    "max_box_acc_threshold"):
            scaled[key] = 100.0 * value
        elif isinstance(value, dict) and key in ("at_val_threshold",):
            scaled[key] = {k: 100.0 * v if isinstance(v, float) else v for k, v in value.items()}
        else:
            scaled[key] = value
    return scaled


def main(argv=None) -> int:
    import numpy as np

    from wsl.utils.io import atomic_write_text
    from wsl_image.cli import main as wsl_image
    from wsl_image.commands.demo import PAPER_NAMES
    from wsl_image.sim import make_cub_sim

    args = parse_args(argv)
    out = Path(args.out)
    sim = Path(args.sim) if args.sim else out / "cub-sim"
    if not (sim / "CUB_200_2011" / "images.txt").is_file():
        make_cub_sim(sim, seed=0)
    tic = time.time()
    per_seed = {}
    for seed in args.seeds:
        argv = ["demo", "--seed", str(seed), "--sim-root", str(sim), "--out", str(out / f"seed{seed}"), "--quiet"]
        argv += ["--settings", args.settings] if args.settings else []
        if wsl_image(argv + list(args.demo_args)) != 0:
            return 1
        per_seed[seed] = json.loads((out / f"seed{seed}" / "summary.json").read_text())
        print(f"seed {seed} done ({time.time() - tic:.0f} s)", flush=True)
    units = {seed: str(summary.pop("units", "percent")) for seed, summary in per_seed.items()}
    names = list(per_seed[args.seeds[0]])
    header = "| method | grid | epochs | " + " | ".join(name for name, _ in COLUMNS) + " |"
    lines = [header, "|---|---|---|" + "---:|" * len(COLUMNS)]
    for name in names:
        runs = [percent(per_seed[seed][name], units[seed]) for seed in args.seeds]
        grid = runs[0].get("grid")
        epochs = json.loads((out / f"seed{args.seeds[0]}" / name / "history.json").read_text())[-1]["epoch"]
        cells = []
        for _, value in COLUMNS:
            values = np.array([value(run) for run in runs])
            cells.append(f"{values.mean():.1f} ± {values.std(ddof=1):.1f}" if len(values) > 1 else f"{values[0]:.1f}")
        lines.append(f"| {PAPER_NAMES.get(name, name)} ({name}) | {'native' if grid is None else f'{grid}x{grid}'} "
                     f"| {epochs} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    atomic_write_text(out / "table.md", table + "\n")
    print(table)
    print(f"{len(args.seeds)} seeds, {time.time() - tic:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
