"""``manifest.json``: the record ``wsl-video extract`` writes beside the feature files.

::

    {"format": "wsl-video-features", "version": 1,
     "extractor": {"backbone": "i3d", "streams": ["rgb", "flow"], "feature_dims": {"rgb": 1024, ...}, ...},
     "videos": {"<stem>": {"num_snippets": 28, "seconds_per_snippet": 0.64, "duration": 18.09, ...}}}

Readers rely on ``format``, ``version``, ``extractor.streams``, ``extractor.feature_dims`` (optional) and,
per video, ``num_snippets``, ``seconds_per_snippet`` and ``duration`` (optional); the rest of the
``extractor`` mapping is an opaque record of the settings, kept as it is. See ``docs/video-data.md``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

from wsl.utils.numbers import finite_float
from wsl_video.data.files import read_json, require_file

__all__ = ["MANIFEST_FILE", "MANIFEST_FORMAT", "MANIFEST_VERSION", "MANIFEST_STREAMS", "Manifest",
           "ManifestVideo", "read_manifest"]

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "wsl-video-features"
MANIFEST_VERSION = 1
#: ``extractor.streams`` a manifest may list: two-stream features, or RGB-only backbones.
MANIFEST_STREAMS = (("rgb", "flow"), ("rgb",))


class ManifestVideo:
    """The manifest's record of one video: ``num_snippets``, ``seconds_per_snippet`` and ``duration``."""

    __slots__ = ("name", "num_snippets", "seconds_per_snippet", "duration")

    def __init__(self, name: str, num_snippets: int, seconds_per_snippet: float, duration: float | None) -> None:
        self.name = name
        self.num_snippets = num_snippets
        self.seconds_per_snippet = seconds_per_snippet
        self.duration = duration


def _positive(value: Any, integer: bool = False) -> bool:
    """A positive finite JSON number (an integer where ``integer``); strings are not numbers here."""
    if not isinstance(value, (int, float)):
        return False
    try:
        number = finite_float(value, "value")
    except ValueError:  # a boolean, NaN or infinite
        return False
    return number > 0 and (not integer or number.is_integer())


class Manifest:
    """A parsed ``manifest.json``.

    Attributes:
        path: the file.
        extractor: its ``extractor`` mapping (a copy; JSON values only).
        streams: the feature streams, ``("rgb", "flow")`` or ``("rgb",)``.
        feature_dims: ``extractor.feature_dims`` per stream where given.
    """

    def __init__(self, path: Path, data: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.extractor: dict[str, Any] = copy.deepcopy(dict(data["extractor"]))
        self.streams: tuple[str, ...] = _streams(self.path, self.extractor)
        dims = self.extractor.get("feature_dims")
        if dims is not None and not isinstance(dims, Mapping):
            raise ValueError(f"{self.path}: extractor.feature_dims must map a stream to its feature size")
        self.feature_dims = {stream: dim for stream, dim in (dims or {}).items() if _positive(dim, integer=True)}
        self._videos: Mapping[str, Any] = data["videos"]

    def __contains__(self, name: str) -> bool:
        return name in self._videos

    def __len__(self) -> int:
        return len(self._videos)

    def video(self, name: str) -> ManifestVideo:
        """The record of video ``name``.

        Raises:
            ValueError: the manifest has no record of the video, or a record without a positive
                ``num_snippets`` (integer) or ``seconds_per_snippet``; the message names the file and video.
        """
        if name not in self._videos:
            raise ValueError(f"{self.path}: video {name} is not in the manifest (were its features "
                             "written by another extraction?)")
        record = self._videos[name]
        where = f"{self.path}: video {name}"
        if not isinstance(record, Mapping):
            raise ValueError(f"{where}: record is not an object")
        num_snippets = record.get("num_snippets")
        if not _positive(num_snippets, integer=True):
            raise ValueError(f"{where}: num_snippets {num_snippets!r} is not a positive integer")
        seconds = record.get("seconds_per_snippet")
        if not _positive(seconds):
            raise ValueError(f"{where}: seconds_per_snippet {seconds!r} is not a positive number")
        duration = record.get("duration")
        duration = float(duration) if _positive(duration) else None
        return ManifestVideo(name, int(num_snippets), float(seconds), duration)


def _streams(path: Path, extractor: Mapping[str, Any]) -> tuple[str, ...]:
    streams = extractor.get("streams")
    if isinstance(streams, (list, tuple)) and all(isinstance(s, str) for s in streams):
        ordered = tuple(sorted(streams, key=lambda s: (s != "rgb", s)))  # rgb first
        if ordered in MANIFEST_STREAMS:
            return ordered
    raise ValueError(f"{path}: extractor.streams must be [\"rgb\", \"flow\"] or [\"rgb\"], got {streams!r}")


def read_manifest(path: str | Path) -> Manifest:
    """Read and check a ``manifest.json`` (``format``, ``version``, ``extractor``, ``videos``).

    Video records are checked when asked for (:meth:`Manifest.video`), so that a bad record of a video
    nobody reads does not stop the others.

    Raises:
        FileNotFoundError: no such file.
        ValueError: corrupt JSON, another format or version, or a missing or malformed key; the message
            names the file.
    """
    path = Path(path)
    require_file(path, "feature manifest (written by wsl-video extract)")
    data = read_json(path)
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: not a feature manifest (expected a JSON object)")
    if data.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path}: not a feature manifest (format {data.get('format')!r}, "
                         f"expected {MANIFEST_FORMAT!r})")
    version = data.get("version")
    if version != MANIFEST_VERSION or isinstance(version, bool):
        raise ValueError(f"{path}: manifest version {version!r} is not supported (this version reads "
                         f"version {MANIFEST_VERSION})")
    if not isinstance(data.get("extractor"), Mapping):
        raise ValueError(f"{path}: no 'extractor' object (the settings the features were extracted with)")
    if not isinstance(data.get("videos"), Mapping):
        raise ValueError(f"{path}: no 'videos' object (one record per video)")
    return Manifest(path, data)
