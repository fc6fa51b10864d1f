"""Domain-free training losses of weakly-supervised localization methods.

Each loss is a function and an ``nn.Module`` of the same name, with the tensor shapes in the docstring:

- :func:`mil_cross_entropy`, :func:`topk_mil_loss`: the multiple-instance learning loss of W-TALC
  (Paul et al., ECCV 2018): softmax cross-entropy between the video-level logits and the labels
  normalised to sum to one, the video logits being the mean of the ``k`` highest per-snippet logits.
- :func:`coactivity_loss`: W-TALC's co-activity similarity loss (CASL) between videos that share a class.
- :func:`evidential_loss`: evidential learning on Dirichlet opinions, with DELU's uncertainty-guided weights.
"""

from .coactivity import CoActivityLoss, coactivity_loss
from .evidential import EvidentialLoss, dirichlet_uncertainty, evidence, evidential_loss
from .mil import MILCrossEntropy, TopKMILLoss, mil_cross_entropy, topk_mil_loss

__all__ = [
    "mil_cross_entropy",
    "topk_mil_loss",
    "coactivity_loss",
    "evidential_loss",
    "evidence",
    "dirichlet_uncertainty",
    "MILCrossEntropy",
    "TopKMILLoss",
    "CoActivityLoss",
    "EvidentialLoss",
]
