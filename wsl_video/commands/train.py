"""``wsl-video train``: train MAAN (or a baseline aggregator) and evaluate it on the test subset."""

from __future__ import annotations

import argparse
from pathlib import Path

from wsl.utils.cli import add_device_argument, add_threads_argument
from wsl_video.data.factory import DATASETS

HELP = "train an aggregator on video-level labels; writes config, log, checkpoint, detections and metrics"


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared with ``demo``: which dataset and how to read it (default None = keep the config's)."""
    parser.add_argument("--dataset", choices=DATASETS, default=None,
                        help="dataset (default thumos14); custom: own data, annotations.json + manifest.json + "
                        "features/ under --data-root")
    parser.add_argument("--data-root", default=None, help="folder with the features and annotations")
    parser.add_argument("--layout", choices=("auto", "wtalc", "bas", "acm", "activitynet", "custom"), default=None,
                        help="feature layout on disk (default auto-detect)")
    parser.add_argument("--streams", choices=("two", "joint"), default=None,
                        help="separate RGB and flow models fused 0.5/0.5 (two; RGB alone for RGB-only "
                        "features), or one on the joint vector")
    parser.add_argument("--test-videos", type=int, choices=(212, 210), default=None,
                        help="THUMOS14 test set: all 212 videos, or the 210 without two wrongly annotated ones")
    parser.add_argument("--skip-missing", action="store_true", default=None,
                        help="skip videos whose features are missing instead of failing")
    parser.add_argument("--sim", action="append", default=[], metavar="KEY=VALUE",
                        help="thumos14-sim simulator override (repeatable), e.g. --sim videos=50")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    parser.add_argument("--method", default=None,
                        help="training method from the registry (default maan; `wsl-video methods` lists them)")
    parser.add_argument("--aggregator", default=None, help="aggregator name from the registry (default maa)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="training iterations (default: the method's, 5000; co2net, delu on ActivityNet: 22000)")
    parser.add_argument("--batch-size", type=int, default=None, help="videos per batch (default 16)")
    parser.add_argument("--num-segments", type=int, default=None, help="T, snippets per training video (20)")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 5e-4)")
    parser.add_argument("--weight-decay", type=float, default=None, help="Adam weight decay (default 0)")
    parser.add_argument("--sparsity-weight", type=float, default=None,
                        help="L1 weight on the attention (default 1e-4 for weighted_sum as in STPN, else 0)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    add_device_argument(parser, default=None)
    add_threads_argument(parser)
    parser.add_argument("--no-cache", action="store_true",
                        help="read training features from disk every time instead of keeping them in memory")
    parser.add_argument("--config", default=None,
                        help="YAML config (same format as DIR/config.yaml; `wsl-video config` prints the defaults)")
    parser.add_argument("--out", required=True, help="run directory")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run in --out (its outputs are removed first)")
    parser.add_argument("--no-eval", action="store_true", help="skip the evaluation on the test subset")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bars or log lines on the terminal (the final metrics are still printed)")


def parse_overrides(items: list[str], flag: str = "--sim") -> dict:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (values parsed as YAML scalars)."""
    from wsl.utils.cli import parse_key_values

    return parse_key_values(items, flag)


def apply_data_arguments(config, args: argparse.Namespace) -> None:
    for key in ("dataset", "data_root", "layout", "streams", "test_videos", "skip_missing"):
        value = getattr(args, key, None)
        if value is not None:
            setattr(config.data, key, value)
    if args.sim:
        config.data.sim = {**config.data.sim, **parse_overrides(args.sim)}


def config_from_args(args: argparse.Namespace):
    """Resolved config: defaults < run directory's config (on --resume) < --config < flags."""
    from wsl_video.config import RunConfig, load_config, load_run_config
    from wsl_video.run import CONFIG_FILE

    config = RunConfig()
    saved = Path(args.out) / CONFIG_FILE
    if args.resume and saved.is_file():
        config = load_run_config(saved, base=config)
    if args.config:
        config = load_config(args.config, base=config)
    apply_data_arguments(config, args)
    if args.method is not None:
        config.model.method = args.method
    if args.aggregator is not None:
        config.model.aggregator = args.aggregator
    for key in ("iterations", "batch_size", "num_segments", "lr", "weight_decay", "sparsity_weight", "seed",
                "device"):
        value = getattr(args, key)
        if value is not None:
            setattr(config.train, key, value)
    if args.no_cache:
        config.train.cache_features = False
    return config.resolved()


def run(args: argparse.Namespace) -> int:
    from wsl_video.training import train

    config = config_from_args(args)
    metrics = train(config, args.out, resume=args.resume, overwrite=args.overwrite, evaluate=not args.no_eval,
                    progress=not args.quiet, echo=None if args.quiet else print)
    if metrics:
        from wsl_video.plot import format_metrics_table

        print(format_metrics_table({config.model.aggregator: metrics}))
    return 0
