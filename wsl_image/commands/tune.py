"""``wsl-image tune``: choose an aggregator's settings on held-out training images, with Optuna."""

from __future__ import annotations

import argparse

HELP = ("choose training settings and the CAM threshold on held-out images (the metadata's val split or "
        "training images; Optuna TPE, pruning); writes best.yaml for train --config, trials.csv and study.png")
REQUIRES = ("optuna", "timm", "torchvision", "PIL", "cv2")  # optional modules, checked before the command runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from wsl.tuning.cli import add_tune_arguments, space_help
    from wsl_image.tune import DEFAULT_SPACE, IMAGE_KEYS

    add = parser.add_argument
    add("--data-root", help="the CUB_200_2011 folder (images/, images.txt, ...)")
    add("--metadata", help="wsolevaluation metadata folder (train/, val/; test/ is not read); its val split is "
                           "the default held-out set")
    add("--config", help="base YAML config (format of DIR/config.yaml): the settings the space leaves alone")
    add("--aggregator", help="aggregator name: maa (default), weighted_sum, mean, ... (any registered)")
    add("--backbone", help="timm model name (default resnet50)")
    add("--pretrained-path", help="initialise the backbone from a local timm weights file")
    add("--output-stride", type=int, choices=[8, 16, 32], help="backbone output stride through dilation")
    add("--image-size", type=int, help="input size S (default 224)")
    add("--batch-size", type=int, help="batch size (default 32)")
    add("--optimizer", choices=["sgd", "adamw"], help="optimiser (default sgd)")
    add("--device", choices=["auto", "cpu", "cuda"], help="device (default auto)")
    add("--workers", type=int, help="data-loading worker processes (default 4)")
    add_tune_arguments(parser, "image", "default: the val split of --metadata, else a tenth of the training images")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = space_help(IMAGE_KEYS, DEFAULT_SPACE, [
        "--held-out-list also takes a wsolevaluation split folder (e.g. metadata/CUB/val, CUBV2).",
        "cam_threshold is auto (read off the held-out MaxBoxAcc curve of the chosen models) or a number."])


def base_config(args: argparse.Namespace):
    """defaults < --config < flags."""
    from wsl_image.config import TrainConfig, load_config

    config = load_config(args.config) if args.config else TrainConfig()
    changes = {name: getattr(args, name) for name in ("data_root", "metadata", "aggregator", "backbone",
                                                      "pretrained_path", "image_size", "batch_size", "optimizer",
                                                      "device", "workers")}
    if args.pretrained_path:
        changes["pretrained"] = True
    if args.output_stride:
        changes["backbone_kwargs"] = {**config.backbone_kwargs, "output_stride": args.output_stride}
    return config.replace(**changes)


def run(args: argparse.Namespace) -> int:
    from wsl.tuning.cli import print_summary, tune_options
    from wsl_image.tune import tune

    summary = tune(base_config(args), tune_options(args))
    if not args.quiet:
        print_summary(summary, args.out, "wsl-image", 100.0, "%")
    return 0
