"""Temporal annotations: ActivityNet-style ``gt.json`` databases, THUMOS14 classes and Ambiguous segments.

The one reader of both formats: the dataset layouts, the simulated dataset and ``wsl-video evaluate``
(:func:`load_ground_truth`, :func:`read_ambiguous`) all parse them here, with messages naming the file
and the video or line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

from wsl.metrics._parsing import parse_segment
from wsl.utils.numbers import finite_float
from wsl_video.data.files import read_json, require_file
from wsl_video.data.records import Video

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "THUMOS14_CLASSES",
    "THUMOS14_EXCLUDED_TEST_VIDEOS",
    "AMBIGUOUS_LABEL",
    "Entry",
    "parse_database",
    "load_ground_truth",
    "read_ambiguous",
    "make_video",
    "thumos_subset",
    "keep_thumos_subset",
]

#: The 20 THUMOS14 localization classes, in the usual (alphabetical) order.
THUMOS14_CLASSES = (
    "BaseballPitch", "BasketballDunk", "Billiards", "CleanAndJerk", "CliffDiving", "CricketBowling",
    "CricketShot", "Diving", "FrisbeeCatch", "GolfSwing", "HammerThrow", "HighJump", "JavelinThrow",
    "LongJump", "PoleVault", "Shotput", "SoccerPenalty", "TennisSwing", "ThrowDiscus", "VolleyballSpiking",
)

#: Test videos left out of the 210-video THUMOS14 test set used by many works (wrong annotations).
THUMOS14_EXCLUDED_TEST_VIDEOS = ("video_test_0000270", "video_test_0001496")

AMBIGUOUS_LABEL = "Ambiguous"

_THUMOS_SUBSETS = {"train": ("validation", "val", "train", "training"), "test": ("test", "testing")}


class Entry:
    """One annotated video of an annotation file, before features are attached."""

    __slots__ = ("name", "subset", "duration", "annotations", "ambiguous")

    def __init__(self, name: str, subset: str, duration: float | None,
                 annotations: list[tuple[float, float, str]], ambiguous: list[tuple[float, float]]) -> None:
        self.name = name
        self.subset = subset
        self.duration = duration
        self.annotations = annotations
        self.ambiguous = ambiguous


def parse_database(data: Any, path: Path, classes: Sequence[str] | None = None, *,
                   ambiguous_label: str | None = AMBIGUOUS_LABEL,
                   keep: Callable[[str, Mapping], bool] | None = None) -> dict[str, Entry]:
    """Parse an ActivityNet-style annotation dict ``{"database": {video: {...}}}``.

    Segment times may be numbers or strings. Annotations labelled ``ambiguous_label`` (THUMOS14's
    ``Ambiguous``; None: no such label, every label is a class) go to ``Entry.ambiguous``.
    With ``classes`` given, any other label outside it raises ``ValueError`` naming the video.
    ``keep(video, record)`` selects the records to parse (e.g. one subset's): the others are skipped
    unread, so opening the training subset never looks at the test annotations.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("database"), Mapping):
        raise ValueError(f"{path}: not an ActivityNet-style annotation file (no 'database' object)")
    known = set(classes) if classes is not None else None
    entries = {}
    for name, record in data["database"].items():
        if keep is not None and not keep(str(name), record if isinstance(record, Mapping) else {}):
            continue
        where = f"{path}: video {name}"
        if not isinstance(record, Mapping):
            raise ValueError(f"{where}: annotation record is not an object")
        duration = record.get("duration")
        duration = None if duration is None else finite_float(duration, f"{where}: duration")
        if duration is not None and duration <= 0:
            raise ValueError(f"{where}: duration {duration} is not positive")
        items = record.get("annotations", []) or []
        if not isinstance(items, (list, tuple)):
            raise ValueError(f"{where}: 'annotations' must be a list")
        annotations, ambiguous = [], []
        for item in items:
            if not isinstance(item, Mapping) or "segment" not in item or "label" not in item:
                raise ValueError(f"{where}: annotation {item!r} lacks 'segment' or 'label'")
            start, end = parse_segment(item["segment"], where)  # BaS-Net style files store times as strings
            label = str(item["label"])
            if ambiguous_label is not None and label == ambiguous_label:
                ambiguous.append((start, end))
                continue
            if known is not None and label not in known:
                raise ValueError(f"{where}: unknown label {label!r}")
            annotations.append((start, end, label))
        entries[str(name)] = Entry(str(name), str(record.get("subset", "")), duration, annotations, ambiguous)
    return entries


def load_ground_truth(path: PathLike) -> dict:
    """Read an ActivityNet-style ground-truth file (THUMOS14 converted files included), checked and normalised.

    Every label is kept (THUMOS14's ``Ambiguous`` too); segment times given as strings are converted.

    Returns:
        ``{"version", "database": {video: {"subset", "duration", "annotations": [{"segment": [start, end],
        "label"}]}}}``, the structure :func:`wsl.metrics.detection_map` takes; ``subset`` and ``duration``
        are None when missing.

    Raises:
        FileNotFoundError: no such file.
        ValueError: one line naming the file and the video.
    """
    path = Path(path)
    data = read_json(path)
    entries = parse_database(data, path, ambiguous_label=None)
    database = {
        name: {
            "subset": entry.subset or None,
            "duration": entry.duration,
            "annotations": [{"segment": [start, end], "label": label} for start, end, label in entry.annotations],
        }
        for name, entry in entries.items()
    }
    return {"version": data.get("version"), "database": database}


def read_ambiguous(path: PathLike) -> dict[str, list[tuple[float, float]]]:
    """THUMOS14 ``Ambiguous_test.txt`` (``<video> <start> <end>`` lines, seconds) as ``{video: [(start, end)]}``.

    Blank lines are skipped; segments keep their file order.

    Raises:
        FileNotFoundError: no such file.
        ValueError: one line naming the file and the line number.
    """
    path = Path(path)
    require_file(path, "ambiguous-segment file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not a text file ({error})") from None
    segments: dict[str, list[tuple[float, float]]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}: line {number}"
        if len(fields) != 3:
            raise ValueError(f"{where}: expected '<video> <start> <end>', got {line.strip()!r}")
        segments.setdefault(fields[0], []).append(parse_segment(fields[1:], where))
    return segments


def make_video(entry: Entry, num_snippets: int, seconds_per_snippet: float) -> Video:
    """Attach the snippet count to an annotation entry."""
    annotations = sorted(entry.annotations)
    return Video(
        name=entry.name,
        duration=entry.duration,
        labels=tuple(sorted({label for _, _, label in annotations})),
        annotations=annotations,
        num_snippets=int(num_snippets),
        seconds_per_snippet=float(seconds_per_snippet),
        subset=entry.subset,
    )


def keep_thumos_subset(subset: str, split: Iterable[str] | None = None) -> Callable[[str, Mapping], bool]:
    """``keep`` for :func:`parse_database`: the videos of a split list, or those whose annotation-file
    subset (``validation``, ``test``...) is ``subset`` (``train``/``test``)."""
    if split is not None:
        names = set(split)
        return lambda name, record: name in names
    return lambda name, record: thumos_subset(str(record.get("subset", ""))) == subset


def thumos_subset(native: str) -> str | None:
    """Map an annotation file's THUMOS14 subset name (``validation``, ``Test``...) to ``train``/``test``."""
    native = native.lower()
    for subset, names in _THUMOS_SUBSETS.items():
        if native in names:
            return subset
    return None


def select_thumos(entries: Mapping[str, Entry], subset: str, test_videos: int,
                  split: Iterable[str] | None = None, path: Path | None = None) -> list[Entry]:
    """Entries of a THUMOS14 subset (``train``/``test``), in split-file order when a split list is given.

    ``test_videos=210`` drops :data:`THUMOS14_EXCLUDED_TEST_VIDEOS`; 212 keeps every test video.
    """
    if test_videos not in (210, 212):
        raise ValueError(f"test_videos must be 212 or 210, got {test_videos!r}")
    if split is not None:
        chosen = []
        for name in split:
            if name not in entries:
                raise ValueError(f"{path}: video {name} is not in the annotation file")
            chosen.append(entries[name])
    else:
        chosen = [entry for entry in entries.values() if thumos_subset(entry.subset) == subset]
    if subset == "test" and test_videos == 210:
        chosen = [entry for entry in chosen if entry.name not in THUMOS14_EXCLUDED_TEST_VIDEOS]
    return chosen
