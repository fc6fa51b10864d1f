"""``wsl-image tune``: choose a method's and aggregator's settings on held-out images (train-fullsup), with Optuna."""

from __future__ import annotations

import argparse

from wsl.utils.cli import add_device_argument, add_threads_argument
from wsl_image.config import DATASETS

HELP = ("choose training settings and the CAM threshold on held-out images (the metadata's val split, i.e. "
        "train-fullsup, or training images; Optuna TPE, pruning); writes best.yaml for train --config, trials.csv "
        "and study.png")
REQUIRES = ("optuna", "timm", "torchvision", "PIL", "cv2")  # optional modules, checked before the command runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from wsl.tuning.cli import add_tune_arguments, space_help
    from wsl_image.tune import DEFAULT_SPACE, IMAGE_KEYS

    add = parser.add_argument
    add("--dataset", choices=DATASETS, help="CUB (default), ILSVRC or OpenImages (the last two in the wsolevaluation "
                                            "metadata layout, docs/image-data.md)")
    add("--data-root", help="the CUB_200_2011 folder (images/, images.txt, ...); ILSVRC, OpenImages: the folder the "
                            "metadata's image ids are relative to")
    add("--metadata", help="wsolevaluation metadata folder (train/, val/; test/ is not read); its val split "
                           "(train-fullsup) is the default held-out set, the only one for ILSVRC and OpenImages")
    add("--mask-root", metavar="DIR", help="OpenImages: the folder the mask paths are relative to (default: "
                                           "--data-root)")
    add("--proxy-train", action="store_true", default=None,
        help="ILSVRC: train on train/image_ids_proxy.txt instead of train/image_ids.txt")
    add("--config", help="base YAML config (format of DIR/config.yaml): the settings the space leaves alone")
    add("--method", help="training method from the registry (default cam; `wsl-image methods` lists them); its "
                         "own options join the search space")
    add("--aggregator", help="aggregator name: maa (default), weighted_sum, mean, ... (any registered)")
    add("--backbone", help="timm model name (default resnet50)")
    add("--pretrained-path", help="initialise the backbone from a local timm weights file")
    add("--output-stride", type=int, choices=[8, 16, 32], help="backbone output stride through dilation")
    add("--image-size", type=int, help="input size S (default 224)")
    add("--batch-size", type=int, help="batch size (default 32)")
    add("--optimizer", choices=["sgd", "adamw"], help="optimiser (default sgd)")
    add_device_argument(parser, default=None)
    add_threads_argument(parser)
    add("--workers", type=int, help="data-loading worker processes (default 4)")
    add_tune_arguments(parser, "image", "default: the val split of --metadata, else a tenth of the training images")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = space_help(IMAGE_KEYS, DEFAULT_SPACE, [
        "a method adds the options it declares tunable (has: has_hide_prob; cutmix: cutmix_beta, cutmix_prob;",
        "adl: adl_drop_rate, adl_threshold; see docs/tuning.md); a --space file may set them for that method only.",
        "--held-out-list also takes a wsolevaluation split folder (e.g. metadata/CUB/val, CUBV2).",
        "held-out score: MaxBoxAccV2 (CUB, ILSVRC) or PxAP (OpenImages), the benchmark's selection metrics.",
        "cam_threshold is auto (read off the held-out MaxBoxAcc curve of the chosen models) or a number."])


def base_config(args: argparse.Namespace):
    """defaults < --config < flags."""
    from wsl_image.config import TrainConfig, load_config

    config = load_config(args.config) if args.config else TrainConfig()
    changes = {name: getattr(args, name) for name in ("dataset", "data_root", "metadata", "mask_root", "proxy_train",
                                                      "method", "aggregator", "backbone", "pretrained_path",
                                                      "image_size", "batch_size", "optimizer", "device", "workers")}
    if args.pretrained_path:
        changes["pretrained"] = True
    if args.output_stride:
        changes["backbone_kwargs"] = {**config.backbone_kwargs, "output_stride": args.output_stride}
    return config.replace(**changes)


def run(args: argparse.Namespace) -> int:
    from wsl.tuning.cli import print_summary, tune_options
    from wsl_image.tune import tune

    summary = tune(base_config(args), tune_options(args))
    print_summary(summary, args.out, "wsl-image", 100.0, "%")
    return 0
