"""Video decoding with PyAV: any container FFmpeg reads, resampled to a fixed frame rate by timestamps.

**Resampling rule.** Time 0 is the presentation timestamp of the first decoded frame; source frame
``i`` is on screen from its timestamp ``p_i`` until the next frame's, and the last frame for its own
duration, so the video ends at ``D = p_last + duration_last``. Output frame ``k`` at ``fps = F``
stands for the interval ``[k / F, (k + 1) / F)`` and shows the source frame on screen at the middle
of it: the last ``i`` with ``p_i < (k + 1/2) / F``. There are ``N = floor(D * F + 1/2)`` output
frames (those whose middle is not past the end). Timestamps are compared as exact fractions, so
19.62 or 29.97 (30000/1001) fps sources and variable frame rates need no special case. This is the
rule of FFmpeg's ``fps`` filter with its default rounding (the tests check that the two pick the same
frames), i.e. what ``ffmpeg -i in.mp4 -vf fps=25 ...`` gives.

**Memory.** Frames are decoded one at a time and handed out in chunks of at most ``chunk`` output
frames; only frames that are output are converted to RGB and scaled, so an hour-long video needs the
memory of one chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from wsl_video.features.transforms import ResizeSpec, parse_resize

__all__ = ["VideoError", "VideoInfo", "VideoDecoder", "FrameResampler", "resample_indices", "as_fraction",
           "probe_video"]


class VideoError(ValueError):
    """A video that cannot be used: missing, undecodable, without a video stream, or too short."""


def as_fraction(value: float | int | str | Fraction) -> Fraction:
    """An exact fraction for a frame rate: ``29.97 -> 2997/100``, ``"30000/1001"`` stays as written.

    Raises:
        ValueError: not a positive finite number.
    """
    try:
        fraction = Fraction(value) if isinstance(value, (Fraction, int, str)) else Fraction(str(value))
    except (ValueError, ZeroDivisionError, TypeError):
        raise ValueError(f"frame rate must be a positive number, got {value!r}") from None
    if fraction <= 0:
        raise ValueError(f"frame rate must be positive, got {value!r}")
    return fraction


def resample_indices(timestamps: Sequence[Fraction | float], end: Fraction | float,
                     fps: float | Fraction) -> list[int]:
    """Source frame index of every output frame (the rule in the module docstring).

    Args:
        timestamps: presentation times of the source frames in seconds, increasing, first one 0.
        end: end of the video in seconds (last timestamp + last frame's duration).
        fps: output frame rate.

    Returns:
        ``N = floor(end * fps + 1/2)`` indices; output frame ``k`` shows source frame ``indices[k]``.
    """
    rate = as_fraction(fps)
    times = [Fraction(t) for t in timestamps]
    if not times:
        return []
    if any(b <= a for a, b in zip(times, times[1:])):
        raise ValueError("timestamps must be strictly increasing")
    count = _output_count(Fraction(end), rate)
    indices, i = [], 0
    for k in range(count):
        middle = (k + Fraction(1, 2)) / rate
        while i + 1 < len(times) and times[i + 1] < middle:
            i += 1
        indices.append(i)
    return indices


def _output_count(end: Fraction, rate: Fraction) -> int:
    return max(0, math.floor(end * rate + Fraction(1, 2)))


class FrameResampler:
    """Streaming form of :func:`resample_indices`: push source frames in order, get output frames.

    ``push(time, item)`` returns the items of the output frames that are settled once a frame at
    ``time`` exists; ``finish(end)`` returns the rest. The items are whatever the caller passes (a
    decoded frame, an index); each output frame repeats the item of the source frame it shows.
    """

    def __init__(self, fps: float | Fraction):
        self.rate = as_fraction(fps)
        self.emitted = 0
        self._current = None
        self._last_time: Fraction | None = None

    def push(self, time: Fraction, item) -> list:
        if self._last_time is not None and time <= self._last_time:
            return []  # a repeated or out-of-order timestamp: the frame is never on screen
        out = []
        if self._last_time is not None:
            while (self.emitted + Fraction(1, 2)) / self.rate <= time:
                out.append(self._current)
                self.emitted += 1
        self._current, self._last_time = item, time
        return out

    def finish(self, end: Fraction) -> list:
        if self._last_time is None:
            return []
        count = _output_count(end, self.rate)
        out = [self._current] * max(0, count - self.emitted)
        self.emitted = max(self.emitted, count)
        return out


@dataclass(frozen=True)
class VideoInfo:
    """What decoding a video found.

    ``source_fps`` is the stream's average frame rate (None when the container does not give one),
    ``duration`` the seconds from the first frame to the end of the last, ``frames`` the number of
    output frames at the target rate (``floor(duration * fps + 1/2)``), ``width``/``height`` the
    source frame size.
    """

    source: str
    source_fps: float | None
    duration: float
    frames: int
    width: int
    height: int


def _open(path: Path):
    import av

    if not path.is_file():
        raise VideoError(f"{path}: file not found")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise VideoError(f"{path}: cannot be opened as a video ({_reason(error)})") from None
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
        container.close()
        raise VideoError(f"{path}: no video stream ({kinds})")
    return container


def _reason(error: BaseException) -> str:
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return " ".join(str(text).split())[:200]


def _stream_rate(stream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate)
    return None


def probe_video(path: str | Path) -> tuple[float | None, float | None, int, int]:
    """``(source_fps, duration_estimate_s, width, height)`` from the container header, without decoding.

    The duration is the header's (None when absent); :class:`VideoDecoder` measures the exact one.

    Raises:
        VideoError: missing file, not a readable container, or no video stream.
    """
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = _stream_rate(stream)
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        return (float(rate) if rate else None), duration, stream.codec_context.width, stream.codec_context.height


class VideoDecoder:
    """Decode one video at a fixed frame rate, scaled for the network, in bounded chunks.

    Args:
        path: video file (any container and codec FFmpeg reads: mp4, avi, mkv, webm, ...).
        fps: output frame rate (default 25).
        resize: resize mode (see :mod:`wsl_video.features.transforms`); frames come out scaled but
            not cropped (the crop is applied after optical flow).
        limit_seconds: read only the first ``limit_seconds`` of the video (an excerpt); None: all.

    ``chunks(chunk)`` yields ``ndarray[n, H, W, 3] uint8`` RGB arrays with ``n <= chunk``; once it is
    exhausted, :attr:`info` holds the :class:`VideoInfo`.

    Raises:
        VideoError: (from ``chunks``) missing file, undecodable data, no video stream, no frames, or a
            truncated file (the frames end more than 1 s and 5 % before the stream's duration in the header).
    """

    def __init__(self, path: str | Path, fps: float = 25.0, resize: str | ResizeSpec = "short256_crop224",
                 limit_seconds: float | None = None):
        self.path = Path(path)
        self.rate = as_fraction(fps)
        self.resize = resize if isinstance(resize, ResizeSpec) else parse_resize(resize)
        if limit_seconds is not None and not limit_seconds > 0:
            raise ValueError(f"limit_seconds must be positive, got {limit_seconds}")
        self.limit = None if limit_seconds is None else Fraction(str(limit_seconds))
        self.info: VideoInfo | None = None

    def estimate_frames(self) -> int | None:
        """Output frames expected from the container header (for progress bars); None when unknown."""
        try:
            _, duration, _, _ = probe_video(self.path)
        except VideoError:
            return None
        if duration is None:
            return None
        if self.limit is not None:
            duration = min(duration, float(self.limit))
        return max(0, math.floor(duration * float(self.rate) + 0.5))

    def chunks(self, chunk: int = 64) -> Iterator[np.ndarray]:
        import av

        if chunk < 1:
            raise ValueError(f"chunk must be at least 1, got {chunk}")
        container = _open(self.path)
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            source_rate = _stream_rate(stream)
            time_base = Fraction(stream.time_base) if stream.time_base else None
            resampler = FrameResampler(self.rate)
            buffer: list[np.ndarray] = []
            shown: list = [None, None]  # the frame last converted and its RGB array
            state = {"first": None, "last": None, "last_duration": None, "size": None, "source": None}

            def convert(frame) -> np.ndarray:
                if shown[0] is not frame:  # a frame shown several times is converted once
                    if state["size"] is None:
                        state["source"] = (frame.width, frame.height)
                        state["size"] = self.resize.frame_size(frame.width, frame.height)
                    width, height = state["size"]
                    shown[0] = frame
                    shown[1] = frame.to_ndarray(width=width, height=height, format="rgb24", interpolation="BILINEAR")
                return shown[1]

            def emit(frames) -> Iterator[np.ndarray]:
                for frame in frames:
                    buffer.append(convert(frame))
                    if len(buffer) == chunk:
                        yield np.stack(buffer)
                        buffer.clear()

            stop = False
            try:
                for frame in container.decode(stream):
                    time = self._frame_time(frame, time_base, source_rate, state)
                    if time is None:
                        continue
                    if self.limit is not None and time >= self.limit:
                        stop = True
                        break
                    yield from emit(resampler.push(time, frame))
            except av.error.FFmpegError as error:
                raise VideoError(f"{self.path}: cannot be decoded ({_reason(error)})") from None
            if state["first"] is None:
                raise VideoError(f"{self.path}: no decodable video frames")
            end = state["last"] + self._last_duration(state, source_rate)
            header = stream.duration * time_base if stream.duration and time_base else None
            if not stop and header is not None and end < header - max(1, header / 20):
                raise VideoError(f"{self.path}: truncated: the video stream ends at {float(end):.2f} s, "
                                 f"its header says {float(header):.2f} s")
            if stop or (self.limit is not None and end > self.limit):
                end = self.limit
            yield from emit(resampler.finish(end))
            if buffer:
                yield np.stack(buffer)
                buffer.clear()
            if state["source"] is None:  # the video was shorter than half an output frame
                frame_w, frame_h = stream.codec_context.width, stream.codec_context.height
            else:
                frame_w, frame_h = state["source"]
            self.info = VideoInfo(source=str(self.path.resolve()),
                                  source_fps=float(source_rate) if source_rate else None, duration=float(end),
                                  frames=resampler.emitted, width=frame_w, height=frame_h)
        finally:
            container.close()

    @staticmethod
    def _frame_time(frame, time_base, source_rate, state) -> Fraction | None:
        """Seconds since the first frame; the frame's duration is remembered for the end of the video."""
        base = Fraction(frame.time_base) if frame.time_base else time_base
        if frame.pts is not None and base is not None:
            absolute = frame.pts * base
        elif state["last"] is not None:  # no timestamp: one frame period after the previous frame
            absolute = state["first"] + state["last"] + (1 / source_rate if source_rate else Fraction(1, 25))
        else:
            absolute = Fraction(0)
        if state["first"] is None:
            state["first"] = absolute
        time = absolute - state["first"]
        if state["last"] is not None and time <= state["last"]:
            return None
        duration = getattr(frame, "duration", None)
        state["last_duration"] = duration * base if duration and base is not None else None
        state["previous"], state["last"] = state["last"], time
        return time

    @staticmethod
    def _last_duration(state, source_rate) -> Fraction:
        if state["last_duration"]:
            return state["last_duration"]
        if state.get("previous") is not None:
            return state["last"] - state["previous"]
        return 1 / source_rate if source_rate else Fraction(1, 25)
