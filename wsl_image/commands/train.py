"""``wsl-image train``: train the CAM model (MAAN / weighted-CAM / CAM) on CUB-200-2011."""

from __future__ import annotations

import argparse

from wsl.utils.cli import add_device_argument, add_threads_argument
from wsl_image.config import DATASETS

HELP = ("train a CAM model with a chosen aggregator on CUB-200-2011, ILSVRC or OpenImages "
        "(torchrun for multi-GPU / multi-node)")
REQUIRES = ("timm", "torchvision", "PIL", "cv2")  # optional modules, checked before the command runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=DATASETS,
                        help="CUB (default), ILSVRC or OpenImages (the last two in the wsolevaluation metadata layout, "
                        "docs/image-data.md)")
    parser.add_argument("--data-root", help="the CUB_200_2011 folder (images/, images.txt, bounding_boxes.txt, ...); "
                        "ILSVRC, OpenImages: the folder the metadata's image ids are relative to")
    parser.add_argument(
        "--metadata",
        help="wsolevaluation metadata folder (train/, val/, test/ with image_ids.txt, "
        "class_labels.txt, localization.txt); its val split chooses the CAM threshold",
    )
    parser.add_argument("--mask-root", metavar="DIR",
                        help="OpenImages: the folder the mask paths are relative to (default: --data-root)")
    parser.add_argument("--proxy-train", action="store_true", default=None,
                        help="ILSVRC: train on train/image_ids_proxy.txt instead of train/image_ids.txt")
    parser.add_argument(
        "--val-per-class",
        type=int,
        help="hold out N training images per class as a val split that chooses the CAM threshold "
        "(for data without one, e.g. the official CUB layout; default 0: none)",
    )
    parser.add_argument(
        "--out", required=True, help="run folder: config.yaml, checkpoint.pt, history.json, metrics.json"
    )
    parser.add_argument(
        "--config",
        help="YAML file with options (the format of DIR/config.yaml; `wsl-image config` prints the defaults); "
        "flags override it",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the run in --out (its outputs are removed first)"
    )
    parser.add_argument("--backbone", help="timm model name (default resnet50)")
    pretrained = parser.add_mutually_exclusive_group()
    pretrained.add_argument(
        "--pretrained",
        action="store_true",
        default=None,
        help="initialise the backbone with timm's pretrained weights (downloads from the hub)",
    )
    pretrained.add_argument("--pretrained-path", help="initialise the backbone from a local timm weights file")
    parser.add_argument(
        "--output-stride",
        type=int,
        choices=[8, 16, 32],
        help="backbone output stride through dilation (timm CNNs such as ResNets; default: the model's own)",
    )
    parser.add_argument(
        "--grid",
        choices=["4", "7", "none"],
        help="pool the feature map to 4x4 or 7x7 before aggregation (none: native; default 7)",
    )
    parser.add_argument("--method", help="training method from the registry (default cam; `wsl-image methods` lists "
                        "them)")
    parser.add_argument("--aggregator", help="aggregator name: maa (default), weighted_sum, mean, ... (any registered)")
    parser.add_argument("--image-size", type=int, help="input size S (images are S x S; default 224)")
    parser.add_argument("--epochs", type=int, help="number of epochs (default 30)")
    parser.add_argument("--batch-size", type=int, help="batch size per process (default 32)")
    parser.add_argument("--lr", type=float, help="backbone learning rate (default 0.01; head: lr x head-lr-scale)")
    parser.add_argument("--head-lr-scale", type=float, help="learning-rate multiplier of the new layers (default 10)")
    parser.add_argument("--optimizer", choices=["sgd", "adamw"], help="optimiser (default sgd, momentum 0.9)")
    parser.add_argument("--weight-decay", type=float, help="weight decay (default 1e-4)")
    parser.add_argument(
        "--scheduler", choices=["cosine", "step", "none"], help="learning-rate schedule (default cosine)"
    )
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    add_device_argument(parser, default=None)
    add_threads_argument(parser)
    parser.add_argument("--workers", type=int, help="data-loading worker processes (default 4)")
    parser.add_argument("--cam-threshold", type=float, help="fixed CAM threshold for top-1/top-5/GT-known loc (0.2)")
    parser.add_argument(
        "--no-amp",
        dest="amp",
        action="store_const",
        const=False,
        default=None,
        help="disable mixed precision on CUDA",
    )
    parser.add_argument(
        "--cam-score",
        choices=["auto", "linear", "sigmoid"],
        help="class score of the localization map: linear CAM, sigmoid CAS (paper Eq. 14) or auto (default)",
    )
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bars or log lines on the terminal (the final metrics are still printed)")


OPTION_NAMES = (
    "dataset",
    "data_root",
    "metadata",
    "mask_root",
    "proxy_train",
    "backbone",
    "pretrained",
    "pretrained_path",
    "method",
    "grid",
    "aggregator",
    "image_size",
    "epochs",
    "batch_size",
    "lr",
    "head_lr_scale",
    "optimizer",
    "weight_decay",
    "scheduler",
    "seed",
    "device",
    "workers",
    "cam_threshold",
    "cam_score",
    "val_per_class",
    "amp",
    "out",
)


def resolve_config(args: argparse.Namespace):
    """Defaults < the run's config.yaml (``--resume``) or ``--config`` < explicit flags."""
    from pathlib import Path

    from wsl_image.config import TrainConfig, load_config

    if args.resume and (Path(args.out) / "config.yaml").is_file():
        config = load_config(Path(args.out) / "config.yaml")
    elif args.config:
        config = load_config(args.config)
    else:
        config = TrainConfig()
    changes = {name: getattr(args, name, None) for name in OPTION_NAMES}
    if changes.get("pretrained_path"):
        changes["pretrained"] = True
    if args.output_stride:
        changes["backbone_kwargs"] = {**config.backbone_kwargs, "output_stride": args.output_stride}
    return config.replace(**changes)


def run(args: argparse.Namespace) -> int:
    from wsl.aggregators import check_aggregator_options
    from wsl_image.methods import get_method
    from wsl_image.training import train

    config = resolve_config(args)
    if config.epochs < 1:  # an untrained network is not a result
        raise ValueError(f"epochs must be a positive integer, got {config.epochs}")
    if get_method(config.method).takes_aggregator:  # fail fast on an unknown method
        check_aggregator_options(config.aggregator, config.aggregator_kwargs)  # fail fast on a bad name
    metrics = train(config, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet,
                    log=_silent if args.quiet else print)
    if metrics and args.quiet:  # otherwise the log printed it
        from wsl_image.evaluate import format_metrics

        print(format_metrics(metrics))
    return 0


def _silent(message: str) -> None:
    pass
