"""The features folder that ``wsl-video extract`` writes, safe under concurrent shards.

Layout::

    DIR/features/rgb/<stem>.npy        float32 (T, D_rgb)
    DIR/features/flow/<stem>.npy       float32 (T, D_flow)   (two-stream backbones)
    DIR/manifest.json                  {"format", "version", "extractor", "videos"}
    DIR/manifest.d/extractor.json      the extractor mapping every writer must match
    DIR/manifest.d/videos/<stem>.json  one record per finished video
    DIR/.manifest.lock                 lock file for the merge

**Completion.** A video's feature files are written first (each to a temporary name, then renamed),
its record last (also atomically): the record is the proof that the video is complete. A later run
skips a video whose record exists, names the same source file, and whose files hold the recorded
number of rows; anything else is extracted again.

**Concurrency.** Any number of processes (shards, torchrun ranks, machines on a shared file system)
may write to the same DIR. They never write the same video (the shards are disjoint). The first to
arrive records the extractor settings in ``manifest.d/extractor.json`` under an exclusive lock; the
others compare theirs with it and refuse to mix features made differently. At the end of its run (also
when interrupted) each process takes the lock, reads every record in ``manifest.d/videos`` and
rewrites ``manifest.json`` atomically. The merges are serialised by the lock and each reads every
record written before it, so whichever process finishes last writes a manifest that lists every video:
once all shards are done, the manifest is complete. The lock is a POSIX record lock
(:class:`wsl.utils.lock.FileLock`, ``fcntl.lockf``), which network file systems such as NFS support
(no lock where ``fcntl`` is missing: run the shards one after the other there); running the command again with the
same arguments (every video is skipped) rewrites the manifest from the records at any time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from wsl.utils.io import atomic_write_json, atomic_writer
from wsl.utils.lock import FileLock
from wsl_video.data.manifest import MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_VERSION
from wsl_video.features.settings import extractor_differences

__all__ = ["FeatureStore"]

ANNOTATIONS = "annotations.json"
_RECORD_KEYS = ("source", "source_fps", "duration", "frames", "num_snippets", "seconds_per_snippet")


class FeatureStore:
    """Read and write one features folder (layout and rules in the module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"{self.root}: exists and is not a folder")
        self.manifest_path = self.root / MANIFEST_FILE
        self.records_dir = self.root / "manifest.d" / "videos"
        self.extractor_path = self.root / "manifest.d" / "extractor.json"
        self.lock_path = self.root / ".manifest.lock"

    def feature_path(self, stream: str, stem: str) -> Path:
        return self.root / "features" / stream / f"{stem}.npy"

    def record_path(self, stem: str) -> Path:
        return self.records_dir / f"{stem}.json"

    # ------------------------------------------------------------------ settings
    def claim(self, extractor: Mapping[str, Any]) -> None:
        """Record ``extractor`` as this folder's settings, or check it against the recorded ones.

        Raises:
            ValueError: the folder holds features made with other settings, or files that are not an
                extraction's (never overwritten).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(self.lock_path):
            if self.extractor_path.is_file():
                recorded = json.loads(self.extractor_path.read_text(encoding="utf-8"))
                differences = extractor_differences(recorded, extractor)
                if differences:
                    raise ValueError(f"{self.root}: holds features extracted with other settings "
                                     f"({'; '.join(differences)}); use another output folder")
                return
            # a new folder may already hold the dataset's annotations.json, nothing else
            others = sorted(p.name for p in self.root.iterdir() if p.name not in (self.lock_path.name, ANNOTATIONS))
            if others:
                raise ValueError(f"{self.root}: not empty and not a features folder written by wsl-video extract "
                                 f"(holds {', '.join(others[:3])}{' ...' if len(others) > 3 else ''}); "
                                 "use an empty or new output folder")
            atomic_write_json(self.extractor_path, dict(extractor))

    # ------------------------------------------------------------------ videos
    def read_record(self, stem: str) -> dict[str, Any] | None:
        path = self.record_path(stem)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        return record if isinstance(record, dict) else None

    def status(self, stem: str, source: str | Path, dims: Mapping[str, int]) -> str:
        """``"complete"``, ``"missing"`` (not done or incomplete: extract it) or ``"other-source"``
        (done, from another file with the same stem)."""
        record = self.read_record(stem)
        if record is None:
            return "missing"
        if record.get("source") != str(Path(source).resolve()):
            return "other-source"
        rows = record.get("num_snippets")
        for stream, dim in dims.items():
            try:
                array = np.load(self.feature_path(stream, stem), mmap_mode="r")
            except (OSError, ValueError):
                return "missing"
            if array.shape != (rows, dim) or array.dtype != np.float32:
                return "missing"
        return "complete"

    def write_video(self, stem: str, features: Mapping[str, np.ndarray], record: Mapping[str, Any]) -> None:
        """Write a video's feature files, then its record (each atomically)."""
        for stream, values in features.items():
            with atomic_writer(self.feature_path(stream, stem), "wb") as handle:
                np.save(handle, np.ascontiguousarray(values, dtype=np.float32))
        atomic_write_json(self.record_path(stem), {k: record[k] for k in _RECORD_KEYS})

    # ------------------------------------------------------------------ manifest
    def merge(self) -> dict[str, Any]:
        """Rewrite ``manifest.json`` from the extractor and every video record (under the lock)."""
        with FileLock(self.lock_path):
            if not self.extractor_path.is_file():
                raise ValueError(f"{self.root}: no extraction settings recorded (manifest.d/extractor.json)")
            extractor = json.loads(self.extractor_path.read_text(encoding="utf-8"))
            videos = {}
            if self.records_dir.is_dir():
                for path in sorted(self.records_dir.glob("*.json"), key=lambda p: p.name):
                    if path.name.startswith("."):  # a temporary file of a writer in progress
                        continue
                    record = self.read_record(path.stem)
                    if record is not None:
                        videos[path.stem] = record
            manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "extractor": extractor,
                        "videos": dict(sorted(videos.items()))}
            atomic_write_json(self.manifest_path, manifest)
            return manifest
