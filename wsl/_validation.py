"""Input validation switch.

Value checks (probabilities in [0, 1], no NaN, every sample has a valid position) read tensor data,
which costs a device synchronisation. They are on by default. Turn them off for speed with
``wsl.set_validation(False)``, the context manager ``with wsl.validation(False): ...``, or the
environment variable ``WSL_VALIDATE=0``. Shape and dtype checks are free and always on. Value checks
are skipped while ``torch.compile`` traces, so compiled graphs have no data-dependent branches.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch

__all__ = ["set_validation", "validation", "validation_enabled"]

_ENABLED = os.environ.get("WSL_VALIDATE", "1").strip().lower() not in {"0", "false", "no", "off"}


def set_validation(enabled: bool) -> None:
    """Turn value checks on or off globally."""
    global _ENABLED
    _ENABLED = bool(enabled)


def validation_enabled() -> bool:
    """Whether value checks run now (never while ``torch.compile`` traces)."""
    if not _ENABLED:
        return False
    compiler = getattr(torch, "compiler", None)
    return not (compiler is not None and compiler.is_compiling())


@contextlib.contextmanager
def validation(enabled: bool) -> Iterator[None]:
    """Context manager that sets value checks on or off and restores the previous setting."""
    global _ENABLED
    previous = _ENABLED
    _ENABLED = bool(enabled)
    try:
        yield
    finally:
        _ENABLED = previous
