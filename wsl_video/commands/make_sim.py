"""``wsl-video make-sim``: write the thumos14-sim features to disk in a THUMOS14 layout or the custom layout."""

from __future__ import annotations

import argparse

HELP = ("write the simulated THUMOS14 features (thumos14-sim) to disk in the W-TALC, BaS-Net or ACM-Net layout, "
        "or as a custom dataset (annotations.json, features/, manifest.json)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layout", required=True, choices=("wtalc", "bas", "acm", "custom"),
                        help="on-disk layout; custom: the layout of 'wsl-video extract' plus annotations.json, "
                        "read by --dataset custom")
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
    parser.add_argument("--rgb-only", action="store_true",
                        help="custom layout: write only features/rgb/, as an RGB-only backbone does")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from wsl_video.data import open_dataset
    from wsl_video.data.sim import sim_extractor
    from wsl_video.data.writer import write_custom, write_layout

    out = Path(args.out)
    if args.rgb_only and args.layout != "custom":
        raise ValueError(f"--rgb-only applies to --layout custom only, not to {args.layout}")
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
    dims = subsets["train"].feature_dims
    if args.layout == "custom":
        streams = ("rgb",) if args.rgb_only else ("rgb", "flow")
        write_custom(subsets, out, sim_extractor(args.seed, sim, streams), progress=tqdm)
        described = " + ".join(f"{stream} {dims[stream]}" for stream in streams)
    else:
        write_layout(subsets, out, args.layout, progress=tqdm)
        described = f"rgb {dims['rgb']} + flow {dims['flow']}"
    counts = ", ".join(f"{len(ds)} {subset}" for subset, ds in subsets.items())
    print(f"wrote thumos14-sim ({counts} videos, {described} dims, seed {args.seed}) to {out} "
          f"in the {args.layout} layout")
    return 0
