"""``wsl-video tune``: choose an aggregator's settings on held-out training videos, with Optuna."""

from __future__ import annotations

import argparse

HELP = ("choose training and inference settings on videos held out from the training subset (Optuna TPE, "
        "pruning); writes best.yaml for train --config, trials.csv and study.png")
REQUIRES = ("optuna",)  # optional modules, checked before the command runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from wsl.tuning.cli import add_tune_arguments, space_help
    from wsl_video.commands.train import add_data_arguments
    from wsl_video.tune import DEFAULT_SPACE, VIDEO_KEYS

    add_data_arguments(parser)
    parser.add_argument("--aggregator", default=None, help="aggregator name from the registry (default maa)")
    parser.add_argument("--config", default=None,
                        help="base YAML config (format of DIR/config.yaml): the settings the space leaves alone")
    parser.add_argument("--batch-size", type=int, default=None, help="videos per batch (default 16)")
    parser.add_argument("--device", default=None, help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    add_tune_arguments(parser, "video", "default: a fifth of them")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = space_help(VIDEO_KEYS, DEFAULT_SPACE, [
        "sparsity_weight is fixed at 0 for aggregators without attention (an error if a --space file searches it)."])


def base_config(args: argparse.Namespace):
    """defaults < --config < flags."""
    from wsl_video.commands.train import apply_data_arguments
    from wsl_video.config import RunConfig, load_config

    config = RunConfig()
    if args.config:
        config = load_config(args.config, base=config)
    apply_data_arguments(config, args)
    if args.aggregator is not None:
        config.model.aggregator = args.aggregator
    if args.batch_size is not None:
        config.train.batch_size = args.batch_size
    if args.device is not None:
        config.train.device = args.device
    return config.resolved()


def run(args: argparse.Namespace) -> int:
    from wsl.tuning.cli import print_summary, tune_options
    from wsl_video.tune import tune

    summary = tune(base_config(args), tune_options(args))
    if not args.quiet:
        print_summary(summary, args.out, "wsl-video", 100.0, "%")
    return 0
