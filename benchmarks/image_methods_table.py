"""Every image method x {mean, weighted_sum, maa} on cub-sim and openimages-sim, in the benchmark's protocol.

The protocol of Choe et al. (CVPR 2020) on two simulated datasets: for each (dataset, method, aggregator)
row, ``wsl-image tune`` chooses the settings on the train-fullsup split (the metadata's ``val`` split:
boxes for cub-sim, masks for openimages-sim), scored by the benchmark's selection metric (MaxBoxAccV2,
PxAP), training on the train split only; **the test split is never read while choosing**. The chosen
``best.yaml`` then trains on the train split with each of ``--seeds`` and is evaluated once on the test
split. It writes ``OUT/<dataset>/tune/<method>-<aggregator>/`` (the studies), ``OUT/<dataset>/runs/...``
(the runs) and ``OUT/table.md``: one row per dataset x method x aggregator, mean ± std over seeds, in %.

    OMP_NUM_THREADS=1 python benchmarks/image_methods_table.py --out image_methods_table --jobs 2   # days, 2 cores
    python benchmarks/image_methods_table.py --quick --out /tmp/plumbing   # tiny: checks the plumbing only

A second run with the same ``--out`` continues: finished studies are continued (with more ``--trials``,
else left as they are) and finished runs are not retrained. ``benchmarks/regenerate_docs.py
image-methods-table`` runs it and puts the table into docs/image-methods-results.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages first

DATASETS = {"cub-sim": "CUB", "openimages-sim": "OpenImages"}
"""Table name -> ``--dataset`` of wsl-image."""
AGGREGATORS = ("mean", "weighted_sum", "maa")
TRIALS = 20
TUNE_SEEDS = (0,)
SEEDS = (0, 1, 2)
SIM_SIZES = {"num_classes": 5, "train_per_class": 48, "val_per_class": 6, "test_per_class": 24,
             "image_size": 112}
"""openimages-sim at cub-sim's default sizes (5 classes, 48 / 6 / 24 images per class, 112 pixels)."""
HEAD_WIDTH_SCALE = 0.125
"""``head_width_scale`` of the methods with heads of their own (ACoL, SPG) on the sims' backbone: the benchmark's
1024 / 512-channel heads sit on backbones of 512-2048 channels; timm's ``test_resnet`` ends with 96 (192 at
``layer3``), so the heads become 128 / 64 channels wide, and a trial costs about what a CAM trial does instead
of ten times more."""
SCALED_HEAD_METHODS = ("acol", "spg")
QUICK_SIM_SIZES = {"num_classes": 2, "train_per_class": 3, "val_per_class": 2, "test_per_class": 2,
                   "image_size": 48}
QUICK_RECIPE = {"image_size": 32, "batch_size": 4, "epochs": 1, "grid": 4, "backbone_kwargs": {}}
QUICK_SPACE = "epochs: {choices: [1]}\ngrid: {choices: [4]}\nlr: {low: 1.0e-4, high: 1.0e-2, log: true}\n"

# (metrics.json key, column title); the first is the benchmark's headline metric of the dataset
COLUMNS = {
    "CUB": [("max_box_acc_v2", "MaxBoxAccV2"), ("max_box_acc", "MaxBoxAcc"), ("top1_loc", "top-1 loc"),
            ("top1_cls", "top-1 cls")],
    "OpenImages": [("pxap", "PxAP"), ("piou", "PIoU"), ("top1_cls", "top-1 cls")],
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="image_methods_table", help="output folder (default image_methods_table)")
    parser.add_argument("--methods", nargs="+", default=None, help="methods (default: every registered one)")
    parser.add_argument("--aggregators", nargs="+", default=list(AGGREGATORS),
                        help="aggregators (default mean weighted_sum maa)")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS),
                        help="simulated datasets (default: both)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="training seeds (default 0 1 2)")
    parser.add_argument("--trials", type=int, default=TRIALS, help=f"tune trials per row (default {TRIALS})")
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=list(TUNE_SEEDS),
                        help="seeds averaged per tune trial (default 0)")
    parser.add_argument("--tune-space", default=None,
                        help="search space (default: the image demo's, wsl_image/resources/demo/space.yaml; each "
                             "method adds its own options)")
    parser.add_argument("--head-width-scale", type=float, default=HEAD_WIDTH_SCALE,
                        help=f"head_width_scale of {', '.join(SCALED_HEAD_METHODS)} (default {HEAD_WIDTH_SCALE}; 1: "
                             "the benchmark's 1024-channel heads, about ten times slower on the sims)")
    parser.add_argument("--jobs", type=int, default=1, help="processes per study (default 1)")
    parser.add_argument("--device", default="cpu", help="training device (default cpu)")
    parser.add_argument("--quick", action="store_true",
                        help="plumbing check: tiny sims, 32-pixel inputs, one epoch, 2 trials, seed 0 (numbers "
                             "mean nothing)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines of the studies")
    args = parser.parse_args(argv)
    if args.quick:
        if args.trials == TRIALS:
            args.trials = 2
        if args.seeds == list(SEEDS):
            args.seeds = [0]
    return args


def make_sims(out: Path, datasets: Sequence[str], quick: bool) -> Dict[str, Path]:
    """The simulated datasets (made once, seed 0): name -> the folder holding the images and ``metadata/``."""
    from wsl_image.sim import make_cub_sim
    from wsl_image.wsol_sim import make_openimages_sim

    folders = {}
    for name in datasets:
        folder = out / "sims" / name
        if name == "cub-sim" and not (folder / "CUB_200_2011" / "images.txt").is_file():
            sizes = {**QUICK_SIM_SIZES, "clutter": 1} if quick else {}
            make_cub_sim(folder, seed=0, progress=False, **sizes)
        elif name == "openimages-sim" and not (folder / "metadata" / "OpenImages").is_dir():
            make_openimages_sim(folder, seed=0, **(QUICK_SIM_SIZES if quick else SIM_SIZES))
        folders[name] = folder
    return folders


def data_flags(name: str, sim: Path) -> List[str]:
    if name == "cub-sim":
        return ["--dataset", "CUB", "--data-root", str(sim / "CUB_200_2011"), "--metadata",
                str(sim / "metadata" / "CUB")]
    return ["--dataset", "OpenImages", "--data-root", str(sim / "OpenImages"), "--metadata", str(sim / "metadata")]


def recipe_file(out: Path, quick: bool, head_width_scale: float | None = None) -> Path:
    """The base configuration of every study: the image demo's recipe (``wsl_image.commands.demo.recipe``), with
    ``head_width_scale`` for the methods of :data:`SCALED_HEAD_METHODS` (``recipe-scaled-heads.yaml``)."""
    from wsl.utils.io import atomic_write_text
    from wsl_image.commands.demo import recipe
    from wsl_image.config import config_yaml

    config = recipe().replace(**QUICK_RECIPE) if quick else recipe()
    path = out / "recipe.yaml"
    if head_width_scale is not None:
        config, path = config.replace(head_width_scale=head_width_scale), out / "recipe-scaled-heads.yaml"
    atomic_write_text(path, config_yaml(config))
    return path


def space_file(out: Path, args: argparse.Namespace) -> str:
    if args.tune_space:
        return args.tune_space
    if args.quick:
        from wsl.utils.io import atomic_write_text

        path = out / "quick_space.yaml"
        atomic_write_text(path, QUICK_SPACE)
        return str(path)
    from wsl_image.commands.demo import settings_folder

    return str(settings_folder() / "space.yaml")


def run_row(name: str, sim: Path, method: str, aggregator: str, args: argparse.Namespace, recipe: Path,
            space: str) -> dict:
    """Tune one row on the train-fullsup split, train its seeds, read their test metrics."""
    from wsl_image.cli import main as wsl_image

    folder = Path(args.out) / name
    study = folder / "tune" / f"{method}-{aggregator}"
    tune = ["tune", *data_flags(name, sim), "--config", str(recipe), "--method", method, "--aggregator", aggregator,
            "--space", space, "--trials", str(args.trials), "--seeds", *map(str, args.tune_seeds),
            "--jobs", str(args.jobs), "--device", args.device, "--workers", "0", "--out", str(study)]
    if args.quiet:
        tune.append("--quiet")
    if wsl_image(tune) != 0:
        raise RuntimeError(f"wsl-image tune failed for {name} {method} {aggregator}")
    best = study / "best.yaml"
    if not best.is_file():
        raise RuntimeError(f"{study}: no trial completed, no best.yaml")
    per_seed = []
    for seed in args.seeds:
        run = folder / "runs" / f"{method}-{aggregator}" / f"seed{seed}"
        if not (run / "metrics.json").is_file():
            status = wsl_image(["train", "--config", str(best), "--seed", str(seed), "--device", args.device,
                                "--out", str(run), "--overwrite", "--quiet"])
            if status != 0:
                raise RuntimeError(f"wsl-image train failed for {name} {method} {aggregator} seed {seed}")
        per_seed.append(json.loads((run / "metrics.json").read_text(encoding="utf-8")))
    return {"held_out": held_out_score(study), "metrics": per_seed}


def held_out_score(study: Path) -> float:
    """The chosen trial's held-out score in percent, unrounded: its score cell (the third column) of
    ``trials.csv`` (``best.yaml``'s first line names the trial; its second line rounds the score to two
    decimals, and is read only when ``trials.csv`` lacks the trial)."""
    import csv
    import re

    lines = (study / "best.yaml").read_text(encoding="utf-8").splitlines()
    trial = re.search(r"trial (\d+) of study", lines[0])
    table = study / "trials.csv"
    if trial and table.is_file():
        with open(table, newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                if len(row) > 2 and row[0] == trial[1] and row[2]:
                    return 100 * float(row[2])
    return float(lines[1].split(": ", 1)[1].split("%", 1)[0])  # "# held-out <metric>: <score>%[ ...]"


def summarize(row: dict, dataset: str) -> Dict[str, tuple]:
    """metrics.json key -> (mean, std) over seeds, in percent (std 0 for one seed)."""
    import numpy as np

    values = {}
    for key, _ in COLUMNS[dataset]:
        numbers = [100.0 * float(metrics[key]) for metrics in row["metrics"]]
        values[key] = (float(np.mean(numbers)), float(np.std(numbers)) if len(numbers) > 1 else 0.0)
    return values


def _cell(mean: float, std: float, seeds: int) -> str:
    return f"{mean:.1f}" if seeds <= 1 else f"{mean:.1f} ± {std:.1f}"


def format_table(rows: Dict[tuple, dict], seeds: int) -> str:
    """Markdown table of ``(table dataset, method, aggregator) -> run_row`` results; the headline metric is the
    dataset's (MaxBoxAccV2 on cub-sim, PxAP on openimages-sim), the others follow in their own columns."""
    header = ["dataset", "method", "aggregator", "held-out (val)", "MaxBoxAccV2", "PxAP", "MaxBoxAcc", "PIoU",
              "top-1 loc", "top-1 cls"]
    keys = {"MaxBoxAccV2": "max_box_acc_v2", "PxAP": "pxap", "MaxBoxAcc": "max_box_acc", "PIoU": "piou",
            "top-1 loc": "top1_loc", "top-1 cls": "top1_cls"}
    lines = ["| " + " | ".join(header) + " |", "|---|---|---|" + "---:|" * (len(header) - 3)]
    for (name, method, aggregator), row in rows.items():
        values = summarize(row, DATASETS[name])
        cells = [_cell(*values[keys[title]], seeds) if keys[title] in values else "–" for title in header[4:]]
        lines.append("| " + " | ".join([name, f"`{method}`", f"`{aggregator}`", f"{row['held_out']:.1f}", *cells])
                     + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from wsl.utils.io import atomic_write_text
    from wsl_image.methods import list_methods

    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    methods = args.methods or list_methods()
    sims = make_sims(out, args.datasets, args.quick)
    recipe, space = recipe_file(out, args.quick), space_file(out, args)
    scaled_recipe = recipe_file(out, args.quick, args.head_width_scale) if args.head_width_scale != 1 else recipe
    rows: Dict[tuple, dict] = {}
    tic = time.time()
    for name in args.datasets:
        for method in methods:
            for aggregator in args.aggregators:
                print(f"== {name} {method} {aggregator} ({time.time() - tic:.0f} s)", flush=True)
                try:
                    base = scaled_recipe if method in SCALED_HEAD_METHODS else recipe
                    rows[(name, method, aggregator)] = run_row(name, sims[name], method, aggregator, args, base,
                                                               space)
                except RuntimeError as error:
                    print(f"image_methods_table: error: {error}", file=sys.stderr)
                    return 1
    table = format_table(rows, len(args.seeds))
    atomic_write_text(out / "table.md", table + "\n")
    print(table)
    print(f"{len(rows)} rows in {time.time() - tic:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
