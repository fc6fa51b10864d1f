"""``wsl-image make-sim``: write cub-sim (CUB-200-2011 layout), ilsvrc-sim or openimages-sim (wsolevaluation
metadata layout)."""

from __future__ import annotations

import argparse

HELP = ("Write a small synthetic dataset in an exact layout: cub-sim (CUB-200-2011), ilsvrc-sim or openimages-sim "
        "(wsolevaluation metadata).")
REQUIRES = ("cv2",)  # optional modules, checked before the command runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--dataset", choices=("cub", "ilsvrc", "openimages"), default="cub",
        help="cub (default): CUB_200_2011/ and metadata/CUB/; ilsvrc: ILSVRC/ and metadata/ILSVRC/; openimages: "
        "OpenImages/ (images and masks) and metadata/OpenImages/")
    add("--out", required=True, help="output folder the dataset's folders are written in")
    add("--seed", type=int, default=0, help="random seed (default: 0)")
    add("--num-classes", type=int, help="number of classes, 2-36 (default: 5 for cub, 4 otherwise)")
    add("--train-per-class", type=int, help="training images per class (default: 48 for cub, 8 otherwise)")
    add("--test-per-class", type=int, help="test images per class (default: 24 for cub, 4 otherwise)")
    add(
        "--val-per-class",
        type=int,
        help="validation images per class (default: 6 for cub, in the wsolevaluation val split only, 0: none; "
        "2 otherwise, >= 1)",
    )
    add("--image-size", type=int, help="largest image side in pixels (default: 112 for cub, 96 otherwise)")
    add("--clutter", type=int, default=10, help="cub: background clutter elements per image (default: 10)")
    add("--body-cue", type=float, default=0.5,
        help="cub: strength in [0, 1] of the weak class cue in the body colour (default: 0.5)")
    add("--no-wsol-metadata", action="store_true", help="cub: do not write the wsolevaluation metadata")
    add("--quiet", action="store_true", help="no progress bar")


_SIZES = ("num_classes", "train_per_class", "test_per_class", "val_per_class", "image_size")


def run(args: argparse.Namespace) -> int:
    from wsl_image.sim import make_cub_sim

    sizes = {name: getattr(args, name) for name in _SIZES if getattr(args, name) is not None}
    if args.dataset != "cub":
        from wsl_image.wsol_sim import make_ilsvrc_sim, make_openimages_sim

        make = make_ilsvrc_sim if args.dataset == "ilsvrc" else make_openimages_sim
        root = make(args.out, seed=args.seed, **sizes)
        print(f"wrote {root}")
        print(f"wrote {root.parent / 'metadata' / root.name}")
        return 0
    root = make_cub_sim(
        args.out,
        seed=args.seed,
        **sizes,
        clutter=args.clutter,
        body_cue=args.body_cue,
        wsol_metadata=not args.no_wsol_metadata,
        progress=not args.quiet,
    )
    print(f"wrote {root}")
    if not args.no_wsol_metadata:
        print(f"wrote {root.parent / 'metadata' / 'CUB'}")
    return 0
