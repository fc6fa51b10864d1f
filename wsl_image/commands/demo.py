"""``wsl-image demo``: MAAN vs weighted-CAM vs CAM on cub-sim, from scratch, in minutes on a CPU.

Each model trains with its own settings, chosen by ``wsl-image tune`` on cub-sim's validation split
(never on the test split): the ``best.yaml`` files in ``wsl_image/resources/demo/``, or a live selection
with ``--tune``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "train maa, weighted_sum and mean on cub-sim and print a Table-4-style comparison with overlays"
REQUIRES = ("timm", "torchvision", "PIL", "cv2")  # optional modules, checked before the command runs

DEFAULT_AGGREGATORS = ("maa", "weighted_sum", "mean")
PAPER_NAMES = {"maa": "MAAN", "weighted_sum": "weighted-CAM", "mean": "CAM (GAP)"}
TABLE_COLUMNS = (  # percent, from the fractions of the metrics
    ("top-1 loc err @0.2", lambda m: 100.0 * (1.0 - m["top1_loc"])),
    ("top-5 loc err @0.2", lambda m: 100.0 * (1.0 - m["top5_loc"])),
    ("top-1 loc err @val", lambda m: 100.0 * (1.0 - (m["at_val_threshold"] or m)["top1_loc"])),
    ("top-5 loc err @val", lambda m: 100.0 * (1.0 - (m["at_val_threshold"] or m)["top5_loc"])),
    ("GT-known loc @0.2", lambda m: 100.0 * m["gt_known_loc"]),
    ("MaxBoxAcc", lambda m: 100.0 * m["max_box_acc"]),
    ("MaxBoxAccV2", lambda m: 100.0 * m["max_box_acc_v2"]),
    ("top-1 cls", lambda m: 100.0 * m["top1_cls"]),
    ("top-5 cls", lambda m: 100.0 * m["top5_cls"]),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from wsl.tuning.cli import add_demo_settings_arguments

    add = parser.add_argument
    add("--out", default="wsl-image-demo", help="output folder (default ./wsl-image-demo)")
    add("--sim", help="cub-sim folder from `wsl-image make-sim` (default: OUT/cub-sim, made if needed)")
    add("--aggregators", nargs="+", default=list(DEFAULT_AGGREGATORS), help="aggregators to compare")
    add("--backbone", default=None, help="timm backbone trained from scratch (default test_resnet)")
    add("--output-stride", type=int, choices=[8, 16, 32], default=None, help="backbone output stride (default 16)")
    add("--grid", choices=["4", "7", "none"], default=None, help="aggregation grid (default: the tuned one)")
    add("--image-size", type=int, default=None, help="input size (default 112)")
    add("--epochs", type=int, default=None, help="epochs per model (default: the tuned number)")
    add("--batch-size", type=int, default=None, help="batch size (default 32)")
    add("--lr", type=float, default=None, help="AdamW learning rate (default: the tuned one)")
    add("--seed", type=int, default=0, help="random seed (default 0)")
    add("--overlays", type=int, default=8, help="test images drawn per aggregator (default 8)")
    add(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch (default 1: the small model gains little from more, and loses much on a busy CPU)",
    )
    add("--device", choices=["auto", "cpu", "cuda"], default="auto", help="device (default auto)")
    add("--quiet", action="store_true", help="no progress bars")
    add_demo_settings_arguments(parser, "wsl-image", "aggregator", TUNE_TRIALS, TUNE_SEEDS,
                                "wsl_image/resources/demo")


# The protocol of the stored settings (resources/demo/<aggregator>.yaml), regenerated with
#     OMP_NUM_THREADS=1 wsl-image demo --tune --jobs 2 --save-settings wsl_image/resources/demo
TUNE_TRIALS = 16
TUNE_SEEDS = (0,)
CLASSIC_CAM_THRESHOLD = 0.2


def settings_folder() -> Path:
    """The packaged settings: one ``best.yaml`` of ``wsl-image tune`` per aggregator, and the demo's space."""
    from importlib import resources

    return Path(str(resources.files("wsl_image") / "resources" / "demo"))


def recipe():
    """The demo's base recipe (what ``--tune`` starts from): timm's test_resnet from scratch at output
    stride 16, 112x112 inputs, AdamW with a cosine schedule and a one-epoch warm-up, batch 32."""
    from wsl_image.config import TrainConfig

    return TrainConfig(backbone="test_resnet", backbone_kwargs={"output_stride": 16}, pretrained=False, grid=7,
                       image_size=112, epochs=30, batch_size=32, optimizer="adamw", lr=1e-3, head_lr_scale=1.0,
                       weight_decay=0.05, scheduler="cosine", warmup_epochs=1, workers=0)


def stored_settings(aggregator: str, folder: str | Path | None = None):
    """The tuned config of ``aggregator`` (``folder/<aggregator>.yaml``), or None when there is none."""
    from wsl_image.config import load_config

    path = Path(folder or settings_folder()) / f"{aggregator}.yaml"
    return load_config(path) if path.is_file() else None


def demo_config(name: str, args: argparse.Namespace, base=None, **paths):
    """``base`` (the stored settings of ``name``, else the recipe) with the flags given and ``paths``."""
    config = base or stored_settings(name, getattr(args, "settings", None)) or recipe()
    changes = {key: getattr(args, key, None) for key in ("backbone", "image_size", "epochs", "batch_size", "lr")}
    if getattr(args, "grid", None) is not None:
        changes["grid"] = args.grid
    if getattr(args, "output_stride", None) is not None:
        changes["backbone_kwargs"] = {"output_stride": args.output_stride} if args.output_stride != 32 else {}
    # the table's fixed-threshold columns use the classic 0.2; the tuned threshold, chosen on the same
    # validation split, is the one of the "@val" columns
    return config.replace(aggregator=name, seed=args.seed, device=args.device, workers=0, pretrained=False,
                          cam_threshold=CLASSIC_CAM_THRESHOLD, **changes, **paths)


def tune_settings(args: argparse.Namespace, data_root: str, metadata: str | None) -> Path:
    """``--tune``: run ``wsl-image tune`` for every aggregator on the validation split; returns the folder
    of the chosen settings (best.yaml without the data paths)."""
    import yaml

    from wsl.utils.io import atomic_write_text, read_yaml
    from wsl_image.tune import tune

    out = Path(args.out) / "tune"
    chosen = out / "settings"
    for name in args.aggregators:
        print(f"== tune {PAPER_NAMES.get(name, name)} ({name})", flush=True)
        base = demo_config(name, args, base=recipe(), data_root=data_root, metadata=metadata)
        space = args.tune_space or str(settings_folder() / "space.yaml")
        summary = tune(base, out / name, seeds=args.tune_seeds, space_file=space, trials=args.trials, jobs=args.jobs,
                       echo=None if args.quiet else print)
        if summary.get("best_score") is None:
            raise ValueError(f"tune {name}: no trial completed; raise --trials")
        best = out / name / "best.yaml"
        values = read_yaml(best)
        values.update(data_root="", metadata=None, out="", seed=0, device="auto")
        header = "".join(line + "\n" for line in best.read_text(encoding="utf-8").splitlines()
                         if line.startswith("#"))
        header = header.replace(str(Path(args.out).resolve()), str(args.out))  # not this machine's paths
        text = header + yaml.safe_dump(values, sort_keys=False)
        for folder in [chosen] + ([Path(args.save_settings)] if args.save_settings else []):
            atomic_write_text(folder / f"{name}.yaml", text)
    return chosen


def format_table(summary: dict) -> str:
    """Markdown table of ``{aggregator: metrics}`` in the layout of the paper's Table 4 (percent).

    Attention-based models also get a row for the other localization-map score (``alternative_map``).
    """
    header = "| method | map | " + " | ".join(name for name, _ in TABLE_COLUMNS) + " |"
    rule = "|---|---|" + "---:|" * len(TABLE_COLUMNS)
    rows = [header, rule]
    for name, metrics in summary.items():
        label = f"{PAPER_NAMES.get(name, name)} ({name}, {_grid_label(metrics.get('grid'))})"
        for row in (metrics, metrics.get("alternative_map")):
            if row:
                cells = " | ".join(f"{value(row):.2f}" for _, value in TABLE_COLUMNS)
                rows.append(f"| {label} | {row['cam_score']} | {cells} |")
    return "\n".join(rows)


def _grid_label(grid) -> str:
    return "native" if grid is None else f"{grid}x{grid}"


def run(args: argparse.Namespace) -> int:
    import time

    import torch

    import wsl
    from wsl.utils.device import resolve_device
    from wsl.utils.io import atomic_write_json, atomic_write_text
    from wsl_image.data.splits import build_splits
    from wsl_image.evaluate import METRIC_UNITS, evaluate_run
    from wsl_image.overlay import make_grid, render_overlays, save_png
    from wsl_image.run import load_run
    from wsl_image.training import train

    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
    if args.save_settings and not args.tune:
        raise ValueError("--save-settings needs --tune")
    if args.settings and not Path(args.settings).is_dir():
        raise FileNotFoundError(f"settings folder not found: {args.settings}")
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    for name in args.aggregators:
        wsl.build_aggregator(name, channels=8)  # fail fast on an unknown name
    started = time.time()
    out = Path(args.out)
    device = resolve_device(args.device)
    if args.sim:
        sim = Path(args.sim)
        if not (sim / "CUB_200_2011" / "images.txt").is_file():
            raise FileNotFoundError(f"{sim} is not a cub-sim folder (no CUB_200_2011/images.txt)")
    else:
        sim = out / "cub-sim"
        if not (sim / "CUB_200_2011" / "images.txt").is_file():
            from wsl_image.sim import make_cub_sim

            print(f"making cub-sim in {sim}")
            make_cub_sim(sim, seed=args.seed, progress=not args.quiet)
    metadata = sim / "metadata" / "CUB"
    if args.tune:
        args.settings = str(tune_settings(args, str(sim / "CUB_200_2011"),
                                          str(metadata) if metadata.is_dir() else None))
    summary: dict = {}
    tiles_by_aggregator: dict = {}
    labels_by_aggregator: dict = {}
    for name in args.aggregators:
        config = demo_config(name, args, data_root=str(sim / "CUB_200_2011"),
                             metadata=str(metadata) if metadata.is_dir() else None, out=str(out / name))
        print(f"== {PAPER_NAMES.get(name, name)} ({name}): {config.backbone} from scratch, grid {config.grid}, "
              f"{config.epochs} epochs, lr {config.lr:g}, weight decay {config.weight_decay:g}")
        model_started = time.time()
        metrics = train(config, overwrite=True, progress=not args.quiet)  # the demo's own run folders
        metrics = {key: value for key, value in metrics.items() if key not in ("history", "units")}
        metrics["train_seconds"] = round(time.time() - model_started, 1)
        model, config = load_run(out / name, device)
        splits = build_splits(config)
        if model.uses_attention:  # the same model scored with the other localization map
            model.cam_score = "linear" if model.resolved_cam_score == "sigmoid" else "sigmoid"
            alternative = evaluate_run(model, config, splits, device=device, progress=False)
            metrics["alternative_map"] = {k: v for k, v in alternative.items() if k != "history"}
            model.cam_score = config.cam_score
        summary[name] = metrics
        test_set = splits["test"]
        count = min(args.overlays, len(test_set))
        if count:
            indices = torch.linspace(0, len(test_set) - 1, count).round().long().tolist()
            threshold = metrics["val_cam_threshold"] if metrics["val_cam_threshold"] is not None else 0.2
            rendered = render_overlays(
                model,
                test_set,
                indices,
                out / "overlays" / name,
                cam_threshold=threshold,
                device=device,
                title=f"{PAPER_NAMES.get(name, name)} ({name}), box at tau={threshold:.2f}",
            )
            tiles_by_aggregator[name] = rendered["tiles"]
            labels_by_aggregator[name] = rendered["labels"]
    if tiles_by_aggregator:
        names = list(tiles_by_aggregator)
        tiles = [tile for name in names for tile in tiles_by_aggregator[name]]
        labels = [label for name in names for label in labels_by_aggregator[name]]
        title = "rows: " + ", ".join(f"{PAPER_NAMES.get(name, name)} ({name})" for name in names) + \
            " (ground truth red, prediction green)"
        grid = make_grid(tiles, labels, columns=len(tiles_by_aggregator[names[0]]), title=title)
        save_png(out / "overlays" / "comparison.png", grid)
    table = format_table(summary)
    elapsed = time.time() - started
    atomic_write_json(out / "summary.json", {"units": METRIC_UNITS, **summary})
    atomic_write_text(out / "table.md", table + "\n")
    first = summary[args.aggregators[0]]
    print()
    print(
        f"{first['num_images']} test images, percent. Localization at IoU 0.5 with the fixed CAM threshold "
        f"{first['cam_threshold']} (@0.2) or the one chosen on the val split (@val); MaxBoxAcc (IoU 0.5) and "
        "MaxBoxAccV2 (IoU 0.3/0.5/0.7) take the best threshold. map: class score of the localization map."
    )
    print(table)
    print(f"\nwrote {out / 'summary.json'}, {out / 'table.md'} and overlays in {out / 'overlays'}")
    print(f"total time {elapsed / 60:.1f} min")
    return 0
