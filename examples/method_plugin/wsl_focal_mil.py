"""An example ``wsl-video`` method plugin: MAAN's model trained with a video-level focal loss.

The whole contract of a method is on :class:`wsl_video.methods.VideoMethod`: a docstring (its first line is what
``wsl-video methods`` prints), ``build_model``, ``loss`` and optional ``defaults``. This package's
``pyproject.toml`` registers the class in the ``wsl_video.methods`` entry-point group.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wsl_video.methods import VideoMethod
from wsl_video.model import TemporalLocalizer

__all__ = ["FocalMIL"]


class FocalMIL(VideoMethod):
    """Focal MIL: MAAN's model, video-level focal loss (gamma 2) in place of BCE, L1 attention sparsity 1e-3."""

    takes_aggregator = True
    needs_two_streams = False
    defaults = {"train.sparsity_weight": 1e-3}  # used where the run leaves train.sparsity_weight unset
    gamma = 2.0

    def build_model(self, config, feature_dims, num_classes) -> TemporalLocalizer:
        """Any registered aggregator (``--aggregator``) + a linear classifier per stream, as in MAAN."""
        return TemporalLocalizer(config.model.aggregator, feature_dims, num_classes,
                                 aggregator_kwargs=config.model.aggregator_kwargs,
                                 stream_weights=config.inference.stream_weights)

    def loss(self, outputs, labels: torch.Tensor, config) -> torch.Tensor:
        """Sum over streams and classes of (1 - p_t)^gamma * BCE, averaged over videos, plus the L1 sparsity term.

        outputs: stream -> StreamOutput (logits Tensor[B, K], attention Tensor[B, T] or None); labels Tensor[B, K].
        """
        total = labels.new_zeros(())
        for out in outputs.values():
            bce = F.binary_cross_entropy_with_logits(out.logits, labels, reduction="none")
            focal = (1.0 - torch.exp(-bce)) ** self.gamma * bce  # exp(-bce) = p_t, the probability of the label
            total = total + focal.sum(dim=1).mean()
            if config.train.sparsity_weight and out.attention is not None:
                total = total + config.train.sparsity_weight * out.attention.abs().flatten(1).sum(dim=1).mean()
        return total
