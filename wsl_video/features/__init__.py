"""Features from video files: decoding, optical flow, I3D and torchvision backbones, extraction.

The pipeline, one concept per module::

    decoding     VideoDecoder: any container -> frames resampled to a fixed fps by timestamps
    transforms   resize modes (short256_crop224, resize224, ...), centre crop, input value ranges
    flow         TV-L1 (OpenCV, worker processes) and RAFT (torchvision) optical flow
    i3d          I3D (Inception-v1 inflated), loads the PyTorch port's rgb/flow checkpoints
    backbones    torchvision video models (r3d_18, r2plus1d_18, s3d, mvit_v2_s, swin3d_t, ...) as RGB extractors
    settings     ExtractionSettings <-> the manifest's "extractor" record
    extraction   FeatureExtractor: one video file -> {stream: ndarray[T, D] float32} + its record
    store        the features folder (features/<stream>/<stem>.npy, manifest.json), safe under shards
    sharding     --shard I/N and torchrun's RANK/WORLD_SIZE

>>> from wsl_video.features import ExtractionSettings, FeatureExtractor, load_i3d
>>> model = load_i3d("rgb")                 # random weights; load_i3d("rgb", "rgb_imagenet.pt") for real ones
>>> settings = ExtractionSettings(random_weights=True)
>>> settings.to_extractor()["resize"]
'short256_crop224'

Names are imported lazily: ``import wsl_video.features`` loads neither torch, PyAV nor OpenCV.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "VideoDecoder": "decoding", "VideoInfo": "decoding", "VideoError": "decoding", "FrameResampler": "decoding",
    "resample_indices": "decoding", "probe_video": "decoding",
    "ResizeSpec": "transforms", "parse_resize": "transforms", "center_crop": "transforms",
    "rgb_to_unit_range": "transforms", "flow_to_unit_range": "transforms",
    "tvl1_flow": "flow", "TVL1Flow": "flow", "RaftFlow": "flow", "TVL1_PARAMS": "flow",
    "I3D": "i3d", "load_i3d": "i3d",
    "VideoBackbone": "backbones", "VIDEO_BACKBONES": "backbones", "load_video_backbone": "backbones",
    "ExtractionSettings": "settings", "extractor_differences": "settings", "BACKBONES": "settings",
    "FeatureExtractor": "extraction", "VideoFeatures": "extraction", "extract_video": "extraction",
    "FeatureStore": "store",
    "parse_shard": "sharding", "select_shard": "sharding", "shard_from_environment": "sharding",
}

__all__ = sorted([*_EXPORTS, "read_manifest"])


def __getattr__(name: str):
    if name == "read_manifest":  # one reader for the manifest, shared with the custom dataset
        from wsl_video.data.manifest import read_manifest

        globals()[name] = read_manifest
        return read_manifest
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
