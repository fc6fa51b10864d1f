"""Batch construction shared by the video methods: pairs of videos sharing a class, sampled snippets."""

from __future__ import annotations

from typing import Any, Callable, Dict, Sequence

import numpy as np

__all__ = ["draw_paired_videos", "stack_sampled_snippets"]


def draw_paired_videos(labels: np.ndarray, batch_size: int, pairs: int, rng: np.random.Generator,
                       distinct: bool = False) -> np.ndarray:
    """The videos of a batch: ``pairs`` pairs sharing a class first (rows 0-1, 2-3, ...), then uniform draws.

    Each pair: a class drawn uniformly among those with training videos, then two of its videos, with
    replacement (``distinct=False``) or two different ones where the class has two (``distinct=True``). The
    rest of the batch is drawn uniformly with replacement among the videos with a label.

    Args:
        labels: ndarray[N, K] video labels in {0, 1}.
        batch_size: B; pairs: number of pairs (``2 * pairs <= B``); rng: the run's generator.

    Returns:
        ndarray[B] int64 video indices.
    """
    classes = [np.flatnonzero(labels[:, c]) for c in range(labels.shape[1])]
    populated = [c for c, members in enumerate(classes) if len(members)]
    chosen = []
    for _ in range(pairs):
        members = classes[populated[int(rng.integers(len(populated)))]]
        if distinct and len(members) >= 2:
            picks = rng.choice(len(members), size=2, replace=False)
        else:
            picks = rng.integers(len(members), size=2)
        chosen.extend(int(members[i]) for i in picks)
    labelled = np.flatnonzero(labels.sum(axis=1) > 0)
    chosen.extend(int(labelled[i]) for i in rng.integers(len(labelled), size=batch_size - len(chosen)))
    return np.asarray(chosen, dtype=np.int64)


def stack_sampled_snippets(features: Callable[[int], Dict[str, np.ndarray]], videos: np.ndarray,
                           streams: Sequence[str], num_segments: int, rng: np.random.Generator,
                           device: Any) -> Dict[str, Any]:
    """``num_segments`` snippets of each video, one at random in each of as many equal segments
    (:func:`wsl_video.data.sample_snippets`): stream -> Tensor[B, num_segments, D] (float32, on ``device``)."""
    import torch

    from wsl_video.data import sample_snippets

    batch: Dict[str, list] = {name: [] for name in streams}
    for index in videos:
        video = features(int(index))
        snippets = sample_snippets(len(next(iter(video.values()))), num_segments, rng)
        for name in streams:
            batch[name].append(video[name][snippets])
    return {name: torch.as_tensor(np.stack(arrays), dtype=torch.float32, device=device)
            for name, arrays in batch.items()}
