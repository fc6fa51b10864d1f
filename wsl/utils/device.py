"""The torch device a command runs on, from the name a user gives (``--device``, ``train.device``, ``device``).

One meaning everywhere: ``auto`` is CUDA when available, else the CPU; ``cpu``, ``cuda`` and ``cuda:N`` name a
device. A CUDA device on a machine without CUDA (or an index it does not have) is an error, never a silent
fallback to the CPU.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["resolve_device", "check_device_name", "DEVICE_CHOICES"]

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device_name(name: str, key: str = "device") -> None:
    """Refuse a name :func:`resolve_device` never accepts (whatever the machine): ``ValueError`` naming ``key``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"{key} must be {DEVICE_CHOICES}, got {name!r}")


def resolve_device(name: str | torch.device | None = "auto", local_rank: int | None = None) -> torch.device:
    """The :class:`torch.device` named by ``name``.

    Args:
        name: ``auto`` (or None): ``cuda`` when CUDA is available, else ``cpu``; ``cpu``, ``cuda``, ``cuda:N``;
            or a :class:`torch.device` of those types.
        local_rank: this process's local rank under ``torchrun``: a plain ``cuda`` (or ``auto`` resolved to
            it) becomes ``cuda:<local_rank>``, one GPU per process. None: ``cuda`` stays the current device.

    Raises:
        ValueError: ``name`` is none of the accepted values, or a CUDA device is named and CUDA is not
            available (or has no such index); the message names it.
    """
    import torch

    text = "auto" if name is None else str(name)
    if not _NAME.fullmatch(text):
        raise ValueError(f"unknown device {text!r}: expected {DEVICE_CHOICES}")
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {text!r} requested but CUDA is not available on this machine")
        count = torch.cuda.device_count()
        if text == "cuda" and local_rank is not None:
            text = f"cuda:{int(local_rank) % count}"
        if ":" in text and int(text.split(":")[1]) >= count:
            raise ValueError(f"device {text!r} requested but this machine has {count} CUDA device(s)")
    return torch.device(text)
