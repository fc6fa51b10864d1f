"""Temporal annotations: ActivityNet-style ``gt.json`` databases, THUMOS14 classes and Ambiguous segments."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from wsl_video.data.files import read_lines
from wsl_video.data.records import Video

__all__ = [
    "THUMOS14_CLASSES",
    "THUMOS14_EXCLUDED_TEST_VIDEOS",
    "AMBIGUOUS_LABEL",
    "Entry",
    "parse_database",
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


def _number(value: Any, what: str, where: str) -> float:
    try:
        number = float(value)  # BaS-Net style files store segment times as strings
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {what} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{where}: {what} {value!r} is not finite")
    return number


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
        duration = None if duration is None else _number(duration, "duration", where)
        if duration is not None and duration <= 0:
            raise ValueError(f"{where}: duration {duration} is not positive")
        annotations, ambiguous = [], []
        for item in record.get("annotations", []) or []:
            if not isinstance(item, Mapping) or "segment" not in item or "label" not in item:
                raise ValueError(f"{where}: annotation {item!r} lacks 'segment' or 'label'")
            segment = item["segment"]
            if not isinstance(segment, (list, tuple)) or len(segment) != 2:
                raise ValueError(f"{where}: segment {segment!r} is not a [start, end] pair")
            start, end = (_number(v, "segment time", where) for v in segment)
            if end < start:
                raise ValueError(f"{where}: segment [{start}, {end}] ends before it starts")
            label = str(item["label"])
            if ambiguous_label is not None and label == ambiguous_label:
                ambiguous.append((start, end))
                continue
            if known is not None and label not in known:
                raise ValueError(f"{where}: unknown label {label!r}")
            annotations.append((start, end, label))
        entries[str(name)] = Entry(str(name), str(record.get("subset", "")), duration, annotations, ambiguous)
    return entries


def read_ambiguous(path: Path) -> dict[str, list[tuple[float, float]]]:
    """THUMOS14 ``Ambiguous_test.txt`` (``<video> <start> <end>`` lines) as ``{video: [(start, end)]}``."""
    segments: dict[str, list[tuple[float, float]]] = {}
    for number, line in enumerate(read_lines(path), 1):
        fields = line.split()
        if len(fields) != 3:
            raise ValueError(f"{path}: line {number} is not '<video> <start> <end>': {line!r}")
        where = f"{path}: line {number}"
        segments.setdefault(fields[0], []).append(
            (_number(fields[1], "start", where), _number(fields[2], "end", where))
        )
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
