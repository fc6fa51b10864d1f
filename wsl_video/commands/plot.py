"""``wsl-video plot``: class activation sequences of one video for one or more runs (paper Fig. 5)."""

from __future__ import annotations

import argparse

from wsl.utils.cli import add_device_argument

HELP = "plot the class activation sequences of one video for one or more runs against the ground truth"
REQUIRES = ("matplotlib",)  # optional modules, checked before the command runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", nargs="+", required=True, metavar="DIR",
                        help="run directories, one row each, labelled with their pooling (and method)")
    parser.add_argument("--video", required=True, help="video name, e.g. video_test_0000004")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--class", dest="class_name", default=None,
                        help="class to plot (default: the video's first ground-truth class)")
    parser.add_argument("--subset", choices=("train", "test"), default="test",
                        help="subset holding the video")
    parser.add_argument("--data-root", default=None, help="features folder (default: the runs' data root)")
    add_device_argument(parser)


def run(args: argparse.Namespace) -> int:
    from wsl_video.plot import plot_runs

    chosen = plot_runs(args.run, args.video, args.out, class_name=args.class_name, subset=args.subset,
                       data_root=args.data_root, device=args.device)
    print(f"{args.video} ({chosen}) -> {args.out}")
    return 0
