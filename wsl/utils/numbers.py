"""Parsing of numbers read from JSON, YAML or text files, with messages that say where."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["finite_float"]


def finite_float(value: Any, what: str = "") -> float:
    """``value`` as a finite float: numbers and numeric strings (``"12.5"``, YAML 1.1's ``"1e-3"``).

    Booleans are not numbers here.

    Raises:
        ValueError: ``"{what}: expected a number, got {value!r}"`` or ``"...: expected a finite number, ..."``
            (without the ``"{what}: "`` prefix when ``what`` is empty).
    """
    where = f"{what}: " if what else ""
    if isinstance(value, bool):
        raise ValueError(f"{where}expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{where}expected a finite number, got {value!r}")
    return number
