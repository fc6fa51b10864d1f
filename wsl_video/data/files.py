"""Reading annotation and feature files with one-line errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["read_json", "read_npy", "npy_length_and_dim", "read_lines", "require_file"]


def require_file(path: Path, what: str = "file") -> Path:
    """Return ``path`` if it is a file, else raise ``FileNotFoundError`` naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    return path


def read_json(path: Path) -> Any:
    """Parse a JSON file; a corrupt file raises ``ValueError`` naming it."""
    require_file(path, "annotation file")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: corrupt JSON ({error})") from None


def read_npy(path: Path, *, allow_pickle: bool = False, mmap_mode: str | None = None) -> np.ndarray:
    """Load a ``.npy`` file; a missing file raises ``FileNotFoundError``, a corrupt one ``ValueError``.

    Pickled object arrays are read with ``encoding="latin1"``, which also opens files written by
    Python 2 (such as the original W-TALC feature file) without altering numeric data.
    """
    require_file(path, "feature file")
    try:
        if allow_pickle:
            return np.load(path, allow_pickle=True, mmap_mode=mmap_mode, encoding="latin1")
        return np.load(path, allow_pickle=False, mmap_mode=mmap_mode)
    except FileNotFoundError:
        raise
    except Exception as error:  # bad headers, truncated data and unpickling errors come in many types
        reason = f"{type(error).__name__}: {error}"
        raise ValueError(f"{path}: corrupt or unreadable .npy file ({reason})") from None


def npy_length_and_dim(path: Path) -> tuple[int, int]:
    """``(T, D)`` of a 2-D feature file, read from its header only."""
    array = read_npy(path, mmap_mode="r")
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{path}: expected a non-empty (T, D) feature array, got shape {array.shape}")
    if array.dtype.kind not in "fiu":
        raise ValueError(f"{path}: expected numeric features, got dtype {array.dtype}")
    return int(array.shape[0]), int(array.shape[1])


def read_lines(path: Path) -> list[str]:
    """Non-empty stripped lines of a text file (split lists, ambiguous segments)."""
    require_file(path, "list file")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not a text file ({error})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]

