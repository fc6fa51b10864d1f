"""Optical flow between consecutive frames: TV-L1 (OpenCV contrib, CPU processes) and RAFT (torchvision).

Both return ``ndarray[N - 1, H, W, 2] float32`` for ``N`` frames: map ``j`` is the flow from frame
``j`` to frame ``j + 1`` in pixels, channel 0 the horizontal (``x``, positive to the right) and
channel 1 the vertical (``y``, positive downwards) displacement, so that
``frame_{j+1}[y + v, x + u] ~ frame_j[y, x]``. A pattern moving right by 2 pixels per frame gives
``u = +2, v = 0``.

TV-L1 runs on grayscale frames (``cv2.COLOR_RGB2GRAY``) with OpenCV's default parameters (tau 0.25,
lambda 0.15, theta 0.3, 5 scales, 5 warps, epsilon 0.01, 30 inner and 10 outer iterations, scale step
0.8, median filtering 5), the algorithm the kinetics-i3d README names for the published I3D flow. It
is CPU-bound; :class:`TVL1Flow` spreads the pairs over worker processes. Results do not depend on the
number of workers or of OpenCV threads (each pair is computed independently and deterministically).
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import numpy as np

__all__ = ["TVL1_PARAMS", "tvl1_flow", "TVL1Flow", "RaftFlow", "RAFT_MODELS", "default_workers"]

TVL1_PARAMS = {
    "tau": 0.25, "lambda": 0.15, "theta": 0.3, "scales": 5, "warps": 5, "epsilon": 0.01,
    "inner_iterations": 30, "outer_iterations": 10, "scale_step": 0.8, "gamma": 0.0, "median_filtering": 5,
}
"""OpenCV's defaults for ``DualTVL1OpticalFlow``, recorded in the features manifest."""

_SETTERS = {
    "tau": "setTau", "lambda": "setLambda", "theta": "setTheta", "scales": "setScalesNumber",
    "warps": "setWarpingsNumber", "epsilon": "setEpsilon", "inner_iterations": "setInnerIterations",
    "outer_iterations": "setOuterIterations", "scale_step": "setScaleStep", "gamma": "setGamma",
    "median_filtering": "setMedianFiltering",
}
_SOLVERS: dict = {}


def _solver(params: dict):
    import cv2

    key = tuple(sorted(params.items()))
    if key not in _SOLVERS:
        solver = cv2.optflow.DualTVL1OpticalFlow_create()
        for name, value in params.items():
            getattr(solver, _SETTERS[name])(value)
        _SOLVERS[key] = solver
    return _SOLVERS[key]


def _check_frames(frames: np.ndarray, channels: int | None = 3) -> None:
    if frames.ndim != 4 or (channels is not None and frames.shape[-1] != channels):
        raise ValueError(f"frames must be ndarray[N, H, W, 3], got shape {tuple(frames.shape)}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    if len(frames) < 2:
        raise ValueError(f"optical flow needs at least 2 frames, got {len(frames)}")


def _to_gray(frames: np.ndarray) -> np.ndarray:
    import cv2

    return np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames])


def _tvl1_gray(gray: np.ndarray, params: dict | None = None) -> np.ndarray:
    """TV-L1 between consecutive grayscale frames ``(N, H, W) uint8`` -> ``(N - 1, H, W, 2)`` float32."""
    solver = _solver(dict(TVL1_PARAMS if params is None else params))
    out = np.empty((len(gray) - 1, *gray.shape[1:], 2), np.float32)
    for j in range(len(gray) - 1):
        out[j] = solver.calc(gray[j], gray[j + 1], None)
    return out


def tvl1_flow(frames: np.ndarray, params: dict | None = None) -> np.ndarray:
    """TV-L1 flow between consecutive frames, in this process.

    Args:
        frames (ndarray[N, H, W, 3] uint8): RGB frames, ``N >= 2``.
        params: TV-L1 parameters (keys of :data:`TVL1_PARAMS`); OpenCV's defaults when None.

    Returns:
        ndarray[N - 1, H, W, 2] float32: flow in pixels, ``(x, y)``.
    """
    _check_frames(frames)
    return _tvl1_gray(_to_gray(frames), params)


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)  # the pool is the parallelism; one OpenCV thread per process


def default_workers() -> int:
    """CPUs this process may use, shared among the ranks of this node (``LOCAL_WORLD_SIZE``), minus one."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, cpus // max(1, local) - 1)


class TVL1Flow:
    """TV-L1 on ``workers`` processes (0: in this process). Use as a context manager or call :meth:`close`.

    ``submit(frames)`` returns a :class:`concurrent.futures.Future` of the ``(N - 1, H, W, 2)`` flow of
    ``frames (ndarray[N, H, W, 3] uint8)``; ``__call__`` waits for it. Pairs are cut into tasks of
    ``pairs_per_task`` so that a few snippets keep every worker busy.
    """

    def __init__(self, workers: int = 0, params: dict | None = None, pairs_per_task: int = 4):
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        if pairs_per_task < 1:
            raise ValueError(f"pairs_per_task must be >= 1, got {pairs_per_task}")
        self.workers = workers
        self.params = dict(TVL1_PARAMS if params is None else params)
        unknown = set(self.params) - set(TVL1_PARAMS)
        if unknown:
            raise ValueError(f"unknown TV-L1 parameters: {', '.join(sorted(unknown))}")
        self.pairs_per_task = pairs_per_task
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing

            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_worker_init)
        return self._pool

    def submit(self, frames: np.ndarray) -> Future:
        _check_frames(frames)
        gray = _to_gray(frames)
        if self.workers == 0:
            future: Future = Future()
            try:
                future.set_result(_tvl1_gray(gray, self.params))
            except Exception as error:  # surfaced by result(), as with a pool
                future.set_exception(error)
            return future
        pool = self._executor()
        step = self.pairs_per_task
        parts = [pool.submit(_tvl1_gray, gray[start:start + step + 1], self.params)
                 for start in range(0, len(gray) - 1, step)]
        return _Joined(parts)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return self.submit(frames).result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> TVL1Flow:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Joined(Future):
    """The concatenation of several futures' arrays along the first axis."""

    def __init__(self, parts: list[Future]):
        super().__init__()
        self._parts = parts

    def done(self) -> bool:
        return all(part.done() for part in self._parts)

    def result(self, timeout=None) -> np.ndarray:
        return np.concatenate([part.result(timeout) for part in self._parts])


RAFT_MODELS = ("raft_large", "raft_small")


def _raft_builder(model: str):
    from torchvision.models import optical_flow

    if model not in RAFT_MODELS:
        raise ValueError(f"unknown RAFT model {model!r}: expected one of {', '.join(RAFT_MODELS)}")
    weights_enum = optical_flow.Raft_Large_Weights if model == "raft_large" else optical_flow.Raft_Small_Weights
    return getattr(optical_flow, model), weights_enum


class RaftFlow:
    """RAFT from ``torchvision.models.optical_flow`` on RGB frames (the fast GPU option).

    Args:
        model: ``"raft_large"`` or ``"raft_small"``.
        weights: a local ``.pth``/``.pt`` file with the torchvision model's state dict (loaded with
            ``weights_only=True``, strictly), a torchvision weights name (``"DEFAULT"``,
            ``"C_T_SKHT_V2"``, ...; taken from torchvision's cache, downloaded when missing), or None
            for a randomly initialised model (seed 0; tests and smoke runs only).
        iterations: RAFT's recurrent refinement steps (torchvision's default, 12).
        device: torch device.
        batch_size: frame pairs per forward pass.

    Frames are scaled to [-1, 1] as torchvision's RAFT transforms do, padded at the bottom and right
    (edge values) to a multiple of 8 pixels and at least 128 (RAFT's smallest input), and the flow is
    cut back to the frame size.
    """

    def __init__(self, model: str = "raft_large", weights: str | Path | None = "DEFAULT", iterations: int = 12,
                 device="cpu", batch_size: int = 8):
        import torch

        from wsl_video.features.weights import load_torchvision_weights

        builder, weights_enum = _raft_builder(model)
        if iterations < 1:
            raise ValueError(f"RAFT iterations must be >= 1, got {iterations}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = builder(weights=None)
        self.source = load_torchvision_weights(net, weights, weights_enum, what=f"{model} weights")
        self.net = net.eval().to(device)
        self.device = torch.device(device)
        self.iterations = iterations
        self.batch_size = batch_size

    def submit(self, frames: np.ndarray) -> Future:
        """A finished :class:`concurrent.futures.Future` of ``self(frames)`` (the interface of :class:`TVL1Flow`)."""
        future: Future = Future()
        future.set_result(self(frames))
        return future

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """``frames (ndarray[N, H, W, 3] uint8)`` -> ``ndarray[N - 1, H, W, 2] float32`` flow in pixels."""
        import torch
        import torch.nn.functional as F

        _check_frames(frames)
        height, width = frames.shape[1:3]
        pad_h, pad_w = max(128, height + (-height) % 8) - height, max(128, width + (-width) % 8) - width
        out = np.empty((len(frames) - 1, height, width, 2), np.float32)
        with torch.inference_mode():
            images = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
            images = images.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
            if pad_h or pad_w:
                images = F.pad(images, (0, pad_w, 0, pad_h), mode="replicate")
            for start in range(0, len(frames) - 1, self.batch_size):
                stop = min(start + self.batch_size, len(frames) - 1)
                flow = self.net(images[start:stop], images[start + 1:stop + 1], num_flow_updates=self.iterations)[-1]
                out[start:stop] = flow[:, :, :height, :width].permute(0, 2, 3, 1).float().cpu().numpy()
        return out
