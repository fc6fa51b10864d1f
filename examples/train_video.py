"""Train MAAN on simulated THUMOS14 features with a plain PyTorch loop, then localize actions and evaluate.

    python examples/train_video.py [--iterations 1000] [--aggregator maa] [--seed 0]

The pieces, each usable on its own:

* ``wsl_video.data.open_dataset``: snippet features (RGB and flow streams) and annotations; ``thumos14-sim``
  needs no files, ``thumos14`` / ``activitynet`` read the usual feature layouts (``data_root=...``);
* ``wsl.build_aggregator("maa", channels=D)``: marginalized average aggregation of the snippet features;
* ``wsl.class_activation``: the class activation sequence (CAS) ``p_t * sigmoid(w_c . x_t + b_c)`` (Eq. 14);
* ``wsl.localization.temporal.detect_actions``: CAS -> scored segments (cut at 0.2 x max, NMS);
* ``wsl.metrics.detection_map``: THUMOS14 detection mAP at tIoU 0.1:0.9.

Recipe of the paper: every iteration takes a batch of videos, splits each into T = 20 segments and draws
one snippet per segment; the video-level multi-label cross-entropy is minimised with Adam. The weight
decay and the attention L1 weight are the demo's held-out selection for MAA (see docs/video-demo.md).
``wsl-video train`` runs the same recipe with run folders, checkpoints and logs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

import wsl
from wsl.localization.temporal import detect_actions
from wsl.metrics import detection_map
from wsl_video.data import open_dataset, sample_snippets, uniform_snippets

TIOU = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


class Stream(nn.Module):
    """One feature stream: aggregator over the snippets, then a linear classifier."""

    def __init__(self, aggregator: str, channels: int, num_classes: int):
        super().__init__()
        self.aggregator = wsl.build_aggregator(aggregator, channels=channels)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (Tensor[B, D, T]) -> video logits (Tensor[B, K]) and the attention (Tensor[B, T] or None)."""
        out = self.aggregator(x)
        return self.classifier(out.pooled), out.attention

    def cas(self, x: torch.Tensor) -> torch.Tensor:
        """x (Tensor[B, D, T]) -> class activation sequence (Tensor[B, K, T]) over every snippet."""
        attention = self.aggregator.attention_map(x)
        return wsl.class_activation(x, self.classifier.weight, self.classifier.bias, attention)


def batch_of(dataset, videos, num_segments: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """One snippet per segment of each video: stream -> Tensor[B, D, T]."""
    picks = {stream: [] for stream in dataset.streams}
    for index in videos:
        features = dataset.features(int(index))
        snippets = sample_snippets(dataset.videos[int(index)].num_snippets, num_segments, rng)
        for stream in dataset.streams:
            picks[stream].append(features[stream][snippets].T)
    return {stream: torch.from_numpy(np.stack(arrays)) for stream, arrays in picks.items()}


def detect(streams: nn.ModuleDict, dataset, num_segments: int, class_threshold: float = 0.1) -> dict:
    """ActivityNet-style results ``{video: [{"label", "segment", "score"}]}`` of every video of ``dataset``."""
    results = {}
    with torch.no_grad():
        for index, video in enumerate(dataset.videos):
            features = {name: torch.from_numpy(f.T[None]) for name, f in dataset.features(index).items()}
            sampled = uniform_snippets(video.num_snippets, num_segments)  # the footing of training
            scores = sum(torch.sigmoid(streams[name](x[..., sampled])[0]) for name, x in features.items())
            scores = (scores / len(features))[0].numpy()
            cas = sum(streams[name].cas(x) for name, x in features.items()) / len(features)  # (1, K, T)
            classes = np.flatnonzero(scores >= class_threshold)
            if classes.size == 0:
                classes = [int(scores.argmax())]
            found = detect_actions(cas[0].T.numpy(), classes, video.seconds_per_snippet, thresholds=(0.2,),
                                   duration=video.duration)
            results[video.name] = [{"label": dataset.classes[c], "segment": [start, end], "score": score}
                                   for c, start, end, score in found]
    return results


def random_results(dataset, seed: int = 0) -> dict:
    """Chance level: segments cut from a random CAS, for the classes each video really contains."""
    rng = np.random.default_rng(seed)
    results = {}
    for video in dataset.videos:
        classes = [dataset.classes.index(label) for label in video.labels] or [0]
        cas = rng.random((video.num_snippets, len(dataset.classes)))
        found = detect_actions(cas, classes, video.seconds_per_snippet, thresholds=(0.2,), duration=video.duration)
        results[video.name] = [{"label": dataset.classes[c], "segment": [start, end], "score": score}
                               for c, start, end, score in found]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aggregator", default="maa", choices=wsl.list_aggregators(include_aliases=True))
    parser.add_argument("--iterations", type=int, default=1000, help="training iterations (default 1000)")
    parser.add_argument("--batch-size", type=int, default=16, help="videos per batch (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args()

    tic = time.time()
    torch.set_num_threads(1)  # the tensors are small: more threads only wait for each other
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train_set = open_dataset("thumos14-sim", "train").preload()
    test_set = open_dataset("thumos14-sim", "test")
    num_classes, num_segments = len(train_set.classes), 20
    print(f"{len(train_set)} training and {len(test_set)} test videos, {num_classes} classes, streams "
          + ", ".join(f"{name} ({dim})" for name, dim in train_set.feature_dims.items()))

    streams = nn.ModuleDict({name: Stream(args.aggregator, dim, num_classes)
                             for name, dim in train_set.feature_dims.items()})
    optimizer = torch.optim.Adam(streams.parameters(), lr=5e-4, weight_decay=1e-2)
    sparsity = 0.02  # L1 weight on the attention
    labels = torch.from_numpy(train_set.label_matrix())
    for iteration in range(1, args.iterations + 1):
        videos = rng.choice(len(train_set), size=args.batch_size, replace=False)
        loss = torch.zeros(())
        for name, x in batch_of(train_set, videos, num_segments, rng).items():
            logits, attention = streams[name](x)
            loss = loss + nn.functional.binary_cross_entropy_with_logits(
                logits, labels[videos], reduction="none").sum(1).mean()
            if attention is not None:
                loss = loss + sparsity * attention.sum(1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if iteration % max(1, args.iterations // 5) == 0:
            print(f"iteration {iteration}: loss {loss.item():.3f}")

    streams.eval()
    ground_truth = test_set.ground_truth()
    metrics = detection_map(ground_truth, {"results": detect(streams, test_set, num_segments)}, TIOU,
                            ambiguous=test_set.ambiguous)
    chance = detection_map(ground_truth, {"results": random_results(test_set, args.seed)}, TIOU,
                           ambiguous=test_set.ambiguous)
    print(f"\nDetection mAP (%) on the {len(test_set)} test videos, tIoU 0.1:0.9:")
    print("| | " + " | ".join(f"{t:g}" for t in TIOU) + " | avg 0.1:0.7 |")
    print("|---|" + "---:|" * (len(TIOU) + 1))
    for name, values in ((f"{args.aggregator}, {args.iterations} iterations", metrics),
                         ("random CAS, true classes", chance)):
        print(f"| {name} | " + " | ".join(f"{100 * v:.1f}" for v in values["mAP"])
              + f" | {100 * values['average_mAP_0.1_0.7']:.1f} |")
    print(f"({time.time() - tic:.0f} s)")


if __name__ == "__main__":
    main()
