"""``wsl-image evaluate``: localization and classification metrics of a trained run on a split."""

from __future__ import annotations

import argparse

from wsl.utils.cli import add_device_argument, add_threads_argument

HELP = ("evaluate a trained run on a split (top-1/top-5/GT-known loc, MaxBoxAcc, MaxBoxAccV2 or, on OpenImages, "
        "PxAP and PIoU; classification)")
REQUIRES = ("timm", "torchvision", "PIL", "cv2")  # optional modules, checked before the command runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run folder written by `wsl-image train`")
    parser.add_argument("--data-root", help="CUB_200_2011 folder, or the ILSVRC / OpenImages image folder (default: "
                        "the one the run was trained on)")
    parser.add_argument("--metadata", help="wsolevaluation metadata folder (default: the run's)")
    parser.add_argument("--mask-root", metavar="DIR", help="OpenImages mask folder (default: the run's)")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"], help="split to evaluate")
    parser.add_argument("--cam-threshold", type=float, help="fixed CAM threshold (default: the run's, 0.2)")
    parser.add_argument("--batch-size", type=int, help="batch size (default: the run's)")
    parser.add_argument("--workers", type=int, help="data-loading worker processes (default: the run's)")
    parser.add_argument("--out", metavar="FILE", help="metrics JSON to write (default: RUN/eval_SPLIT.json)")
    parser.add_argument("--save-maps", metavar="DIR",
                        help="also save the evaluated maps as DIR/<image_id>.npy (224x224, the input of "
                        "`wsl-image evaluate-maps`); DIR must be new or empty")
    add_device_argument(parser)
    add_threads_argument(parser)
    parser.add_argument(
        "--cam-score",
        choices=["auto", "linear", "sigmoid"],
        help="class score of the localization map (default: the run's)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars (the metrics are still printed)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from wsl.utils.device import resolve_device
    from wsl.utils.io import atomic_write_json
    from wsl.utils.runs import recorded_path
    from wsl_image.data.splits import build_splits
    from wsl_image.evaluate import evaluate_run, format_metrics
    from wsl_image.run import load_run

    run_dir = Path(args.run)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    device = resolve_device(args.device)
    model, config = load_run(run_dir, device)
    source = run_dir / "config.yaml"
    config = config.replace(
        data_root=recorded_path(config.data_root, args.data_root, source=source, flag="--data-root"),
        metadata=recorded_path(config.metadata, args.metadata, source=source, flag="--metadata"),
        mask_root=recorded_path(config.mask_root, args.mask_root, source=source, flag="--mask-root"),
        cam_threshold=args.cam_threshold,
        batch_size=args.batch_size,
        eval_batch_size=args.batch_size,
        workers=args.workers,
    )
    if args.cam_score:
        model.cam_score = config.cam_score = args.cam_score
    splits = build_splits(config)
    splits["train"] = _as_eval(splits["train"], config)
    if splits.get(args.split) is None:
        raise ValueError(f"{config.data_root}: no {args.split} split")
    maps_dir = Path(args.save_maps) if args.save_maps else None
    if maps_dir is not None and maps_dir.exists() and (not maps_dir.is_dir() or any(maps_dir.iterdir())):
        raise ValueError(f"{maps_dir} exists and is not an empty folder; --save-maps needs a new one")
    metrics = evaluate_run(model, config, splits, device=device, split=args.split, progress=not args.quiet,
                           maps_dir=maps_dir)
    path = Path(args.out) if args.out else run_dir / f"eval_{args.split}.json"
    atomic_write_json(path, metrics)
    print(format_metrics(metrics))
    print(f"wrote {path}")
    return 0


def _as_eval(dataset, config):
    """The train split without augmentation (to evaluate on it)."""
    from wsl_image.data import CubDataset

    meta = getattr(dataset, "meta", None)
    return dataset if meta is None else CubDataset(meta, train=False, image_size=config.image_size)
