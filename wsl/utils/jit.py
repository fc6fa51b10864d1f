"""Compiled loops through numba, when it is installed (the ``[image]`` extra brings it).

Kernels that need per-pixel loops (the contour sweep of MaxBoxAcc, pixel histograms) are written for numba and
have an exact NumPy/OpenCV path beside them; :func:`numba_available` says which one runs. Setting the environment
variable ``WSL_NO_NUMBA=1`` forces the NumPy/OpenCV path (the tests run both and compare them).

:func:`njit` compiles lazily, on the first call, and caches the machine code next to the module (or in numba's
user cache when that folder is read-only), so only the first run of a new installation pays the compilation.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any, Callable

__all__ = ["numba_available", "njit"]


@cache
def _numba() -> Any:
    if os.environ.get("WSL_NO_NUMBA", "").strip() not in ("", "0"):
        return None
    try:
        import numba
    except ImportError:  # the [image] extra is not installed: the NumPy/OpenCV path runs
        return None
    return numba


def numba_available() -> bool:
    """Whether the compiled kernels run (numba importable and ``WSL_NO_NUMBA`` not set)."""
    return _numba() is not None


def njit(function: Callable | None = None, **options: Any) -> Any:
    """``numba.njit(cache=True, nogil=True, **options)`` when numba is installed, else the plain function.

    Usable bare (``@njit``) or with options (``@njit(inline="always")``). Without numba, the decorated
    function stays plain Python: callers check :func:`numba_available` before choosing a kernel path.
    """

    def decorate(inner: Callable) -> Any:
        try:
            import numba
        except ImportError:
            return inner
        return numba.njit(cache=True, nogil=True, **options)(inner)

    return decorate(function) if function is not None else decorate
