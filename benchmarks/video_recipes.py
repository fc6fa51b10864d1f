"""Time of one training iteration of every ``wsl-video`` method, as a ratio to the MAAN recipe's at the same batch.

One iteration is what the training loop does: the method's ``sample_batch`` (from features already in
memory), the forward pass, the method's loss, the backward pass and the Adam step. Every method runs with its
own defaults (``wtalc``: joint vector, crops of at most 750 snippets; ``basnet``: joint vector, 750 sampled
snippets; ``co2net``, ``delu``: RGB and flow streams, 500 and 320 sampled snippets; ``maan``: RGB and flow
streams, 20 sampled snippets) on the same synthetic videos (THUMOS14-like
lengths, I3D-sized features: 1024 per stream, 2048 joint) and the same batch size. The methods alternate
iteration by iteration; each row gives the median time and its ratio to MAAN's median.

    python benchmarks/video_recipes.py                    # batch 16, 2048-d features, CPU
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

METHODS = ("maan", "wtalc", "basnet", "co2net", "delu")


def _videos(count: int, dim: int, lengths: tuple[int, int], seed: int) -> List[Dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    videos = []
    for _ in range(count):
        rgb = rng.random((int(rng.integers(*lengths)), dim // 2), dtype=np.float32)
        flow = rng.random(rgb.shape, dtype=np.float32)
        videos.append({"rgb": rgb, "flow": flow, "joint": np.concatenate([rgb, flow], axis=1)})
    return videos


def _recipe(name: str, batch_size: int, num_segments: int | None, num_classes: int, dim: int, device):
    config = RunConfig()
    config.model.method = name
    config.train.batch_size = batch_size
    if num_segments is not None and name != "maan":
        config.train.num_segments = num_segments
    config = config.resolved()
    method = get_method(name)
    streams = ("joint",) if config.data.streams == "joint" else ("rgb", "flow")
    dims = {stream: dim if stream == "joint" else dim // 2 for stream in streams}
    model = method.build_model(config, dims, num_classes).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay)
    return config, method, streams, model, optimizer


def main(argv: List[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dim", type=int, default=2048, help="joint feature size (half per stream)")
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5, help="timed iterations per method (after one warm-up)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    args = parser.parse_args(argv)
    lengths, num_segments = (200, 1500), None
    if args.quick:
        args.batch_size, args.dim, args.videos, args.repeats = 4, 16, 8, 1
        lengths, num_segments = (20, 60), 32
    device = torch.device(args.device)
    torch.manual_seed(0)
    videos = _videos(args.videos, args.dim, lengths, seed=0)
    labels = np.zeros((args.videos, args.classes), np.float32)
    labels[np.arange(args.videos), np.arange(args.videos) % args.classes] = 1
    target = torch.as_tensor(labels, device=device)
    recipes = {name: _recipe(name, args.batch_size, num_segments, args.classes, args.dim, device) for name in METHODS}
    rngs = {name: np.random.default_rng(1) for name in METHODS}
    times: Dict[str, List[float]] = {name: [] for name in METHODS}
    for repeat in range(args.repeats + 1):
        for name, (config, method, streams, model, optimizer) in recipes.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            tic = time.perf_counter()
            batch = method.sample_batch(lambda i: videos[i], labels, streams, config, rngs[name], device)
            outputs = model(batch.features) if batch.mask is None else model(batch.features, batch.mask)
            loss = method.training_loss(outputs, target[torch.as_tensor(batch.videos, device=device)], config, 0)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if repeat:  # the first iteration warms up
                times[name].append(time.perf_counter() - tic)
    base = statistics.median(times["maan"])
    lines = [f"One training iteration, batch {args.batch_size}, {args.dim}-d features, {device.type}, "
             f"median of {args.repeats}", "",
             "| method | snippets per video | time (ms) | ratio to maan |", "|---|---|---|---|"]
    for name, (config, *_rest) in recipes.items():
        median = statistics.median(times[name])
        snippets = f"<= {config.train.num_segments} (crop)" if name == "wtalc" else str(config.train.num_segments)
        lines.append(f"| {name} | {snippets} | {1000 * median:.1f} | {median / base:.2f} |")
    table = "\n".join(lines)
    print(table)
    return table


if __name__ == "__main__":
    main()
