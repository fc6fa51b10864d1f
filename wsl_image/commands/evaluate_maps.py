"""``wsl-image evaluate-maps``: score saved score maps as the WSOL benchmark's evaluation command does."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "score saved <image_id>.npy score maps: MaxBoxAcc and MaxBoxAccV2 (CUB, ILSVRC) or PxAP and PIoU (OpenImages)"
REQUIRES = ("cv2",)  # optional modules, checked before the command runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scoremaps", required=True, metavar="DIR",
                        help="folder with one <image_id>.npy per image (224x224, values in [0, 1])")
    parser.add_argument("--metadata", required=True, metavar="DIR",
                        help="wsolevaluation metadata root (DIR/<dataset>/<split>/), or the split folder itself")
    parser.add_argument("--mask-root", default=None, metavar="DIR",
                        help="OpenImages masks: the paths of localization.txt are relative to DIR/OpenImages "
                             "(or to DIR when it has no OpenImages folder)")
    parser.add_argument("--dataset", required=True, choices=("CUB", "ILSVRC", "OpenImages"))
    parser.add_argument("--split", default="test", choices=("val", "test"),
                        help="val (train-fullsup, for choosing settings) or test")
    parser.add_argument("--curve-interval", type=float, default=0.01,
                        help="distance between the score-map thresholds")
    parser.add_argument("--out", default=None, metavar="METRICS.json", help="also write the metrics here (fractions)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def run(args: argparse.Namespace) -> int:
    from wsl.utils.io import atomic_write_json
    from wsl_image.evaluate_maps import evaluate_score_maps

    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not args.overwrite:
        raise ValueError(f"{out} exists; pass --overwrite to replace it")
    metrics = evaluate_score_maps(args.scoremaps, args.metadata, args.dataset, args.split,
                                  mask_root=args.mask_root, curve_interval=args.curve_interval)
    if "pxap" in metrics:
        print(f"{args.dataset} {args.split}: PxAP {100 * metrics['pxap']:.2f}  PIoU {100 * metrics['piou']:.2f} "
              f"({metrics['num_images']} images)")
    else:
        per_iou = "  ".join(f"IoU {delta}: {100 * value:.2f}"
                            for delta, value in metrics["max_box_acc_v2_per_iou"].items())
        print(f"{args.dataset} {args.split}: MaxBoxAcc {100 * metrics['max_box_acc']:.2f}  "
              f"MaxBoxAccV2 {100 * metrics['max_box_acc_v2']:.2f} ({per_iou}; {metrics['num_images']} images)")
    if out is not None:
        atomic_write_json(out, {"dataset": args.dataset, "split": args.split, **metrics})
    return 0
