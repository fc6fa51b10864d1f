"""``wsl-video localize``: actions in video files with a trained run (features extracted as the run's were)."""

from __future__ import annotations

import argparse

HELP = "localize actions in video files with a trained run; writes detections.json and one CAS plot per video"
REQUIRES = ("av", "cv2", "torchvision", "matplotlib")  # optional modules, checked before the command runs

_EPILOG = """\
The videos' features are extracted with the settings recorded in the run (data.extractor of its
config.yaml: the manifest of the features it was trained on). A run trained on features of unknown
origin (thumos14, activitynet) needs the extractor options they were made with, e.g. --backbone i3d
--rgb-weights rgb_imagenet.pt --flow-weights flow_imagenet.pt for the published I3D features. Writes
DIR/detections.json (ActivityNet results, with each video's class probabilities) and DIR/<video>.png
(the CAS of each detected class over time, with its detections). Videos that cannot be read are
reported and skipped (exit status 1 with --strict)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from wsl_video.commands.extract import add_extractor_arguments

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument("videos", nargs="*", metavar="VIDEO", help="video files (mp4, avi, mkv, webm, ...)")
    parser.add_argument("--video-list", metavar="FILE",
                        help="text file with one video path per line (relative paths: to the file's folder)")
    parser.add_argument("--run", required=True, metavar="DIR", help="run directory written by 'wsl-video train'")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for detections.json and the plots")
    parser.add_argument("--overwrite", action="store_true", help="replace the results of an earlier localize in --out")
    add_extractor_arguments(parser, recorded=True)
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, ... (default: auto)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N", help="snippets per forward pass (default: 8)")
    parser.add_argument("--workers", default="auto", metavar="N",
                        help="TV-L1 worker processes, 0 = in the main process (default: auto)")
    parser.add_argument("--no-plots", dest="plots", action="store_false", help="write detections.json only")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 if any video failed")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or per-video lines")


def _describe(video, limit: int = 3) -> str:
    if not video.detections:
        return "no detections"
    shown = ", ".join(f"{label} {start:.1f}-{end:.1f} s ({score:.2f})"
                      for label, start, end, score in video.detections[:limit])
    more = f", ... ({len(video.detections)} in all)" if len(video.detections) > limit else ""
    return shown + more


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from tqdm import tqdm

    from wsl_video.commands.extract import parse_workers, video_inputs
    from wsl_video.detections import write_detections
    from wsl_video.features.decoding import VideoError
    from wsl_video.localize import EXTRACTOR_OPTIONS, VideoLocalizer, localization_settings

    # ------------------------------------------------------------ inputs (fail before any work)
    stems = video_inputs(args)
    if not Path(args.run).is_dir():
        raise FileNotFoundError(f"run directory not found: {args.run}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder")
    targets = [out / "detections.json"] + ([out / f"{stem}.png" for stem in stems] if args.plots else [])
    existing = [path for path in targets if path.exists()]
    if existing and not args.overwrite:
        raise ValueError(f"{existing[0]} exists (an earlier localize?): pass --overwrite to replace it, "
                         "or another --out")
    options = {key: getattr(args, key) for key in EXTRACTOR_OPTIONS}
    weights = {"rgb": args.rgb_weights, "flow": args.flow_weights, "raft": args.raft_weights}
    settings = localization_settings(args.run, options, weights)
    workers = parse_workers(str(args.workers)) if settings.flow_method == "tvl1" else 0

    def say(message: str) -> None:
        if not args.quiet:
            tqdm.write(message)

    # ------------------------------------------------------------ localization
    results, scores, failed = {}, {}, []
    out.mkdir(parents=True, exist_ok=True)
    with VideoLocalizer(args.run, settings, device=args.device, batch_size=args.batch_size,
                        workers=workers) as localizer:
        overall = tqdm(stems.items(), desc="videos", unit="video", disable=args.quiet, position=0)
        for stem, path in overall:
            bar = tqdm(desc=stem[:30], unit="snippet", leave=False, disable=args.quiet, position=1)
            try:
                video = localizer.localize(path, progress=bar.update)
            except VideoError as error:  # missing, undecodable, no video stream, too short
                failed.append(stem)
                message = str(error)
                prefix = f"{path}: "
                tqdm.write(f"wsl-video localize: failed {path}: "
                           f"{message[len(prefix):] if message.startswith(prefix) else message}", file=sys.stderr)
                continue
            finally:
                bar.close()
            results[stem] = video.results()
            scores[stem] = video.scores
            if args.plots:
                localizer.plot(video, out / f"{stem}.png")
            say(f"{path.name}: {_describe(video)}")
        overall.close()
    if not results:
        print(f"wsl-video localize: no video could be read ({len(failed)} failed); nothing written", file=sys.stderr)
        return 1
    write_detections(out / "detections.json", results, video_scores=scores)
    count = sum(len(rows) for rows in results.values())
    plots = f" and {len(results)} plots" if args.plots else ""
    videos = f"{len(results)} video{'s' if len(results) != 1 else ''}"
    print(f"{count} detection{'s' if count != 1 else ''} in {videos} ({len(failed)} failed) -> "
          f"{out / 'detections.json'}{plots}")
    return 1 if failed and args.strict else 0
