"""torchvision video classifiers as RGB snippet feature extractors.

Each model keeps its classification head for loading (a local file must hold the whole torchvision
state dict, strictly) and is then cut before it: the features are the input of the last linear or
1x1x1 layer. Inputs are normalised the way the torchvision Kinetics-400 weights expect (``x / 255``,
then the weights' mean and standard deviation), at the weights' crop size; the clip length is the
extractor's snippet (16 frames at 25 fps by default), which differs from some models' training clips:

==============  ====  ==========================  =====================================  ==================
backbone        dim   default resize mode         mean / std                             trained clips
==============  ====  ==========================  =====================================  ==================
r3d_18          512   resize128x171_crop112       (0.432, 0.395, 0.376) / (0.228, ...)   16 frames, 15 fps
mc3_18          512   resize128x171_crop112       same                                   16 frames, 15 fps
r2plus1d_18     512   resize128x171_crop112       same                                   16 frames, 15 fps
s3d             1024  resize256x256_crop224       same                                   128 frames, 15 fps
mvit_v1_b       768   short256_crop224            (0.45, 0.45, 0.45) / (0.225, ...)      16 frames, 7.5 fps
mvit_v2_s       768   short256_crop224            same                                   16 frames, 7.5 fps
swin3d_t/s      768   short256_crop224            ImageNet (0.485, 0.456, 0.406) / ...   32 frames, 15 fps
swin3d_b        1024  short256_crop224            same                                   32 frames, 15 fps
==============  ====  ==========================  =====================================  ==================

MViT takes exactly 16 x 224 x 224 clips (its positional tables are built for that size); S3D takes
clips of at least 14 frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["VideoBackbone", "BackboneSpec", "VIDEO_BACKBONES", "load_video_backbone"]

_KINETICS = ((0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989))
_MVIT = ((0.45, 0.45, 0.45), (0.225, 0.225, 0.225))
_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True)
class BackboneSpec:
    """How to build, cut and feed one torchvision video model."""

    name: str
    weights_enum: str
    head: str  # attribute replaced by Identity (or "classifier" of S3D, whose features are pooled here)
    feature_dim: int
    resize: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    fixed_input: tuple[int, int, int] | None = None  # (T, H, W) the model requires, if any
    min_frames: int = 1  # shortest clip the model takes


VIDEO_BACKBONES = {
    spec.name: spec for spec in (
        BackboneSpec("r3d_18", "R3D_18_Weights", "fc", 512, "resize128x171_crop112", *_KINETICS),
        BackboneSpec("mc3_18", "MC3_18_Weights", "fc", 512, "resize128x171_crop112", *_KINETICS),
        BackboneSpec("r2plus1d_18", "R2Plus1D_18_Weights", "fc", 512, "resize128x171_crop112", *_KINETICS),
        BackboneSpec("s3d", "S3D_Weights", "classifier", 1024, "resize256x256_crop224", *_KINETICS, min_frames=14),
        BackboneSpec("mvit_v1_b", "MViT_V1_B_Weights", "head", 768, "short256_crop224", *_MVIT, (16, 224, 224)),
        BackboneSpec("mvit_v2_s", "MViT_V2_S_Weights", "head", 768, "short256_crop224", *_MVIT, (16, 224, 224)),
        BackboneSpec("swin3d_t", "Swin3D_T_Weights", "head", 768, "short256_crop224", *_IMAGENET),
        BackboneSpec("swin3d_s", "Swin3D_S_Weights", "head", 768, "short256_crop224", *_IMAGENET),
        BackboneSpec("swin3d_b", "Swin3D_B_Weights", "head", 1024, "short256_crop224", *_IMAGENET),
    )
}


class VideoBackbone(nn.Module):
    """A torchvision video model cut before its classifier.

    ``forward(clips (Tensor[B, 3, T, H, W]))``, already normalised (:meth:`normalize`), returns
    ``Tensor[B, feature_dim]``.
    """

    def __init__(self, spec: BackboneSpec, model: nn.Module):
        super().__init__()
        self.spec = spec
        self.model = model
        setattr(self.model, spec.head, nn.Identity())
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1, 1), persistent=False)

    @property
    def feature_dim(self) -> int:
        return self.spec.feature_dim

    def normalize(self, clips: Tensor) -> Tensor:
        """``uint8`` or [0, 255] ``clips (Tensor[B, 3, T, H, W])`` -> the model's normalised input."""
        return (clips.float() / 255.0 - self.mean) / self.std

    def forward(self, clips: Tensor) -> Tensor:
        if clips.ndim != 5 or clips.shape[1] != 3:
            raise ValueError(f"{self.spec.name} expects clips of shape (B, 3, T, H, W), got {tuple(clips.shape)}")
        fixed = self.spec.fixed_input
        if fixed is not None and tuple(clips.shape[2:]) != fixed:
            raise ValueError(f"{self.spec.name} takes clips of exactly {fixed[0]} x {fixed[1]} x {fixed[2]} "
                             f"(T x H x W), got {tuple(clips.shape[2:])}")
        if clips.shape[2] < self.spec.min_frames:
            raise ValueError(f"{self.spec.name} takes clips of at least {self.spec.min_frames} frames, "
                             f"got {clips.shape[2]}")
        if self.spec.name == "s3d":  # its average pool has a fixed 2x7x7 kernel: average whatever map there is
            return self.model.features(clips).mean(dim=(2, 3, 4))
        return self.model(clips)


def load_video_backbone(name: str, weights: str | Path | None = None) -> VideoBackbone:
    """A torchvision video backbone in eval mode.

    Args:
        name: a key of :data:`VIDEO_BACKBONES` (``r3d_18``, ``r2plus1d_18``, ``s3d``, ``mvit_v2_s``,
            ``swin3d_t``, ...).
        weights: a local file with the torchvision model's full state dict (classifier included; read
            with ``weights_only=True``, strictly), a torchvision weights name (``"DEFAULT"``,
            ``"KINETICS400_V1"``; from torchvision's cache, downloaded when missing), or None for a
            random initialisation (seed 0; tests and smoke runs only).

    The returned module has ``.source``: ``"file"``, ``"torchvision:<Enum>.<MEMBER>"`` or ``"random"``.
    """
    import torchvision.models.video as video

    from wsl_video.features.weights import load_torchvision_weights

    if name not in VIDEO_BACKBONES:
        raise ValueError(f"unknown video backbone {name!r}: expected i3d or one of {', '.join(VIDEO_BACKBONES)}")
    spec = VIDEO_BACKBONES[name]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = getattr(video, name)(weights=None)
    source = load_torchvision_weights(model, weights, getattr(video, spec.weights_enum), what=f"{name} weights")
    backbone = VideoBackbone(spec, model).eval()
    backbone.source = source
    return backbone
