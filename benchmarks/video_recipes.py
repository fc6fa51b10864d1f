"""Time of one training iteration of every ``wsl-video`` method, as ratios to the MAAN recipe's at the same batch.

One iteration is what the training loop does: the method's ``sample_batch`` (from features already in
memory), the forward pass, the method's loss, the backward pass and the Adam step. Every recipe runs with its
own defaults (``wtalc``: joint vector, whole videos cropped to at most 750 snippets; ``basnet``: joint vector,
750 sampled snippets; ``co2net``, ``delu``: RGB and flow streams, 500 and 320 sampled snippets) on the same
synthetic videos (THUMOS14-like lengths, I3D-sized features: 1024 per stream, 2048 joint) at the same batch
size. Each recipe gets two ratios:

- ``same snippets``: to MAAN drawing as many snippets per video as the recipe (``num_segments`` = the recipe's
  T; MAAN's own network and loss, RGB and flow streams): the recipe's own cost, with the video length equal;
- ``MAAN defaults``: to MAAN at its own default of 20 snippets per video: the cost of choosing the recipe
  instead of MAAN as published.

All variants alternate iteration by iteration after one warm-up iteration each; the first table gives medians,
the second splits the median iteration of each method into its steps (batch draw, forward, loss, backward, Adam
step; medians of each step, so they need not add up exactly).

    python benchmarks/video_recipes.py --batch-size 2 --threads 1 --repeats 3   # the docs' table (CPU)
    python benchmarks/video_recipes.py --device cuda
    python benchmarks/video_recipes.py --quick            # tiny sizes, for a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Dict, List

import numpy as np
import torch

from wsl_video.config import RunConfig
from wsl_video.methods import get_method

RECIPES = ("wtalc", "basnet", "co2net", "delu")
MAAN_SNIPPETS = 20


def _videos(count: int, dim: int, lengths: tuple[int, int], seed: int) -> List[Dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    videos = []
    for _ in range(count):
        rgb = rng.random((int(rng.integers(*lengths)), dim // 2), dtype=np.float32)
        flow = rng.random(rgb.shape, dtype=np.float32)
        videos.append({"rgb": rgb, "flow": flow, "joint": np.concatenate([rgb, flow], axis=1)})
    return videos


def _recipe(name: str, batch_size: int, num_segments: int | None, num_classes: int, dim: int, device):
    """(config, method, streams, model, optimizer) of ``name`` at its defaults but batch size (and T if given)."""
    config = RunConfig()
    config.model.method = name
    config.train.batch_size = batch_size
    config.train.num_segments = num_segments
    config = config.resolved()
    method = get_method(name)
    streams = ("joint",) if config.data.streams == "joint" else ("rgb", "flow")
    dims = {stream: dim if stream == "joint" else dim // 2 for stream in streams}
    model = method.build_model(config, dims, num_classes).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay)
    return config, method, streams, model, optimizer


def _mark(marks: List[float], device: torch.device) -> None:
    """Append the time now to ``marks``, once the device has finished its queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    marks.append(time.perf_counter())


def main(argv: List[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dim", type=int, default=2048, help="joint feature size (half per stream)")
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5, help="timed iterations per variant (after one warm-up)")
    parser.add_argument("--methods", default=",".join(RECIPES), help="comma-separated recipes to time")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    args = parser.parse_args(argv)
    recipes = [name.strip() for name in args.methods.split(",") if name.strip()]
    unknown = sorted(set(recipes) - set(RECIPES))
    if unknown or not recipes:
        parser.error(f"--methods: choose among {', '.join(RECIPES)}, got {args.methods!r}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    lengths, segments = (200, 1500), None
    if args.quick:
        args.batch_size, args.dim, args.videos, args.repeats = 4, 16, 8, 1
        lengths, segments = (20, 60), 32
    device = torch.device(args.device)
    torch.manual_seed(0)
    videos = _videos(args.videos, args.dim, lengths, seed=0)
    labels = np.zeros((args.videos, args.classes), np.float32)
    labels[np.arange(args.videos), np.arange(args.videos) % args.classes] = 1
    target = torch.as_tensor(labels, device=device)

    variants = {name: _recipe(name, args.batch_size, segments, args.classes, args.dim, device) for name in recipes}
    snippets = {name: variants[name][0].train.num_segments for name in recipes}
    for length in sorted(set(snippets.values()) | {MAAN_SNIPPETS}):
        variants[f"maan@{length}"] = _recipe("maan", args.batch_size, length, args.classes, args.dim, device)
    rngs = {key: np.random.default_rng(1) for key in variants}
    times: Dict[str, List[float]] = {key: [] for key in variants}
    steps: Dict[str, List[List[float]]] = {key: [] for key in variants}
    for repeat in range(args.repeats + 1):
        for key, (config, method, streams, model, optimizer) in variants.items():
            marks: List[float] = []
            _mark(marks, device)
            batch = method.sample_batch(lambda i: videos[i], labels, streams, config, rngs[key], device)
            _mark(marks, device)
            outputs = model(batch.features) if batch.mask is None else model(batch.features, batch.mask)
            _mark(marks, device)
            loss = method.training_loss(outputs, target[torch.as_tensor(batch.videos, device=device)], config, 0)
            _mark(marks, device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            _mark(marks, device)
            optimizer.step()
            _mark(marks, device)
            if repeat:  # the first iteration warms up
                times[key].append(marks[-1] - marks[0])
                steps[key].append([b - a for a, b in zip(marks, marks[1:])])

    median = {key: statistics.median(values) for key, values in times.items()}
    base = median[f"maan@{MAAN_SNIPPETS}"]
    threads = f", {torch.get_num_threads()} thread(s)" if device.type == "cpu" else ""
    lines = [f"One training iteration, batch {args.batch_size}, {args.dim}-d features, {device.type}{threads}, "
             f"median of {args.repeats}", "",
             "| method | snippets per video | time (ms) | maan, same snippets (ms) | ratio, same snippets "
             "| ratio to maan at its defaults |", "|---|---|---|---|---|---|",
             f"| maan | {MAAN_SNIPPETS} | {1000 * base:.1f} | {1000 * base:.1f} | 1.00 | 1.00 |"]
    for name in recipes:
        count = snippets[name]
        same = median[f"maan@{count}"]
        shown = f"<= {count} (crop)" if name == "wtalc" else str(count)
        lines.append(f"| {name} | {shown} | {1000 * median[name]:.1f} | {1000 * same:.1f} | "
                     f"{median[name] / same:.2f} | {median[name] / base:.2f} |")
    lines += ["", "| method | batch draw (ms) | forward (ms) | loss (ms) | backward (ms) | Adam step (ms) |",
              "|---|---|---|---|---|---|"]
    for name, key in [("maan", f"maan@{MAAN_SNIPPETS}")] + [(name, name) for name in recipes]:
        split = np.median(np.asarray(steps[key]), axis=0)
        lines.append(f"| {name} | " + " | ".join(f"{1000 * value:.1f}" for value in split) + " |")
    table = "\n".join(lines)
    print(table)
    return table


if __name__ == "__main__":
    main()
