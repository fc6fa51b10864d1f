"""What the one-stream recipe models (W-TALC, BaS-Net) share: the joint vector as their only stream."""

from __future__ import annotations

from typing import Dict

from torch import nn

__all__ = ["JOINT", "JointStreamModel"]

JOINT = "joint"


class JointStreamModel(nn.Module):
    """Base of a model on the joint RGB+flow vector that pools its CAS with ``self.pool`` (an aggregator).

    Subclasses set ``self.classifier`` and ``self.pool`` in their ``__init__``; this class gives them the
    inference interface: ``stream_names``, ``streams`` and ``uses_attention``.
    """

    stream_names = (JOINT,)

    @property
    def streams(self) -> Dict[str, nn.Module]:
        """stream -> the module holding its ``classifier`` (the inference interface)."""
        return {JOINT: self}

    @property
    def uses_attention(self) -> bool:
        return bool(self.pool.uses_attention)
