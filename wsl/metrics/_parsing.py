"""Parsing of [start, end] segments read from JSON, with messages that say where."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wsl.utils.numbers import finite_float

__all__ = ["parse_segment"]


def parse_segment(value: Any, where: str) -> tuple[float, float]:
    """``[start, end]`` (any two-item sequence of numbers) with ``start <= end``."""
    try:
        if isinstance(value, (str, bytes, Mapping)) or len(value) != 2:
            raise TypeError
        start, end = value[0], value[1]
    except (TypeError, KeyError, IndexError):
        raise ValueError(f"{where}: segment must be [start, end], got {value!r}") from None
    start, end = finite_float(start, where), finite_float(end, where)
    if end < start:
        raise ValueError(f"{where}: segment end {end} is before its start {start}")
    return start, end
