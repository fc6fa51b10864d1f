"""``wsl-video make-sim``: write the thumos14-sim features to disk in a THUMOS14 layout."""

from __future__ import annotations

import argparse

HELP = "write the simulated THUMOS14 features (thumos14-sim) to disk in the W-TALC, BaS-Net or ACM-Net layout"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layout", required=True, choices=("wtalc", "bas", "acm"), help="on-disk layout")
    parser.add_argument("--out", required=True, help="destination folder (must be empty or absent)")
    parser.add_argument("--seed", type=int, default=0, help="simulation seed (default: 0)")
    parser.add_argument("--feature-dim", type=int, default=None,
                        help="feature size per stream (default: the simulator's, 64)")
    parser.add_argument("--videos", type=int, default=None,
                        help="write only the first N videos of each subset (default: all 200 + 212)")
    parser.add_argument("--test-videos", type=int, default=212, choices=(212, 210),
                        help="THUMOS14 test videos to write (default: 212)")
    parser.add_argument("--sim", action="append", default=[], metavar="KEY=VALUE",
                        help="simulator override (repeatable), e.g. --sim strong_level=1.2 (see docs/video-data.md)")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from wsl_video.data import open_dataset
    from wsl_video.data.writer import write_layout

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise ValueError(f"{out}: folder is not empty (pass --overwrite to write into it)")
    from wsl_video.commands.train import parse_overrides

    sim = {**parse_overrides(args.sim), "cache": False}
    if args.feature_dim is not None:
        sim["feature_dim"] = args.feature_dim
    if args.videos is not None:
        sim["videos"] = args.videos
    subsets = {
        subset: open_dataset("thumos14-sim", subset, seed=args.seed, test_videos=args.test_videos, sim=sim)
        for subset in ("train", "test")
    }
    write_layout(subsets, out, args.layout, progress=tqdm)
    counts = ", ".join(f"{len(ds)} {subset}" for subset, ds in subsets.items())
    dims = subsets["train"].feature_dims
    print(f"wrote thumos14-sim ({counts} videos, rgb {dims['rgb']} + flow {dims['flow']} dims, "
          f"seed {args.seed}) to {out} in the {args.layout} layout")
    return 0
