"""Atomic file writes: never leave a half-written file behind.

Every writer goes to a temporary file in the destination folder and renames it over the target
with :func:`os.replace`, which is atomic on POSIX and Windows.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["atomic_writer", "atomic_write_text", "atomic_write_json", "atomic_save", "read_yaml"]


@contextlib.contextmanager
def atomic_writer(path: PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on success rename it over ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
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


def atomic_save(obj: Any, path: PathLike) -> None:
    """``torch.save`` to ``path`` atomically (a checkpoint is either the old one or the new one)."""
    import torch

    with atomic_writer(path, "wb") as handle:
        torch.save(obj, handle)


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
