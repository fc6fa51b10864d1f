"""Splitting a video list over shards: ``--shard I/N`` or torchrun's ``RANK``/``WORLD_SIZE``.

The list is sorted by video stem (stems are unique) and shard ``I`` of ``N`` takes every ``N``-th
video starting at the ``I``-th, so every process computes the same split from the same list, whatever
order the list was written in, with no coordination. Shards are numbered from 0, like ranks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

__all__ = ["parse_shard", "shard_from_environment", "select_shard", "unique_stems", "read_video_list"]


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``0 <= I < N``.

    Raises:
        ValueError: not of that form (the message says what is expected).
    """
    parts = str(text).split("/")
    try:
        if len(parts) != 2:
            raise ValueError
        index, count = int(parts[0]), int(parts[1])
    except ValueError:
        raise ValueError(f"--shard must be I/N with whole numbers, e.g. 0/4, got {text!r}") from None
    if count < 1:
        raise ValueError(f"--shard {text}: the number of shards must be at least 1")
    if not 0 <= index < count:
        raise ValueError(f"--shard {text}: the shard index must be between 0 and {count - 1} (shards count from 0)")
    return index, count


def shard_from_environment(environ: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """``(RANK, WORLD_SIZE)`` under torchrun (or any launcher that sets both), None otherwise.

    Raises:
        ValueError: the variables are set but are not valid whole numbers.
    """
    environ = os.environ if environ is None else environ
    if "RANK" not in environ or "WORLD_SIZE" not in environ:
        return None
    return parse_shard(f"{environ['RANK']}/{environ['WORLD_SIZE']}")


def unique_stems(paths: Sequence[str | Path]) -> dict[str, Path]:
    """``stem -> path`` for every video; two files with one stem (``a/x.mp4``, ``b/x.mkv``) are an error.

    Raises:
        ValueError: naming both paths of the first duplicate stem.
    """
    stems: dict[str, Path] = {}
    for path in map(Path, paths):
        if path.stem in stems:
            if stems[path.stem] == path:
                raise ValueError(f"video listed twice: {path}")
            raise ValueError(f"two videos have the stem {path.stem!r}, so their features would share a file name: "
                             f"{stems[path.stem]} and {path}")
        stems[path.stem] = path
    return stems


def select_shard(stems: Mapping[str, Path], index: int, count: int) -> dict[str, Path]:
    """The videos of shard ``index`` of ``count``: every ``count``-th stem in sorted order from ``index``."""
    ordered = sorted(stems)
    return {stem: stems[stem] for stem in ordered[index::count]}


def read_video_list(path: str | Path) -> list[Path]:
    """Paths from a list file: one per line, blank lines and ``#`` comments skipped; a relative path is
    relative to the list file's folder.

    Raises:
        FileNotFoundError: the list file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video list not found: {path}")
    videos = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        video = Path(line).expanduser()
        videos.append(video if video.is_absolute() else path.parent / video)
    return videos
