"""``wsl-image demo``: MAAN vs weighted-CAM vs CAM on cub-sim, from scratch, in minutes on a CPU."""

from __future__ import annotations

import argparse

HELP = "train maa, weighted_sum and mean on cub-sim and print a Table-4-style comparison with overlays"

DEFAULT_AGGREGATORS = ("maa", "weighted_sum", "mean")
PAPER_NAMES = {"maa": "MAAN", "weighted_sum": "weighted-CAM", "mean": "CAM (GAP)"}
TABLE_COLUMNS = (
    ("top-1 loc err", lambda m: 100.0 - m["top1_loc"]),
    ("top-5 loc err", lambda m: 100.0 - m["top5_loc"]),
    ("top-1 loc", lambda m: m["top1_loc"]),
    ("top-5 loc", lambda m: m["top5_loc"]),
    ("GT-known", lambda m: m["gt_known_loc"]),
    ("MaxBoxAcc", lambda m: m["max_box_acc"]),
    ("MaxBoxAccV2", lambda m: m["max_box_acc_v2"]),
    ("top-1 cls", lambda m: m["top1_cls"]),
    ("top-5 cls", lambda m: m["top5_cls"]),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="wsl-image-demo", help="output folder (default ./wsl-image-demo)")
    parser.add_argument("--sim", help="cub-sim folder from `wsl-image make-sim` (default: OUT/cub-sim, made if needed)")
    parser.add_argument("--aggregators", nargs="+", default=list(DEFAULT_AGGREGATORS), help="aggregators to compare")
    parser.add_argument("--backbone", default="resnet10t", help="timm backbone trained from scratch (resnet10t)")
    parser.add_argument("--grid", choices=["4", "7", "none"], default="4", help="aggregation grid (default 4)")
    parser.add_argument("--image-size", type=int, default=96, help="input size (default 96)")
    parser.add_argument("--epochs", type=int, default=12, help="epochs per model (default 12)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--lr", type=float, default=2e-3, help="AdamW learning rate (default 2e-3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--overlays", type=int, default=8, help="test images drawn per aggregator (default 8)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="device (default auto)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def format_table(summary: dict) -> str:
    """Markdown table of ``{aggregator: metrics}`` in the layout of the paper's Table 4 (percent)."""
    header = "| method | " + " | ".join(name for name, _ in TABLE_COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(TABLE_COLUMNS)
    rows = [header, rule]
    for name, metrics in summary.items():
        label = f"{PAPER_NAMES.get(name, name)} ({name}, {_grid_label(metrics.get('grid'))})"
        rows.append(f"| {label} | " + " | ".join(f"{value(metrics):.2f}" for _, value in TABLE_COLUMNS) + " |")
    return "\n".join(rows)


def _grid_label(grid) -> str:
    return "native" if grid is None else f"{grid}x{grid}"


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    import torch

    import wsl
    from wsl.utils.io import atomic_write_json, atomic_write_text
    from wsl_image.config import TrainConfig
    from wsl_image.overlay import make_grid, render_overlays, save_png
    from wsl_image.train import build_splits, load_run, train

    if args.epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
    for name in args.aggregators:
        wsl.build_aggregator(name, channels=8)  # fail fast on an unknown name
    started = time.time()
    out = Path(args.out)
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
    data_root = sim / "CUB_200_2011"
    metadata = sim / "metadata" / "CUB"
    summary: dict = {}
    tiles_by_aggregator: dict = {}
    for name in args.aggregators:
        config = TrainConfig(
            data_root=str(data_root),
            metadata=str(metadata) if metadata.is_dir() else None,
            out=str(out / name),
            backbone=args.backbone,
            pretrained=False,
            grid=args.grid,
            aggregator=name,
            image_size=args.image_size,
            epochs=args.epochs,
            batch_size=args.batch_size,
            optimizer="adamw",
            lr=args.lr,
            head_lr_scale=1.0,
            weight_decay=0.05,
            scheduler="cosine",
            warmup_epochs=1,
            seed=args.seed,
            device=args.device,
            workers=0,
        )
        print(f"== {PAPER_NAMES.get(name, name)} ({name}), {args.backbone} from scratch, grid {args.grid}")
        model_started = time.time()
        metrics = train(config, progress=not args.quiet)
        metrics = {key: value for key, value in metrics.items() if key != "history"}
        metrics["train_seconds"] = round(time.time() - model_started, 1)
        summary[name] = metrics
        model, config = load_run(out / name, _device(args.device))
        test_set = build_splits(config)["test"]
        count = min(args.overlays, len(test_set))
        indices = torch.linspace(0, len(test_set) - 1, count).round().long().tolist() if count else []
        if indices:
            rendered = render_overlays(
                model,
                test_set,
                indices,
                out / "overlays" / name,
                cam_threshold=config.cam_threshold,
                device=_device(args.device),
                title=f"{PAPER_NAMES.get(name, name)} ({name})",
            )
            tiles_by_aggregator[name] = rendered["tiles"]
    if tiles_by_aggregator:
        names = list(tiles_by_aggregator)
        columns = len(tiles_by_aggregator[names[0]])
        tiles = [tile for name in names for tile in tiles_by_aggregator[name]]
        labels = [PAPER_NAMES.get(name, name) for name in names for _ in tiles_by_aggregator[name]]
        save_png(
            out / "overlays" / "comparison.png",
            make_grid(
                tiles,
                labels,
                columns=columns,
                title="rows: " + ", ".join(names) + "; ground truth red, prediction green",
            ),
        )
    table = format_table(summary)
    elapsed = time.time() - started
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "table.md", table + "\n")
    print()
    print(
        f"cub-sim test set ({summary[args.aggregators[0]]['num_images']} images), percent, "
        f"CAM threshold {summary[args.aggregators[0]]['cam_threshold']}, IoU 0.5:"
    )
    print(table)
    print(
        f"\nwrote {out / 'summary.json'}, {out / 'table.md'} and overlays in {out / 'overlays'} "
        f"({elapsed / 60:.1f} min)"
    )
    return 0


def _device(name: str):
    from wsl_image.train import resolve_device

    return resolve_device(name)
