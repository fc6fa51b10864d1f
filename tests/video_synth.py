"""Synthetic test videos written with PyAV: known motion, frame indices in the pixels, odd sizes and rates."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

# the shared data folder beside the repository (../shared), or the machine-wide one for a git worktree
_VIDEO_FOLDERS = [Path(__file__).resolve().parents[2] / "shared" / "data" / "videos", Path("/work/shared/data/videos")]
REAL_VIDEOS = next((p for p in _VIDEO_FOLDERS if p.is_dir()), _VIDEO_FOLDERS[0])
CLEAN_AND_JERK = REAL_VIDEOS / "v_GGSY1Qvo990.mp4"  # 19.62 fps, 320x240, 355 frames
DOG_WALK = REAL_VIDEOS / "v_ZNVhz7ctTq0.mp4"  # 30 fps, 480x360, 420 frames

_CODECS = {".mp4": ("libx264", "yuv444p"), ".mkv": ("libx264", "yuv444p"), ".avi": ("mpeg4", "yuv420p"),
           ".webm": ("libvpx-vp9", "yuv420p")}


def write_video(path: Path, frames: np.ndarray, fps: float | Fraction = 25, pts: Sequence[int] | None = None,
                time_base: Fraction | None = None, lossless: bool = True) -> Path:
    """Encode ``frames (ndarray[N, H, W, 3] uint8)`` to ``path`` (codec chosen by the extension).

    ``pts`` (with ``time_base``) gives each frame its own timestamp: a variable frame rate. H.264 in
    mp4/mkv is lossless (qp 0, 4:4:4) unless ``lossless=False``; avi/webm are lossy.
    """
    import av

    path = Path(path)
    codec, pix_fmt = _CODECS[path.suffix]
    height, width = frames.shape[1:3]
    if codec == "libx264" and not lossless:
        pix_fmt = "yuv420p"
    options = {"qp": "0"} if codec == "libx264" and lossless else {}
    rate = fps if isinstance(fps, Fraction) else Fraction(str(fps))
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if pts is not None:
            stream.codec_context.time_base = time_base
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = int(pts[i]), time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture ``(H, W, 3) uint8`` (blurred noise: good for optical flow)."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.random((height, width, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (smooth * 255).astype(np.uint8)


def moving_pattern(count: int, height: int, width: int, dx: int = 0, dy: int = 0, seed: int = 0) -> np.ndarray:
    """``count`` frames of a texture translated by ``(dx, dy)`` pixels per frame (right, down positive)."""
    margin_x, margin_y = abs(dx) * count + 1, abs(dy) * count + 1
    big = texture(height + 2 * margin_y, width + 2 * margin_x, seed)
    frames = []
    for k in range(count):
        top, left = margin_y - dy * k, margin_x - dx * k  # content moves by +dx: the window moves by -dx
        frames.append(big[top:top + height, left:left + width])
    return np.stack(frames)


def index_frames(count: int, size: int = 32) -> np.ndarray:
    """Frames whose index is written in 16 black/white blocks (decoded back by :func:`read_index`)."""
    block = size // 4
    frames = np.zeros((count, size, size, 3), np.uint8)
    for i in range(count):
        bits = np.array([(i >> b) & 1 for b in range(16)], np.uint8).reshape(4, 4) * 255
        frames[i] = np.kron(bits, np.ones((block, block), np.uint8))[..., None]
    return frames


def read_index(frame: np.ndarray) -> int:
    """The index written by :func:`index_frames` into a decoded (possibly scaled) frame."""
    height, width = frame.shape[:2]
    cells = frame[height // 8::height // 4, width // 8::width // 4, 0][:4, :4].reshape(-1) > 127
    return int(sum(int(bit) << k for k, bit in enumerate(cells)))


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An AAC audio file with no video stream."""
    import av

    rate = 16000
    samples = (0.2 * np.sin(2 * np.pi * 440 * np.arange(int(rate * seconds)) / rate)).astype(np.float32)[None]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return Path(path)


def truncated_copy(source: Path, target: Path, fraction: float = 0.5) -> Path:
    """The first ``fraction`` of ``source``'s bytes."""
    data = Path(source).read_bytes()
    Path(target).write_bytes(data[: int(len(data) * fraction)])
    return Path(target)
