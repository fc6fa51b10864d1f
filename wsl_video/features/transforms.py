"""Frame geometry and network input scaling: resize modes, centre crop, RGB and flow value ranges.

A resize mode is a short string, recorded as is in the features manifest:

- ``short{S}_crop{C}``: scale so that the shorter side is ``S`` pixels (aspect ratio kept, the longer
  side rounded to the nearest pixel), then take the centre ``C x C`` crop. ``short256_crop224`` is the
  preprocessing of the Kinetics-trained I3D (kinetics-i3d README: smallest side 256, bilinear, centre
  224 x 224 crop at test time).
- ``resize{C}``: scale straight to ``C x C`` (aspect ratio not kept, no crop: the whole field of view).
- ``resize{H}x{W}_crop{C}``: scale straight to ``H x W``, then take the centre ``C x C`` crop (the
  ``128 x 171`` then ``112`` of torchvision's R3D / R(2+1)D weights).

Optical flow is computed on the scaled frame before the crop, then cropped like RGB, as the
kinetics-i3d README describes ("the same cropping as for RGB").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

__all__ = ["ResizeSpec", "parse_resize", "center_crop", "rgb_to_unit_range", "flow_to_unit_range"]

_SHORT = re.compile(r"short(\d+)_crop(\d+)")
_SQUARE = re.compile(r"resize(\d+)")
_RECT = re.compile(r"resize(\d+)x(\d+)_crop(\d+)")


@dataclass(frozen=True)
class ResizeSpec:
    """A parsed resize mode (see the module docstring). ``crop`` is None when there is no crop."""

    name: str
    short_side: int | None = None
    size: tuple[int, int] | None = None  # (height, width) of a direct resize
    crop: int | None = None

    def frame_size(self, width: int, height: int) -> tuple[int, int]:
        """``(width, height)`` of a ``width x height`` frame after scaling, before the crop."""
        if width < 1 or height < 1:
            raise ValueError(f"frame size must be positive, got {width}x{height}")
        if self.size is not None:
            return self.size[1], self.size[0]
        short = self.short_side
        if width <= height:
            return short, max(short, round(height * short / width))
        return max(short, round(width * short / height)), short

    @property
    def output_size(self) -> int:
        """Side of the square network input."""
        return self.crop if self.crop is not None else self.size[0]


def parse_resize(name: str) -> ResizeSpec:
    """Parse a resize mode string (``short256_crop224``, ``resize224``, ``resize128x171_crop112``).

    Raises:
        ValueError: the string is none of the three forms, or the crop is larger than the scaled frame.
    """
    if not isinstance(name, str):
        raise ValueError(f"resize mode must be a string, got {type(name).__name__}")
    if match := _SHORT.fullmatch(name):
        short, crop = int(match.group(1)), int(match.group(2))
        if crop < 1 or crop > short:
            raise ValueError(f"resize mode {name!r}: the crop must be between 1 and the shorter side {short}")
        return ResizeSpec(name, short_side=short, crop=crop)
    if match := _RECT.fullmatch(name):
        height, width, crop = (int(g) for g in match.groups())
        if crop < 1 or crop > min(height, width):
            raise ValueError(f"resize mode {name!r}: the crop must be between 1 and {min(height, width)}")
        return ResizeSpec(name, size=(height, width), crop=crop)
    if match := _SQUARE.fullmatch(name):
        side = int(match.group(1))
        if side < 1:
            raise ValueError(f"resize mode {name!r}: the size must be positive")
        return ResizeSpec(name, size=(side, side))
    raise ValueError(f"unknown resize mode {name!r}: expected short<S>_crop<C> (e.g. short256_crop224), "
                     "resize<C> (e.g. resize224) or resize<H>x<W>_crop<C> (e.g. resize128x171_crop112)")


def center_crop(frames: np.ndarray, size: int | None) -> np.ndarray:
    """The centre ``size x size`` window of ``frames (ndarray[..., H, W, C])`` (offsets rounded down).

    ``size=None`` returns ``frames`` unchanged.
    """
    if size is None:
        return frames
    height, width = frames.shape[-3], frames.shape[-2]
    if size > height or size > width:
        raise ValueError(f"cannot crop {size}x{size} from {height}x{width} frames")
    top, left = (height - size) // 2, (width - size) // 2
    return frames[..., top:top + size, left:left + size, :]


def rgb_to_unit_range(frames: np.ndarray) -> np.ndarray:
    """``uint8`` RGB in [0, 255] -> float32 in [-1, 1] (``x / 127.5 - 1``), the I3D input scaling."""
    if frames.dtype != np.uint8:
        raise ValueError(f"RGB frames must be uint8, got {frames.dtype}")
    return frames.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def flow_to_unit_range(flow: np.ndarray, bound: float = 20.0) -> np.ndarray:
    """Flow in pixels -> float32 in [-1, 1]: clipped to ``[-bound, bound]``, divided by ``bound``.

    The I3D flow input convention (kinetics-i3d: values truncated to [-20, 20], rescaled to [-1, 1]).
    """
    if bound <= 0:
        raise ValueError(f"flow bound must be positive, got {bound}")
    flow = np.asarray(flow, dtype=np.float32)
    return np.clip(flow, -bound, bound) / np.float32(bound)
