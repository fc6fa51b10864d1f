"""``wsl-image make-sim``: write the cub-sim dataset (CUB-200-2011 layout)."""

from __future__ import annotations

import argparse

HELP = "Write cub-sim, a small synthetic dataset in the exact CUB-200-2011 layout."
REQUIRES = ("cv2",)  # optional modules, checked before the command runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--out", required=True, help="output folder; CUB_200_2011/ and metadata/CUB/ are written in it")
    add("--seed", type=int, default=0, help="random seed (default: 0)")
    add("--num-classes", type=int, default=5, help="number of classes, 2-36 (default: 5)")
    add("--train-per-class", type=int, default=48, help="training images per class (default: 48)")
    add("--test-per-class", type=int, default=24, help="test images per class (default: 24)")
    add(
        "--val-per-class",
        type=int,
        default=6,
        help="validation images per class, in the wsolevaluation val split only (default: 6; 0: none)",
    )
    add("--image-size", type=int, default=112, help="largest image side in pixels (default: 112)")
    add("--clutter", type=int, default=10, help="background clutter elements per image (default: 10)")
    add("--body-cue", type=float, default=0.5,
        help="strength in [0, 1] of the weak class cue in the body colour (default: 0.5)")
    add("--no-wsol-metadata", action="store_true", help="do not write the wsolevaluation metadata")
    add("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from wsl_image.sim import make_cub_sim

    root = make_cub_sim(
        args.out,
        seed=args.seed,
        num_classes=args.num_classes,
        train_per_class=args.train_per_class,
        test_per_class=args.test_per_class,
        val_per_class=args.val_per_class,
        image_size=args.image_size,
        clutter=args.clutter,
        body_cue=args.body_cue,
        wsol_metadata=not args.no_wsol_metadata,
        progress=not args.quiet,
    )
    print(f"wrote {root}")
    if not args.no_wsol_metadata:
        print(f"wrote {root.parent / 'metadata' / 'CUB'}")
    return 0
