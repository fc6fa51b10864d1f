"""Snippet features of one video file: decode -> (flow) -> network, in batches fixed by the video alone.

**Snippets.** The video is resampled to ``fps`` (:mod:`wsl_video.features.decoding`): ``N`` frames.
Snippet ``i`` is frames ``[i * L, (i + 1) * L)`` (``L = snippet``), so there are ``T = floor(N / L)``
snippets and snippet ``i`` covers ``[i * L / fps, (i + 1) * L / fps)`` seconds; the last partial
snippet (``N mod L`` frames, less than 0.64 s at the defaults) is dropped, as a non-overlapping
16-frame extractor does. A video with ``N < L`` has no snippet and is refused.

**Flow maps.** Flow map ``j`` is the flow from frame ``j`` to frame ``j + 1``; snippet ``i`` takes maps
``[i * L, (i + 1) * L)``, i.e. the motion out of each of its ``L`` frames, which needs frame
``(i + 1) * L``, the first frame of the next snippet. Only when ``N`` is a multiple of ``L`` does the
last snippet lack that frame; its last map then repeats the one before. RGB and flow therefore always
have the same ``T`` rows and row ``i`` of both covers the same frames.

**Determinism.** Snippets go through the networks in batches of ``batch_size`` consecutive snippets
starting at snippet 0 of each video, so a video's features do not depend on which other videos are
processed in the same run, on the order of the videos, or on the number of flow workers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from wsl.utils.device import resolve_device
from wsl_video.features.decoding import VideoDecoder, VideoError, VideoInfo
from wsl_video.features.settings import ExtractionSettings
from wsl_video.features.transforms import center_crop, flow_to_unit_range, parse_resize, rgb_to_unit_range

__all__ = ["FeatureExtractor", "VideoFeatures", "extract_video"]


@dataclass
class VideoFeatures:
    """The features of one video and what decoding it found.

    Attributes:
        features: stream (``"rgb"``, ``"flow"``) -> ``ndarray[T, D] float32``.
        info: the decoder's :class:`~wsl_video.features.decoding.VideoInfo` (source, fps, duration, frames).
        num_snippets: ``T``.
        seconds_per_snippet: ``snippet / fps``; snippet ``i`` covers ``[i * s, (i + 1) * s)`` seconds.
    """

    features: dict[str, np.ndarray]
    info: VideoInfo
    num_snippets: int
    seconds_per_snippet: float

    def record(self) -> dict[str, Any]:
        """The video's entry in ``manifest.json["videos"]``."""
        return {"source": self.info.source, "source_fps": self.info.source_fps, "duration": self.info.duration,
                "frames": self.info.frames, "num_snippets": self.num_snippets,
                "seconds_per_snippet": self.seconds_per_snippet}


class FeatureExtractor:
    """Extract the snippet features of video files with fixed :class:`ExtractionSettings`.

    Args:
        settings: what the features depend on (recorded by :attr:`extractor`).
        device: torch device for the networks (and RAFT); ``"auto"``: CUDA when available.
        batch_size: snippets per forward pass (memory, not results: see the module docstring).
        workers: TV-L1 worker processes (0: in this process).
        chunk: decoded frames held at a time (bounded memory for long videos).

    Use as a context manager (or call :meth:`close`) to stop the TV-L1 workers.

    Example::

        with FeatureExtractor(ExtractionSettings(rgb_weights="rgb_imagenet.pt",
                                                 flow_weights="flow_imagenet.pt")) as extractor:
            result = extractor.extract("video.mp4")
        result.features["rgb"].shape      # (T, 1024)
        result.record()                   # {"source": ..., "num_snippets": T, "seconds_per_snippet": 0.64, ...}
    """

    def __init__(self, settings: ExtractionSettings, device: str | torch.device = "auto", batch_size: int = 8,
                 workers: int = 0, chunk: int = 64):
        if not isinstance(settings, ExtractionSettings):
            raise ValueError(f"settings must be ExtractionSettings, got {type(settings).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1, got {chunk}")
        self.settings = settings.resolved()
        self.extractor: dict[str, Any] = self.settings.to_extractor()
        # one process per GPU under torchrun: a plain cuda (or auto) is this process's GPU
        self.device = resolve_device(device, local_rank=int(os.environ.get("LOCAL_RANK") or 0))
        self.batch_size = batch_size
        self.chunk = chunk
        self.resize = parse_resize(self.settings.resize)
        self._networks = self._build_networks()
        self._flow = None
        method = self.settings.flow_method
        if method == "tvl1":
            from wsl_video.features.flow import TVL1Flow

            self._flow = TVL1Flow(workers)
        elif method == "raft":
            from wsl_video.features.flow import RaftFlow

            self._flow = RaftFlow(self.settings.raft_model, self.settings.raft_weights, self.settings.raft_iterations,
                                  self.device, batch_size=self.settings.snippet)

    @property
    def streams(self) -> tuple[str, ...]:
        return self.settings.streams

    @property
    def feature_dims(self) -> dict[str, int]:
        return dict(self.settings.feature_dims)

    def _build_networks(self) -> dict[str, torch.nn.Module]:
        s = self.settings
        if s.backbone == "i3d":
            from wsl_video.features.i3d import load_i3d

            networks = {"rgb": load_i3d("rgb", s.rgb_weights)}
            if s.flow_method:
                networks["flow"] = load_i3d("flow", s.flow_weights)
        else:
            from wsl_video.features.backbones import load_video_backbone

            networks = {"rgb": load_video_backbone(s.backbone, s.rgb_weights)}
            spec = networks["rgb"].spec
            if s.snippet < spec.min_frames:
                raise ValueError(f"{s.backbone} takes clips of at least {spec.min_frames} frames, "
                                 f"got snippet {s.snippet}")
            fixed = spec.fixed_input
            if fixed is not None and (s.snippet, self.resize.output_size, self.resize.output_size) != fixed:
                raise ValueError(f"{s.backbone} takes clips of exactly {fixed[0]} frames of {fixed[1]}x{fixed[2]}: "
                                 f"snippet {s.snippet} with resize {s.resize} gives {s.snippet} frames of "
                                 f"{self.resize.output_size}x{self.resize.output_size}")
        return {k: v.to(self.device).eval() for k, v in networks.items()}

    # ------------------------------------------------------------------ one video
    def extract(self, path: str | Path, progress: Callable[[int], Any] | None = None,
                limit_seconds: float | None = None) -> VideoFeatures:
        """Features of one video file.

        Args:
            path: the video.
            progress: called with the number of snippets finished since the last call.
            limit_seconds: only the first ``limit_seconds`` of the video (an excerpt).

        Raises:
            VideoError (a ValueError): missing or undecodable file, no video stream, shorter than one snippet,
                non-finite features.
        """
        s = self.settings
        length = s.snippet
        decoder = VideoDecoder(path, s.fps, self.resize, limit_seconds=limit_seconds)
        outputs: dict[str, list[np.ndarray]] = {stream: [] for stream in self.streams}
        batch: list[tuple[np.ndarray, Any]] = []
        pending = np.empty((0,), np.uint8)

        def flush() -> None:
            if batch:
                self._run_batch(batch, outputs)
                if progress is not None:
                    progress(len(batch))
                batch.clear()

        def add_snippet(frames: np.ndarray, last: bool) -> None:
            rgb = center_crop(frames[:length], self.resize.crop)
            flow = None
            if self._flow is not None:
                flow = self._flow.submit(frames)
            batch.append((rgb, (flow, last and len(frames) == length)))
            if len(batch) == self.batch_size:
                flush()

        for chunk in decoder.chunks(self.chunk):
            pending = chunk if pending.size == 0 else np.concatenate([pending, chunk])
            while len(pending) >= length + 1:  # a snippet and the first frame of the next
                add_snippet(pending[:length + 1], last=False)
                pending = pending[length:]
        if len(pending) == length:
            add_snippet(pending, last=True)
        flush()
        info = decoder.info
        count = info.frames // length
        if count == 0:
            raise VideoError(f"{path}: shorter than one snippet ({info.frames} frames at {s.fps:g} fps, "
                             f"{info.duration:.2f} s < {length} frames = {length / s.fps:.2f} s)")
        features = {stream: np.concatenate(outputs[stream]).astype(np.float32, copy=False) for stream in self.streams}
        for stream, values in features.items():
            if values.shape != (count, self.feature_dims[stream]):
                raise RuntimeError(f"{path}: {stream} features have shape {values.shape}, expected "
                                   f"({count}, {self.feature_dims[stream]})")
            if not np.isfinite(values).all():
                raise VideoError(f"{path}: the {stream} network gave NaN or infinite features")
        return VideoFeatures(features, info, count, s.seconds_per_snippet)

    def _run_batch(self, batch: list, outputs: dict[str, list[np.ndarray]]) -> None:
        s = self.settings
        with torch.inference_mode():
            rgb = np.stack([item[0] for item in batch])  # (B, L, H, W, 3) uint8
            outputs["rgb"].append(self._encode("rgb", rgb))
            if "flow" in self.streams:
                maps = []
                for _, (future, repeat_last) in batch:
                    flow = future.result()
                    if repeat_last:  # the video ends on this snippet's last frame: no map out of it
                        flow = np.concatenate([flow, flow[-1:]])
                    maps.append(center_crop(flow, self.resize.crop))
                flow = flow_to_unit_range(np.stack(maps), s.flow_bound)  # (B, L, H, W, 2)
                outputs["flow"].append(self._encode("flow", flow))

    def _encode(self, stream: str, clips: np.ndarray) -> np.ndarray:
        network = self._networks[stream]
        if stream == "rgb" and self.settings.backbone == "i3d":
            clips = rgb_to_unit_range(clips)
        tensor = torch.from_numpy(np.ascontiguousarray(clips)).to(self.device)
        tensor = tensor.permute(0, 4, 1, 2, 3)  # (B, C, L, H, W)
        if stream == "rgb" and self.settings.backbone != "i3d":
            tensor = network.normalize(tensor)
        return network(tensor.contiguous()).float().cpu().numpy()

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Stop the TV-L1 worker processes."""
        if self._flow is not None and hasattr(self._flow, "close"):
            self._flow.close()

    def __enter__(self) -> FeatureExtractor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def extract_video(path: str | Path, settings: ExtractionSettings, device: str | torch.device = "auto",
                  batch_size: int = 8, workers: int = 0) -> VideoFeatures:
    """Features of one video file: ``FeatureExtractor(settings, ...).extract(path)`` (see there)."""
    with FeatureExtractor(settings, device=device, batch_size=batch_size, workers=workers) as extractor:
        return extractor.extract(path)
