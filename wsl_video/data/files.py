"""Reading annotation and feature files with one-line errors that name the file."""

from __future__ import annotations

import json
import pickle
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


def _numpy_module(name: str):
    import importlib

    try:
        return importlib.import_module(name.replace("numpy.core", "numpy._core", 1))
    except ImportError:  # NumPy 1.x
        return importlib.import_module(name)


# What a NumPy object array of arrays, numbers, byte strings and strings pickles as (NumPy 1 and 2,
# Python 2 and 3): array and scalar constructors, dtypes, and ``_codecs.encode`` for protocol-2 bytes.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds only NumPy arrays, scalars, dtypes, bytes, strings and plain containers."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            if module == "_codecs":
                import codecs

                return codecs.encode
            if module == "numpy":
                return getattr(np, name)
            return getattr(_numpy_module(module), name)
        raise pickle.UnpicklingError(f"refused to unpickle {module}.{name} (only NumPy arrays, numbers, bytes and "
                                     "strings are read; nothing in the file was run)")


def _load_pickled_npy(path: Path) -> np.ndarray:
    """Read a ``.npy`` file; an object array goes through :class:`_ArrayUnpickler` (NumPy arrays, numbers,
    bytes and strings only), never through an unrestricted unpickler."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
        if not dtype.hasobject:
            return np.load(path, allow_pickle=False)
        array = _ArrayUnpickler(handle, encoding="latin1").load()
    if not isinstance(array, np.ndarray) or array.shape != tuple(shape):
        raise ValueError(f"the pickle does not hold the array of shape {tuple(shape)} its header announces")
    return array


def read_npy(path: Path, *, object_arrays: bool = False, mmap_mode: str | None = None) -> np.ndarray:
    """Load a ``.npy`` file; a missing file raises ``FileNotFoundError``, a corrupt one ``ValueError``.

    ``object_arrays`` admits object arrays (the W-TALC files), read by a restricted unpickler (never
    NumPy's own unpickling) that builds only NumPy arrays, scalars, dtypes, bytes, strings and plain
    containers: a doctored file
    fails with a ``ValueError`` naming the function it would have called, and nothing in it runs.
    They are read with ``encoding="latin1"``, which also opens files written by Python 2 (such as
    the original W-TALC feature file) without altering numeric data.
    """
    require_file(path, "feature file")
    try:
        if object_arrays:
            return _load_pickled_npy(path)
        return np.load(path, allow_pickle=False, mmap_mode=mmap_mode)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as error:
        if str(error).startswith("refused"):
            raise ValueError(f"{path}: {error}") from None
        raise ValueError(f"{path}: not a readable .npy array (corrupt object array)") from None
    except Exception as error:  # bad headers, truncated data and unpickling errors come in many types
        if "pickle" in str(error):  # NumPy's text advises unpickling, which this reader never does
            raise ValueError(f"{path}: not a numeric .npy array (no .npy header, or an array of Python "
                             "objects)") from None
        reason = f"{type(error).__name__}: {error}"
        raise ValueError(f"{path}: not a numeric .npy array (corrupt or unreadable: {reason})") from None


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

