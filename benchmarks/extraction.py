"""Speed of feature extraction from video files: decoding, optical flow, I3D, and a whole video.

Every stage is timed on the standard geometry (frames resampled to 25 fps, shorter side 256, centre
crop 224, 16-frame snippets) and reported as a throughput and as a multiple of real time (seconds of
video handled per second of computation; a 16-frame snippet is 0.64 s of video):

- decode: PyAV decoding, resampling to 25 fps and scaling to the 256-pixel shorter side (frames/s);
- TV-L1 and RAFT (large and small, 12 iterations) between consecutive scaled frames (pairs/s; one
  process, one OpenCV thread for TV-L1: ``--workers N`` processes scale it by about N). TV-L1's cost
  depends on the motion (it stops when it converges): its pairs are spread over the excerpt below;
- I3D RGB and flow forward passes on 16 x 224 x 224 clips, batches of ``--batch-size`` (snippets/s);
- the whole of ``FeatureExtractor.extract`` on an excerpt of the video, with the share of its time
  spent outside the two networks (decoding, flow, cropping and scaling, copies).

Networks run with random weights (the speed is the same as with the real checkpoints). The input is
the real clip ``../shared/data/videos/v_GGSY1Qvo990.mp4`` (320x240, 19.62 fps) when present, else a
synthetic 320x240 25 fps video. On one CPU thread with TV-L1 in the main process, times are the
process's CPU time, so other jobs on a shared machine do not change them; otherwise wall-clock time.

    OMP_NUM_THREADS=1 python benchmarks/extraction.py --threads 1     # the table in docs/benchmarks.md
    python benchmarks/extraction.py --device cuda --workers 8
    python benchmarks/extraction.py --quick                           # tiny sizes, for a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wsl_video.features.decoding import VideoDecoder  # noqa: E402
from wsl_video.features.extraction import FeatureExtractor  # noqa: E402
from wsl_video.features.flow import RaftFlow, TVL1Flow  # noqa: E402
from wsl_video.features.i3d import load_i3d  # noqa: E402
from wsl_video.features.settings import ExtractionSettings  # noqa: E402

REAL_CLIP = next((p for p in (ROOT.parent / "shared" / "data" / "videos" / "v_GGSY1Qvo990.mp4",
                              Path("/work/shared/data/videos/v_GGSY1Qvo990.mp4")) if p.is_file()),
                 ROOT.parent / "shared" / "data" / "videos" / "v_GGSY1Qvo990.mp4")


def _synthetic_video(path: Path, seconds: float, width: int = 320, height: int = 240) -> Path:
    import av

    rng = np.random.default_rng(0)
    big = (rng.random((height + 64, width + 400, 3)) * 255).astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for k in range(int(seconds * 25)):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(big[32:32 + height, 2 * k:2 * k + width]),
                                               format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCK = time.perf_counter  # process CPU time in one-thread CPU runs (see main)


def _median_time(fn, repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        _sync(device)
        start = CLOCK()
        fn()
        _sync(device)
        times.append(CLOCK() - start)
    return statistics.median(times)


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch and OpenCV threads (default: torch's)")
    parser.add_argument("--batch-size", type=int, default=4, help="snippets per I3D forward pass (default: 4)")
    parser.add_argument("--pairs", type=int, default=8, help="frame pairs timed per flow method (default: 8)")
    parser.add_argument("--workers", type=int, default=0,
                        help="TV-L1 processes in the whole-video run (default: 0, in the main process)")
    parser.add_argument("--seconds", type=float, default=5.12,
                        help="excerpt extracted end to end, in seconds (default: 5.12, 8 snippets)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per stage, median reported (default: 3)")
    parser.add_argument("--video", default=None, help="video file (default: the real 19.62 fps clip if present)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, no RAFT-large, one repeat (smoke run)")
    args = parser.parse_args(argv)

    import cv2

    global CLOCK
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    # On one CPU thread with TV-L1 in this process, the process's CPU time is the work itself, whatever
    # else runs on the machine; otherwise wall-clock time.
    cpu_clock = device.type == "cpu" and torch.get_num_threads() == 1 and args.workers == 0
    CLOCK = time.process_time if cpu_clock else time.perf_counter
    resize, clip, snippet = ("short40_crop32", 32, 8) if args.quick else ("short256_crop224", 224, 16)
    pairs = 2 if args.quick else args.pairs
    repeats = 1 if args.quick else args.repeats
    seconds = 0.64 if args.quick else args.seconds
    scratch = tempfile.TemporaryDirectory()
    if args.video:
        video = Path(args.video)
    elif REAL_CLIP.is_file() and not args.quick:
        video = REAL_CLIP
    else:
        video = _synthetic_video(Path(scratch.name) / "synthetic.mp4", 2.0 if args.quick else 20.0)

    rows: list[tuple[str, str, float, float]] = []  # stage, unit, rate, x real time

    # decoding
    def decode():
        return sum(len(chunk) for chunk in VideoDecoder(video, 25, resize).chunks(64))

    frames_decoded = decode()
    rate = frames_decoded / _median_time(decode, repeats, device)
    rows.append(("decode + resample + scale", "frames/s", rate, rate / 25))

    excerpt = np.concatenate(list(VideoDecoder(video, 25, resize, limit_seconds=seconds).chunks()))
    frames = excerpt[:pairs + 1]
    height, width = frames.shape[1:3]

    # optical flow. TV-L1 stops iterating when it converges, so its cost depends on the motion: its pairs are
    # spread over the whole excerpt that is extracted below. RAFT's cost does not: consecutive frames.
    starts = np.linspace(0, len(excerpt) - 2, pairs).round().astype(int)
    opencv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # as in each worker process
    with TVL1Flow(workers=0) as tvl1:
        rate = pairs / _median_time(lambda: [tvl1(excerpt[j:j + 2]) for j in starts], repeats, torch.device("cpu"))
    cv2.setNumThreads(opencv_threads)
    rows.append((f"TV-L1 ({width}x{height}, 1 process)", "pairs/s", rate, rate / 25))
    iterations = 1 if args.quick else 12
    for model in ("raft_small",) if args.quick else ("raft_large", "raft_small"):
        raft = RaftFlow(model, None, iterations=iterations, device=device, batch_size=pairs)
        raft(frames[:2])  # warm-up
        rate = pairs / _median_time(lambda raft=raft: raft(frames), repeats, device)
        rows.append((f"RAFT {model.split('_')[1]} ({width}x{height}, {iterations} iterations, batch {pairs})",
                     "pairs/s", rate, rate / 25))

    # I3D
    for modality, channels in (("rgb", 3), ("flow", 2)):
        net = load_i3d(modality).to(device)
        clips = torch.rand(args.batch_size, channels, snippet, clip, clip, device=device) * 2 - 1
        with torch.inference_mode():
            net(clips[:1])  # warm-up

            def forward(net=net, clips=clips):
                with torch.inference_mode():
                    net(clips)

            rate = args.batch_size / _median_time(forward, repeats, device)
        rows.append((f"I3D {modality} ({snippet}x{clip}x{clip}, batch {args.batch_size})", "snippets/s", rate,
                     rate * snippet / 25))

    # a whole excerpt, end to end
    settings = ExtractionSettings(random_weights=True, resize=resize, snippet=snippet)
    with FeatureExtractor(settings, device=device, batch_size=args.batch_size, workers=args.workers) as extractor:
        spent = {"network": 0.0, "flow": 0.0}

        def timed(part, fn):
            def wrapper(*a):
                _sync(device)
                start = CLOCK()
                out = fn(*a)
                _sync(device)
                spent[part] += CLOCK() - start
                return out
            return wrapper

        extractor._encode = timed("network", extractor._encode)
        extractor._flow.submit = timed("flow", extractor._flow.submit)  # with workers: only the hand-over
        if not args.quick:
            extractor.extract(video, limit_seconds=0.64)  # warm-up (and the worker processes)
        spent.update(network=0.0, flow=0.0)
        start = CLOCK()
        result = extractor.extract(video, limit_seconds=seconds)
        total = CLOCK() - start
    video_seconds = result.num_snippets * snippet / 25
    outside = 1 - spent["network"] / total
    rows.append((f"whole excerpt ({result.num_snippets} snippets, TV-L1, {args.workers} workers)", "snippets/s",
                 result.num_snippets / total, video_seconds / total))

    threads = torch.get_num_threads()
    lines = [
        f"device {device}, torch threads {threads}, OpenCV threads 1 for TV-L1 (one process), video {video.name}, "
        f"{'quick sizes' if args.quick else 'standard sizes'}, times: "
        f"{'process CPU time' if cpu_clock else 'wall clock'}, median of {repeats}",
        "",
        "| stage | rate | x real time |",
        "|---|---|---|",
    ]
    lines += [f"| {stage} | {rate:.2f} {unit} | {rt:.3f} |" for stage, unit, rate, rt in rows]
    other = total - spent["network"] - spent["flow"]
    lines += ["", f"whole excerpt: {total:.1f} s for {video_seconds:.2f} s of video; "
                  f"{100 * outside:.0f} % of the time outside the networks: optical flow "
                  f"{100 * spent['flow'] / total:.0f} %, decoding, cropping, scaling and copies "
                  f"{100 * other / total:.0f} %; networks {100 * spent['network'] / total:.0f} %"]
    table = "\n".join(lines)
    print(table)
    scratch.cleanup()
    return table


if __name__ == "__main__":
    main()
