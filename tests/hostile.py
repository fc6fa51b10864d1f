"""Test helper: checkpoints whose pickle would run code (create a marker file) if fully unpickled."""

from __future__ import annotations

from pathlib import Path

import torch


class MarkerPayload:
    """Unpickling this object calls ``open(path, "w")``: the stand-in for a hostile checkpoint's code."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def hostile_checkpoint(path: Path, marker: Path, base: dict | None = None) -> Path:
    """Write ``base`` plus a :class:`MarkerPayload` to ``path`` in the ``torch.save`` format."""
    torch.save({**(base or {}), "payload": MarkerPayload(marker)}, path)
    assert not marker.exists()
    return path
