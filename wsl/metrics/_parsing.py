"""Parsing of numbers and [start, end] segments read from JSON, with messages that say where."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["parse_number", "parse_segment"]


def parse_number(value: Any, where: str) -> float:
    """A finite float (booleans are not numbers here); ValueError naming ``where`` otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{where}: expected a finite number, got {value!r}")
    return number


def parse_segment(value: Any, where: str) -> tuple[float, float]:
    """``[start, end]`` (any two-item sequence of numbers) with ``start <= end``."""
    try:
        if isinstance(value, (str, bytes, Mapping)) or len(value) != 2:
            raise TypeError
        start, end = value[0], value[1]
    except (TypeError, KeyError, IndexError):
        raise ValueError(f"{where}: segment must be [start, end], got {value!r}") from None
    start, end = parse_number(start, where), parse_number(end, where)
    if end < start:
        raise ValueError(f"{where}: segment end {end} is before its start {start}")
    return start, end
