"""``wsl-video detect``: run a trained model on a subset and write ActivityNet-format detections."""

from __future__ import annotations

import argparse

from wsl.utils.cli import AliasedStore, add_device_argument, add_threads_argument

HELP = "detect actions with a trained run; writes an ActivityNet-format detections JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run directory written by 'wsl-video train'")
    parser.add_argument("--data-root", default=None, help="features folder (default: the run's data root)")
    parser.add_argument("--subset", choices=("train", "test"), default="test", help="subset to detect on")
    parser.add_argument("--out", "--output", required=True, action=AliasedStore, aliases=("--output",),
                        metavar="FILE", help="detections JSON to write")
    add_device_argument(parser)
    add_threads_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar (the final line is still printed)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    if not Path(args.run).is_dir():
        raise FileNotFoundError(f"run directory not found: {args.run}")
    from wsl.utils.runs import recorded_path
    from wsl_video.data.opening import open_data
    from wsl_video.evaluation import write_prediction
    from wsl_video.inference import predict_dataset
    from wsl_video.methods import get_method
    from wsl_video.run import CONFIG_FILE, check_run_classes, load_run

    config, model, state = load_run(args.run, args.device)
    data_root = recorded_path(config.data.data_root, args.data_root, source=Path(args.run) / CONFIG_FILE)
    dataset = open_data(config, args.subset, data_root)
    check_run_classes(state, dataset, args.run)
    prediction = predict_dataset(model, dataset, config.inference, config.train.num_segments,
                                 progress=not args.quiet, localize_video=get_method(config.model.method).localize)
    write_prediction(args.out, dataset, prediction)
    count = sum(len(d) for d in prediction.detections.values())
    print(f"{count} detections on {len(dataset)} {config.data.dataset} {args.subset} videos -> {args.out}")
    return 0
