"""Attaching per-video feature files to annotation entries (shared by the file-per-video layouts)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from wsl_video.data.annotations import (
    THUMOS14_CLASSES,
    Entry,
    keep_thumos_subset,
    make_video,
    parse_database,
    select_thumos,
)
from wsl_video.data.files import npy_length_and_dim, read_json, read_lines, read_npy
from wsl_video.data.records import FeatureDataset, Video

__all__ = [
    "MAX_STREAM_LENGTH_GAP",
    "attach_feature_files",
    "collect_ambiguous",
    "missing_error",
    "reconcile_lengths",
    "warn_skipped",
]

#: RGB and flow files of one video may differ by this many snippets (then both are cut to the shorter one).
MAX_STREAM_LENGTH_GAP = 2


def reconcile_lengths(video: str, lengths: Mapping[str, int], where: str = "") -> int:
    """Common snippet count of the streams of ``video``: the shortest, if all lie within 2 snippets."""
    shortest, longest = min(lengths.values()), max(lengths.values())
    if longest - shortest > MAX_STREAM_LENGTH_GAP:
        detail = ", ".join(f"{stream} has {t}" for stream, t in lengths.items())
        raise ValueError(
            f"{where}video {video}: stream lengths differ by more than "
            f"{MAX_STREAM_LENGTH_GAP} snippets ({detail})"
        )
    return shortest


def missing_error(path: Path, video: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{path}: feature file of video {video} not found "
        "(--skip-missing, or skip_missing=True, skips videos without features)"
    )


def warn_skipped(skipped: Sequence[str], where: str) -> None:
    """One warning counting the videos skipped for lack of features."""
    if skipped:
        warnings.warn(
            f"{where}: skipped {len(skipped)} video(s) without feature files (first: {skipped[0]})",
            stacklevel=3,
        )


def attach_feature_files(
    entries: Sequence[Entry],
    paths_of: Callable[[Entry], dict[str, Path]],
    seconds_per_snippet: Callable[[Entry, int], float],
    *,
    skip_missing: bool,
    where: str,
    check_file: Callable[[Entry, str, Path, int, int], None] | None = None,
) -> tuple[list[Video], dict[str, int], Callable[[Video], dict[str, np.ndarray]]]:
    """Read the header of every feature file and build the videos.

    Args:
        entries: annotated videos of the subset.
        paths_of: ``entry -> {stream: path}`` (one joint stream, ``rgb`` and ``flow``, or ``rgb`` alone).
        seconds_per_snippet: ``(entry, T) -> seconds`` per snippet.
        skip_missing: skip videos whose files are missing (one warning) instead of raising.
        where: dataset description for messages.
        check_file: optional ``(entry, stream, path, T, D) -> None`` called on every file found, before
            the streams' lengths are reconciled; it raises ``ValueError`` on a file it rejects.

    Returns:
        ``(videos, dims, loader)`` with ``dims`` the feature size of every stream, read from the files.
    """
    videos, skipped, paths_by_video = [], [], {}
    dims: dict[str, int] = {}
    first_path: dict[str, Path] = {}
    for entry in entries:
        paths = paths_of(entry)
        missing = [path for path in paths.values() if not path.is_file()]
        if missing:
            if skip_missing:
                skipped.append(entry.name)
                continue
            raise missing_error(missing[0], entry.name)
        lengths = {}
        for stream, path in paths.items():
            length, dim = npy_length_and_dim(path)
            if check_file is not None:
                check_file(entry, stream, path, length, dim)
            if stream not in dims:
                dims[stream], first_path[stream] = dim, path
            elif dim != dims[stream]:
                raise ValueError(
                    f"{path}: {stream} features of video {entry.name} have {dim} dims, "
                    f"but {first_path[stream]} has {dims[stream]}"
                )
            lengths[stream] = length
        num_snippets = reconcile_lengths(entry.name, lengths, f"{where}: ")
        videos.append(make_video(entry, num_snippets, seconds_per_snippet(entry, num_snippets)))
        paths_by_video[entry.name] = paths
    warn_skipped(skipped, where)

    def loader(video: Video) -> dict[str, np.ndarray]:
        return {stream: read_npy(path) for stream, path in paths_by_video[video.name].items()}

    return videos, dims, loader


def collect_ambiguous(entries: Mapping[str, Entry], root: Path,
                      test: bool = True) -> dict[str, list[tuple[float, float]]]:
    """Ambiguous segments from the annotation file plus, for the ``test`` subset, ``Ambiguous_test.txt``
    in ``root`` when present (the training subset never reads it)."""
    from wsl_video.data.annotations import read_ambiguous

    ambiguous = {name: list(entry.ambiguous) for name, entry in entries.items() if entry.ambiguous}
    path = root / "Ambiguous_test.txt"
    if test and path.is_file():
        for name, segments in read_ambiguous(path).items():
            known = ambiguous.setdefault(name, [])
            known.extend(segment for segment in segments if segment not in known)
    return ambiguous


def open_thumos_gt_json(
    root: Path,
    subset: str,
    layout: str,
    feature_paths: Callable[[Entry], dict[str, Path]],
    *,
    streams: str,
    skip_missing: bool,
    test_videos: int,
    seconds_per_snippet: float,
) -> FeatureDataset:
    """THUMOS14 from ``gt.json`` (+ optional ``split_<subset>.txt``) and one feature file per video
    and stream, located by ``feature_paths(entry) -> {stream: path}`` (the BaS-Net and ACM-Net layouts).

    Only the entries of ``subset`` are parsed and only its feature files are opened: the training
    subset opens with the test features and test annotations absent.
    """
    root = Path(root)
    gt_path = root / "gt.json"
    split_path = root / f"split_{subset}.txt"
    split = read_lines(split_path) if split_path.is_file() else None
    entries = parse_database(read_json(gt_path), gt_path, THUMOS14_CLASSES, keep=keep_thumos_subset(subset, split))
    chosen = select_thumos(entries, subset, test_videos, split, split_path)
    where = f"thumos14 ({subset}, {layout} layout, {root})"
    videos, dims, loader = attach_feature_files(
        chosen, feature_paths, lambda entry, t: seconds_per_snippet, skip_missing=skip_missing, where=where
    )
    if not videos:
        raise ValueError(f"{where}: the dataset is empty")
    return FeatureDataset("thumos14", subset, THUMOS14_CLASSES, videos, loader, dims,
                          streams=streams, ambiguous=collect_ambiguous(entries, root, test=subset == "test"),
                          version="thumos14")
