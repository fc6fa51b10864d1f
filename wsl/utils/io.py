"""Atomic file writes, safe checkpoint loading and JSON-ready values.

Every writer goes to a temporary file in the destination folder and renames it over the target
with :func:`os.replace`, which is atomic on POSIX and Windows; the file gets the mode a plain
``open(path, "w")`` would give it (the umask for a new file, the old file's mode for a replaced one).
Checkpoints are read with ``torch.load(..., weights_only=True)``: tensors, NumPy arrays and plain
containers only, so loading a checkpoint someone sent never runs code from it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["atomic_writer", "atomic_write_text", "atomic_write_json", "atomic_save", "load_checkpoint",
           "read_yaml", "jsonable"]


def _umask() -> int:
    """The process umask (read from /proc where possible: setting it to read it is not thread-safe)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _plain_open_mode(path: Path) -> int:
    """Permission bits ``open(path, "w")`` gives: an existing file keeps its own, a new one 0o666 & ~umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_writer(path: PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on success rename it over ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode_bits = _plain_open_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, mode_bits)  # mkstemp creates 0600 whatever the umask
        kwargs = {} if "b" in mode else {"encoding": encoding}
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_writer(path, "w") as handle:
        handle.write(text)


def atomic_write_json(path: PathLike, obj: Any, indent: int | None = 2) -> None:
    """Serialise ``obj`` as JSON to ``path`` atomically."""
    with atomic_writer(path, "w") as handle:
        json.dump(obj, handle, indent=indent)
        handle.write("\n")


def jsonable(value: Any) -> Any:
    """``value`` with plain Python containers and scalars only, ready for :func:`json.dump`.

    Mappings become dicts with string keys, lists and tuples become lists, NumPy arrays and scalars and
    torch tensors become (nested lists of) Python numbers through their ``tolist()``; anything else is kept.
    """
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, (str, bytes)):
        return value
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    return value


def atomic_save(obj: Any, path: PathLike) -> None:
    """``torch.save`` to ``path`` atomically (a checkpoint is either the old one or the new one)."""
    import torch

    with atomic_writer(path, "wb") as handle:
        torch.save(obj, handle)


def _numpy_globals() -> list:
    """What a NumPy array or dtype pickles as (``torch.load`` admits these beside tensors and containers)."""
    import numpy as np

    multiarray = getattr(np, "_core", None) or np.core
    dtype_classes = [type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDGSUV"]
    return [multiarray.multiarray._reconstruct, multiarray.multiarray.scalar, np.ndarray, np.dtype,
            *dtype_classes]


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def load_checkpoint(path: PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with NumPy arrays admitted; never runs code from the file.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: one line naming the file: the checkpoint needs arbitrary unpickling (refused, and
            nothing in it ran) or it is not a readable checkpoint.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        found = _GLOBAL.search(str(error))
        what = f"it would call {found.group(1)}" if found else "it holds more than tensors and plain containers"
        raise ValueError(f"{path}: refused to load: {what} when unpickled (only tensors, arrays and plain "
                         "containers are read; nothing in the file was run)") from None
    except Exception as error:  # truncated, not a zip or pickle, wrong format
        reason = " ".join(str(error).split()) or type(error).__name__
        raise ValueError(f"{path}: not a readable checkpoint ({reason[:200]})") from None


def read_yaml(path: PathLike) -> Any:
    """Parse a YAML file (an empty file gives an empty dict).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: the file is not valid YAML (the message names the file).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error})") from None
    return {} if values is None else values
