"""Snippet sampling and snippet <-> seconds conversion.

A video of ``T`` snippets is a time line ``[0, T * seconds_per_snippet)``; snippet ``i`` covers
``[i * s, (i + 1) * s)`` seconds with ``s = seconds_per_snippet``.
"""

from __future__ import annotations

from typing import Union

import numpy as np

__all__ = [
    "sample_snippets",
    "uniform_snippets",
    "snippet_to_seconds",
    "seconds_to_snippet",
    "segment_to_snippets",
]

ArrayOrFloat = Union[float, np.ndarray]


def _check_counts(num_snippets: int, num_segments: int) -> None:
    if int(num_snippets) != num_snippets or num_snippets < 1:
        raise ValueError(f"num_snippets must be a positive integer, got {num_snippets!r}")
    if int(num_segments) != num_segments or num_segments < 1:
        raise ValueError(f"num_segments must be a positive integer, got {num_segments!r}")


def sample_snippets(num_snippets: int, num_segments: int, rng: np.random.Generator) -> np.ndarray:
    """Divide ``num_snippets`` uniformly into ``num_segments`` segments and draw one snippet per segment.

    Segment ``k`` covers ``[k * T / n, (k + 1) * T / n)`` in snippet units. With ``T >= n`` every
    segment holds at least one whole snippet and one of them is drawn uniformly; with ``T < n``
    (short videos) a uniform point of the segment is drawn and its snippet taken, so snippets repeat.

    Returns:
        indices (ndarray[num_segments] int64), sorted, in ``[0, num_snippets)``.
    """
    _check_counts(num_snippets, num_segments)
    t, n = int(num_snippets), int(num_segments)
    if t >= n:
        bounds = (np.arange(n + 1) * t) // n  # integer segment boundaries, each segment non-empty
        return rng.integers(bounds[:-1], bounds[1:]).astype(np.int64)
    points = (np.arange(n) + rng.random(n)) * (t / n)
    return np.minimum(np.floor(points), t - 1).astype(np.int64)


def uniform_snippets(num_snippets: int, num_segments: int) -> np.ndarray:
    """Deterministic counterpart of :func:`sample_snippets`: the centre snippet of every segment.

    Returns:
        indices (ndarray[num_segments] int64), sorted, in ``[0, num_snippets)``.
    """
    _check_counts(num_snippets, num_segments)
    t, n = int(num_snippets), int(num_segments)
    centres = (np.arange(n) + 0.5) * (t / n)
    return np.minimum(np.floor(centres), t - 1).astype(np.int64)


def snippet_to_seconds(index: ArrayOrFloat, seconds_per_snippet: float) -> ArrayOrFloat:
    """Time in seconds of snippet boundary ``index`` (snippet ``i`` starts at ``i * seconds_per_snippet``)."""
    _check_seconds_per_snippet(seconds_per_snippet)
    if isinstance(index, np.ndarray):
        return index.astype(np.float64) * seconds_per_snippet
    return float(index) * seconds_per_snippet


def seconds_to_snippet(
    seconds: ArrayOrFloat, seconds_per_snippet: float, num_snippets: int | None = None
) -> int | np.ndarray:
    """Index of the snippet containing time ``seconds`` (floor), clipped to ``[0, num_snippets)`` if given."""
    _check_seconds_per_snippet(seconds_per_snippet)
    index = np.floor(np.asarray(seconds, dtype=np.float64) / seconds_per_snippet + 1e-9).astype(np.int64)
    index = np.maximum(index, 0)
    if num_snippets is not None:
        index = np.minimum(index, int(num_snippets) - 1)
    return index if isinstance(seconds, np.ndarray) else int(index)


def segment_to_snippets(
    start: float, end: float, seconds_per_snippet: float, num_snippets: int
) -> tuple[int, int]:
    """Snippets ``[first, stop)`` that overlap the segment ``[start, end)`` in seconds (clipped to the video).

    An empty range (``first == stop``) is returned when the segment lies outside the video.
    """
    _check_seconds_per_snippet(seconds_per_snippet)
    t = int(num_snippets)
    first = min(max(int(np.floor(start / seconds_per_snippet + 1e-9)), 0), t)
    stop = min(max(int(np.ceil(end / seconds_per_snippet - 1e-9)), first), t)
    return first, stop


def _check_seconds_per_snippet(seconds_per_snippet: float) -> None:
    if not np.isfinite(seconds_per_snippet) or seconds_per_snippet <= 0:
        raise ValueError(f"seconds_per_snippet must be a positive number, got {seconds_per_snippet!r}")
