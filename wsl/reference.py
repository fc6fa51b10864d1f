"""Slow reference implementations of MAA, written from the paper; for tests and benchmarks only.

- :func:`maa_enumerate`: the definition, E[sum z_i x_i / sum z_i] summed over all 2^N subsets.
- :func:`maa_recurrence`: Algorithm 1 of the paper (Proposition 3's O(N^2) recurrence), which keeps
  every (N + 1) x C intermediate alive for the backward pass.
- :func:`probability_families`: eight hard families of p for accuracy tests of the quadrature rules.
"""

from __future__ import annotations

import itertools

import torch

__all__ = ["maa_enumerate", "maa_recurrence", "maa_weights_enumerate", "probability_families"]


def _flatten(x: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x.reshape(x.shape[0], x.shape[1], -1), p.reshape(p.shape[0], -1)


def maa_weights_enumerate(p: torch.Tensor) -> torch.Tensor:
    """lambda_i = E[z_i / sum_k z_k] by enumerating all 2^N subsets. p (Tensor[B, *S]) -> Tensor[B, *S]."""
    flat = p.reshape(p.shape[0], -1)
    n = flat.shape[1]
    if n > 16:
        raise ValueError(f"enumeration over 2^{n} subsets is too large; use N <= 16")
    subsets = torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=flat.dtype, device=flat.device)
    sizes = subsets.sum(dim=1)
    subsets, sizes = subsets[1:], sizes[1:]  # the empty subset contributes 0
    log_prob = torch.log(torch.where(subsets.bool()[None], flat[:, None, :], 1 - flat[:, None, :])).sum(-1)
    prob = torch.where(
        torch.isinf(log_prob), torch.zeros_like(log_prob), torch.exp(log_prob)
    )  # (B, 2^N - 1), exact zeros where some p is 0 or 1
    weights = (prob[:, :, None] * subsets[None] / sizes[None, :, None]).sum(dim=1)
    return weights.reshape(p.shape)


def maa_enumerate(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """MAA by enumeration: x (Tensor[B, C, *S]), p (Tensor[B, *S]) -> Tensor[B, C]."""
    flat_x, _ = _flatten(x, p)
    weights = maa_weights_enumerate(p).reshape(p.shape[0], -1)
    return torch.einsum("bcn,bn->bc", flat_x, weights)


def maa_recurrence(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """MAA by the paper's Algorithm 1: x (Tensor[B, C, *S]), p (Tensor[B, *S]) -> Tensor[B, C].

    m_i^t = p_t (b_{i-1} m_{i-1}^{t-1} + (1 - b_{i-1}) q_{i-1}^{t-1} x_t) + (1 - p_t) m_i^{t-1}
    q_i^t = p_t q_{i-1}^{t-1} + (1 - p_t) q_i^{t-1},    b_i = i / (i + 1),
    with m_0^0 = 0, q_0^0 = 1, and the result sum_i m_i^T. The loop over t is sequential; the
    update of all i at one step t is done at once.
    """
    flat_x, flat_p = _flatten(x, p)
    batch, channels, n = flat_x.shape
    m = flat_x.new_zeros(batch, 1, channels)  # m_i^0, i = 0
    q = flat_p.new_ones(batch, 1)  # q_0^0
    for t in range(n):
        pt = flat_p[:, t].view(batch, 1)
        xt = flat_x[:, :, t].view(batch, 1, channels)
        i = torch.arange(1, t + 2, dtype=flat_x.dtype, device=flat_x.device)  # i = 1 .. t+1 (new counts)
        b_prev = ((i - 1) / i).view(1, -1, 1)  # b_{i-1} = (i - 1) / i
        m_shift = m  # m_{i-1}^{t-1} for i = 1 .. t+1
        q_shift = q  # q_{i-1}^{t-1}
        m_keep = torch.cat([m[:, 1:], m.new_zeros(batch, 1, channels)], dim=1)  # m_i^{t-1}, m_{t+1}^{t} = 0
        q_keep = torch.cat([q[:, 1:], q.new_zeros(batch, 1)], dim=1)
        m_new = pt.unsqueeze(-1) * (b_prev * m_shift + (1 - b_prev) * q_shift.unsqueeze(-1) * xt) + (
            1 - pt.unsqueeze(-1)
        ) * m_keep
        q_new = pt * q_shift + (1 - pt) * q_keep
        m = torch.cat([m.new_zeros(batch, 1, channels), m_new], dim=1)  # m_0^t = 0
        q = torch.cat([(1 - pt) * q[:, :1], q_new], dim=1)  # q_0^t = (1 - p_t) q_0^{t-1}
    return m.sum(dim=1)


def probability_families(n: int, seed: int = 0, switch: float = 37.0) -> dict[str, torch.Tensor]:
    """Eight families of p, each Tensor[n] in float64, that stress MAA's quadrature rules.

    uniform; u^8 (most p tiny); sparse spikes (1 % of p in [0.5, 1], the rest below 1e-6); a sum of p
    just above ``switch`` (the truncated rule's S - 1 = L switch); exact 0/1 mixtures; all ones; all
    tiny (below 1e-7); a normal clipped to [0, 1] (many exact zeros and ones).
    """
    generator = torch.Generator().manual_seed(seed)
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    normal = torch.randn(n, generator=generator, dtype=torch.float64)
    jitter = 0.9 + 0.2 * u
    return {
        "uniform": u,
        "power8": u**8,
        "sparse_spikes": torch.where(u < 0.01, 0.5 + 0.5 * u, 1e-6 * u),
        "sum_near_switch": (switch + 0.25) / n * jitter / jitter.mean(),
        "zeros_and_ones": (u < 0.3).double(),
        "all_ones": torch.ones(n, dtype=torch.float64),
        "all_tiny": 1e-7 * u,
        "clipped_normal": (0.3 + 0.3 * normal).clamp(0, 1),
    }
