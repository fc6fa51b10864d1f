"""Wall time of whole ``wsl-video train`` runs of every method on THUMOS14-sized data, on this machine.

Writes a THUMOS14-sized dataset in the BaS-Net on-disk layout (``features/{train,test}/{rgb,flow}/<video>.npy``,
``gt.json``, split files): the THUMOS14 video names, labels and annotations (the validation videos for
training, the test videos for evaluation; annotation times scaled to the videos' new length), every video
``--snippets`` (750) snippets of random non-negative ``--dim``-d (1024) features per stream. Then, for each
method, runs ``python -m wsl_video train --method M`` with the method's default batch size and snippets per
video, on the CPU with ``--threads`` threads, evaluation on the test subset included, and reads the time of
every training iteration from the run's ``train.log``.

With ``--iterations`` left out each run trains the method's default iterations (5000): a measured full run.
With ``--iterations N`` the methods not named by ``--full`` (default: ``maan``, a run of about a minute) train
N iterations and their full run is extrapolated: startup and evaluation as measured, plus
the first iteration (reading the features) plus the default iterations less one at the steady per-iteration
time (iterations 2..N) plus the checkpoints the run did not write (each timed as one more write of its last
one); the table says which figure is which.

    python benchmarks/video_recipe_runs.py --iterations 3 --threads 2       # the docs' table (MAAN measured)
    python benchmarks/video_recipe_runs.py --methods wtalc --threads 2      # a measured full run of W-TALC
    python benchmarks/video_recipe_runs.py --quick                          # tiny sizes, for a smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

from wsl_video.config import RunConfig

METHODS = ("maan", "wtalc", "basnet", "co2net", "delu")
SECONDS_PER_SNIPPET = 16 / 25
_LOG_LINE = re.compile(r"iteration (\d+)/(\d+) loss \S+ \(([\d.]+) s\)")


def write_dataset(out: Path, train_videos: int, test_videos: int, snippets: int, dim: int, seed: int = 0) -> Path:
    """THUMOS14's videos (names, labels, annotations) with ``snippets`` random features each, BaS-Net layout."""
    from wsl_video.data.records import FeatureDataset
    from wsl_video.data.sim import open_sim
    from wsl_video.data.writer import write_layout

    duration = snippets * SECONDS_PER_SNIPPET
    subsets = {}
    for subset, count in (("train", train_videos), ("test", test_videos)):
        source = open_sim(subset, sim={"cache": False})
        videos = []
        for video in source.videos[:count]:
            scale = duration / float(video.duration or duration)
            annotations = [(start * scale, end * scale, label) for start, end, label in video.annotations]
            videos.append(dataclasses.replace(video, duration=duration, annotations=annotations,
                                              num_snippets=snippets, seconds_per_snippet=SECONDS_PER_SNIPPET))

        def loader(video, _subset=subset):
            rng = np.random.default_rng([seed, _subset == "test", int(re.sub(r"\D", "", video.name) or 0)])
            return {stream: np.maximum(rng.standard_normal((snippets, dim), dtype=np.float32) - 0.5, 0)
                    for stream in ("rgb", "flow")}

        subsets[subset] = FeatureDataset("thumos14", subset, source.classes, videos, loader,
                                         {"rgb": dim, "flow": dim}, ambiguous=source.ambiguous)
    return write_layout(subsets, out, "bas")


def iteration_times(log: Path) -> Dict[int, float]:
    """iteration -> seconds since the training loop started, from a run's ``train.log``."""
    times = {}
    for line in log.read_text().splitlines():
        found = _LOG_LINE.search(line)
        if found:
            times[int(found.group(1))] = float(found.group(3))
    return times


def run_method(method: str, data: Path, out: Path, iterations: int | None, threads: int,
               extra: List[str]) -> Dict[str, float]:
    """Train (and evaluate) one method; its wall time and its training loop's times."""
    settings = out.parent / f"{method}.yaml"  # a line in train.log every iteration
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text("train:\n  log_every: 1\n")
    command = [sys.executable, "-m", "wsl_video", "train", "--method", method, "--dataset", "thumos14",
               "--data-root", str(data), "--layout", "bas", "--device", "cpu", "--threads", str(threads),
               "--config", str(settings), "--out", str(out), "--quiet", *extra]
    if iterations is not None:
        command += ["--iterations", str(iterations)]
    tic = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    wall = time.perf_counter() - tic
    times = iteration_times(out / "train.log")
    done = max(times)
    steady = (times[done] - times[1]) / (done - 1) if done > 1 else times[1]
    tic = time.perf_counter()  # one more checkpoint write, as the run's last one
    torch.save(torch.load(out / "checkpoint.pt", weights_only=True), out / "checkpoint-copy.pt")
    saving = time.perf_counter() - tic
    return {"wall": wall, "loop": times[done], "first": times[1], "steady": steady, "done": done, "saving": saving}


def main(argv: List[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods to run")
    parser.add_argument("--iterations", type=int, default=None,
                        help="iterations to train (default: the method's default, a full run; fewer: extrapolated)")
    parser.add_argument("--full", default="maan", help="comma-separated methods that always train their default "
                        "iterations (a measured full run) whatever --iterations says")
    parser.add_argument("--videos", type=int, default=200, help="training videos")
    parser.add_argument("--test-videos", type=int, default=212, help="test videos (evaluated)")
    parser.add_argument("--snippets", type=int, default=750, help="snippets per video")
    parser.add_argument("--dim", type=int, default=1024, help="feature size per stream (RGB, flow)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of each run")
    parser.add_argument("--data", default=None, help="dataset folder (written when missing; default: temporary)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    args = parser.parse_args(argv)
    methods = [name.strip() for name in args.methods.split(",") if name.strip()]
    if not methods or set(methods) - set(METHODS):
        parser.error(f"--methods: choose among {', '.join(METHODS)}, got {args.methods!r}")
    extra: List[str] = []
    if args.quick:
        args.videos, args.test_videos, args.snippets, args.dim = 12, 4, 40, 8
        args.iterations = args.iterations or 3
        extra = ["--batch-size", "4"]
    with tempfile.TemporaryDirectory(prefix="wsl-recipe-runs-") as scratch:
        data = Path(args.data) if args.data else Path(scratch) / "data"
        tic = time.perf_counter()
        if not (data / "gt.json").is_file():
            write_dataset(data, args.videos, args.test_videos, args.snippets, args.dim)
        written = time.perf_counter() - tic
        rows = []
        for method in methods:
            config = RunConfig()
            config.model.method = method
            config = config.resolved()
            default = config.train.iterations
            iterations = None if method in args.full.split(",") and not args.quick else args.iterations
            result = run_method(method, data, Path(scratch) / "runs" / method, iterations, args.threads, extra)
            measured = result["done"] >= default
            saves = -(-default // config.train.checkpoint_every) - 1  # the run wrote one of them
            full = result["wall"] if measured else (result["wall"] - result["loop"] + result["first"]
                                                    + (default - 1) * result["steady"] + saves * result["saving"])
            batch = extra[1] if extra else config.train.batch_size
            rows.append(f"| {method} | {batch} | {config.train.num_segments} | {result['done']} | "
                        f"{result['steady']:.3f} | {result['wall'] - result['loop']:.0f} | {default} | "
                        f"{full / 60:.1f} | {'measured' if measured else 'extrapolated'} |")
            shutil.rmtree(Path(scratch) / "runs" / method)
    lines = [f"Whole `wsl-video train` runs: {args.videos} training videos, {args.test_videos} test videos, "
             f"{args.snippets} snippets x {args.dim}-d per stream, CPU, {args.threads} thread(s) "
             f"(dataset written in {written:.0f} s)", "",
             "| method | batch | snippets per video | iterations run | s per iteration | startup + evaluation (s) "
             "| default iterations | full run (min) | full run is |", "|---|---|---|---|---|---|---|---|---|", *rows]
    table = "\n".join(lines)
    print(table)
    return table


if __name__ == "__main__":
    main()
