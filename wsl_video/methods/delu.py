"""DELU (Chen, Gao, Yang and Xu, ECCV 2022): evidential learning, uncertainty-guided curriculum, on CO2-Net.

Model, batches and inference: CO2-Net's (:mod:`wsl_video.methods.co2net`), with ``train.num_segments = 320``.

Loss (:func:`delu_loss`): CO2-Net's loss with the guide weight lowered to 0.4, plus

- ``1.3 *`` the video-level evidential loss (:func:`wsl.losses.evidential_loss`: exp evidence, the log form,
  DELU's uncertainty-guided class weights ``(1 - u) |y| (y_k / alpha_k) / sum_j (y_j / alpha_j)``) of the video
  logits taken as the mean of the attention-weighted CAS of the K action classes over the ``max(1, T // 9)``
  snippets of highest fused attention (the aggregator does not enter this term; the KL term is off, as in the
  authors' published setting);
- ``0.4 *`` the uncertainty-guided curriculum on the guide losses: each snippet's uncertainty is
  ``u_t = K / sum_c (exp(s_supp[c, t]) + 1)`` over the K + 1 classes of the suppressed CAS; the curve
  ``w_i = 0.7 tanh(theta_i delta) + 1`` with ``theta_i = 2 (i + 0.5) / T - 1`` and ``delta = 1 - 2 p``
  (``p = iteration / train.iterations``, the training progress) is reordered by the snippets' increasing
  uncertainty (``w'_t = w_{sigma(t)}``, ``sigma`` the argsort of ``u``, as the authors' code gathers it) and weighs
  the per-snippet mean of the three guide terms ``|1 - a - p_bg|``; the loss is the mean over videos and snippets.

On ActivityNet (``activitynet``, ``activitynet1.2``) the recipe is the authors' ``DELU_ACT``: CO2-Net's ActivityNet
network and training settings (:data:`wsl_video.methods.co2net.ACTIVITYNET_DEFAULTS`: the temporal filter, top-k
ratio 5, 60 snippets, Adam 3e-5, weight decay 5e-4, 22000 iterations) and the loss settings
:data:`DELU_ACTIVITYNET`: guide weight 0.8, ``1.2 *`` an evidential term of the MSE form with ReLU evidence
(:func:`evidential_mse_loss`, no uncertainty weights) over the ``max(1, T // 5)`` snippets of highest attention,
``0.2 *`` the curriculum with amplitude 0.2. The loss settings follow ``data.dataset`` (they are not config keys).
"""

from __future__ import annotations

from typing import Any

import torch

from wsl_video.data.factory import ACTIVITYNET_DATASETS

from .co2net import ACTIVITYNET_DEFAULTS, CO2NET_DEFAULTS, LOSS_WEIGHTS, CO2NetBase, CO2NetOutput, co2net_loss
from .registry import register_method

__all__ = ["DELU", "delu_loss", "curriculum_curve", "attention_topk_logits", "evidential_mse_loss", "DELU_WEIGHTS",
           "ATTENTION_RATIO", "AMPLITUDE", "DELU_THUMOS14", "DELU_ACTIVITYNET"]

DELU_WEIGHTS = {**LOSS_WEIGHTS, "guide": 0.4, "evidential": 1.3, "curriculum": 0.4}
"""The authors' published THUMOS14 weights: CO2-Net's with ``alpha2 = 0.4``, ``alpha_edl = 1.3``,
``alpha_uct_guide = 0.4``."""
ATTENTION_RATIO = 9
"""The evidential video logits average the ``T // 9`` snippets of highest attention (the authors' ``rat_atn``)."""
AMPLITUDE = 0.7
"""Amplitude of the curriculum curve."""

DELU_THUMOS14 = {"weights": DELU_WEIGHTS, "amplitude": AMPLITUDE, "attention_ratio": ATTENTION_RATIO,
                 "evidential": "log"}
"""The loss settings of the authors' THUMOS14 script (``scripts/train_thumos.sh``, the ``DELU`` model)."""
DELU_ACTIVITYNET = {"weights": {**LOSS_WEIGHTS, "guide": 0.8, "evidential": 1.2, "curriculum": 0.2},
                    "amplitude": 0.2, "attention_ratio": 5, "evidential": "mse"}
"""The loss settings of the authors' ActivityNet1.2 script (``scripts/train_activitynet.sh`` of
MengyuanChen21/ECCV2022-DELU: ``--alpha_edl 1.2 --alpha_uct_guide 0.2 --amplitude 0.2 --alpha2 0.8 --rat_atn 5``)
and of the ``DELU_ACT`` model of its ``model.py`` (evidential loss with ReLU evidence, MSE form)."""


def attention_topk_logits(cas_supp: torch.Tensor, attention: torch.Tensor,
                          ratio: int = ATTENTION_RATIO) -> torch.Tensor:
    """Mean of the suppressed CAS of the K action classes over the ``max(1, T // ratio)`` snippets of highest
    attention: cas_supp (Tensor[B, K + 1, T]), attention (Tensor[B, T]) -> Tensor[B, K]."""
    k = max(1, cas_supp.shape[2] // int(ratio))
    index = attention.topk(k, dim=1).indices  # (B, k)
    chosen = cas_supp[:, :-1].gather(2, index.unsqueeze(1).expand(-1, cas_supp.shape[1] - 1, -1))
    return chosen.mean(dim=2)


def evidential_mse_loss(logits: torch.Tensor, labels: torch.Tensor, function: str = "relu") -> torch.Tensor:
    """The evidential loss of the MSE form (Sensoy et al.'s squared error to the expected probabilities, without
    the variance term) averaged over videos: ``sum_k (y_k - alpha_k / S)^2`` with ``alpha = e(z) + 1``,
    ``S = sum_k alpha_k``; logits, labels (Tensor[B, K]), the labels multi-hot as given (not normalised)."""
    from wsl.losses import evidence

    alpha = evidence(logits, function) + 1.0
    expected = alpha / alpha.sum(dim=1, keepdim=True)
    return ((labels.to(logits.dtype) - expected) ** 2).sum(dim=1).mean()


def curriculum_curve(length: int, progress: float, amplitude: float = AMPLITUDE,
                     device: Any = None, dtype: Any = None) -> torch.Tensor:
    """``amplitude * tanh(theta_i (1 - 2 progress)) + 1`` at ``theta_i = 2 (i + 0.5) / length - 1``: Tensor[length]."""
    theta = 2 * (torch.arange(length, device=device, dtype=dtype or torch.float32) + 0.5) / length - 1
    return amplitude * torch.tanh(theta * (1 - 2 * float(progress))) + 1


def delu_loss(outputs: CO2NetOutput, labels: torch.Tensor, progress: float = 0.0,
              weights=DELU_WEIGHTS, amplitude: float = AMPLITUDE, attention_ratio: int = ATTENTION_RATIO,
              evidential: str = "log") -> torch.Tensor:
    """DELU's training loss at training ``progress`` in [0, 1] (see the module docstring); labels (Tensor[B, K]).

    ``evidential``: ``"log"`` (THUMOS14: exp evidence, log form, uncertainty weights) or ``"mse"`` (ActivityNet:
    :func:`evidential_mse_loss`); ``amplitude`` of the curriculum curve; ``attention_ratio`` of the evidential
    term's top-k.
    """
    from wsl.losses import evidential_loss

    if outputs.mask is not None:
        raise ValueError("delu_loss takes batches of equal-length videos (no mask)")
    if evidential not in ("log", "mse"):
        raise ValueError(f"evidential must be 'log' or 'mse', got {evidential!r}")
    base = co2net_loss(outputs, labels, weights=weights)
    video_logits = attention_topk_logits(outputs.cas_supp, outputs.attention, attention_ratio)
    if evidential == "log":
        edl = evidential_loss(video_logits, labels, function="exp", kind="log", uncertainty_weighting=True)
    else:
        edl = evidential_mse_loss(video_logits, labels)
    classes = labels.shape[1]
    alpha = torch.exp(outputs.cas_supp.clamp(-10.0, 10.0)) + 1  # (B, K + 1, T)
    uncertainty = classes / alpha.sum(dim=1)  # (B, T)
    curve = curriculum_curve(uncertainty.shape[1], progress, amplitude, device=uncertainty.device,
                             dtype=uncertainty.dtype)
    reordered = curve[uncertainty.argsort(dim=1)]  # (B, T): w'_t = w[sigma(t)]
    background = torch.softmax(outputs.cas, dim=1)[:, -1]
    guide = sum((1 - a - background).abs() for a in (outputs.attention, outputs.rgb_attention,
                                                     outputs.flow_attention)) / 3
    curriculum = (reordered.detach() * guide).mean()
    return base + weights["evidential"] * edl + weights["curriculum"] * curriculum


@register_method("delu")
class DELU(CO2NetBase):
    """DELU (ECCV 2022): CO2-Net + video-level evidential loss with uncertainty weights + uncertainty curriculum."""

    defaults = {**CO2NET_DEFAULTS, "train.num_segments": 320}
    dataset_defaults = {name: ACTIVITYNET_DEFAULTS for name in ACTIVITYNET_DATASETS}
    uses_training_progress = True  # the curriculum runs over the whole run's iterations

    @staticmethod
    def loss_settings(config: Any) -> dict:
        """:data:`DELU_ACTIVITYNET` on ActivityNet, else :data:`DELU_THUMOS14`."""
        return DELU_ACTIVITYNET if config.data.dataset in ACTIVITYNET_DATASETS else DELU_THUMOS14

    def training_loss(self, outputs: CO2NetOutput, labels: torch.Tensor, config: Any, iteration: int) -> torch.Tensor:
        return delu_loss(outputs, labels, progress=iteration / config.train.iterations, **self.loss_settings(config))

    def loss(self, outputs: CO2NetOutput, labels: torch.Tensor, config: Any) -> torch.Tensor:
        """The loss at the start of training (progress 0); training uses :meth:`training_loss`."""
        return delu_loss(outputs, labels, progress=0.0, **self.loss_settings(config))
