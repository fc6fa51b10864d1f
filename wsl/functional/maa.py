"""Exact marginalized average aggregation (MAA, Yuan et al., ICLR 2019), batched and N-D.

With z_i ~ Bernoulli(p_i) independent, MAA is E[sum_i z_i x_i / sum_i z_i] (0 for the empty subset).
Proposition 1 of the paper gives it as sum_i lambda_i x_i with lambda_i = p_i c_i and
c_i = E[1 / (1 + sum_{k != i} z_k)]. Since 1 / (1 + s) = int_0^1 u^s du and E[u^z_k] = 1 - p_k + p_k u,

    c_i = int_0^1 prod_{k != i} (1 - p_k + p_k u) du = int_0^1 G(u) / (1 - p_i v) du,   v = 1 - u,

with G(u) = prod_k (1 - p_k v). The integrand is a polynomial of degree N - 1, so Gauss–Legendre
quadrature with floor(N / 2) + 1 nodes is exact. G at the nodes is one sum of logs (log1p keeps every
term to full relative precision), shared by all positions; each c_i is then a weighted sum of
1 / (1 - p_i v_j) over the nodes. Cost O(N^2 / 2) per sample, independent of the feature dimension,
no Python loop over positions, and an analytic backward pass. Work is split into blocks of nodes so
memory stays bounded for long sequences.
"""

from __future__ import annotations

import torch

from ._checks import check_features, check_floating, check_mask, check_probabilities
from .quadrature import gauss_legendre_01_torch

__all__ = ["maa_weights", "marginalized_average"]

# Largest number of (position, node) pairs processed at once, per block of nodes.
_BLOCK_ELEMENTS = 1 << 22


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _node_blocks(batch: int, positions: int, nodes: int) -> list[tuple[int, int]]:
    step = max(1, _BLOCK_ELEMENTS // max(1, batch * positions))
    return [(start, min(start + step, nodes)) for start in range(0, nodes, step)]


class _MAAWeights(torch.autograd.Function):
    """lambda (Tensor[B, N]) from p (Tensor[B, N]); float32 or float64."""

    @staticmethod
    def forward(ctx, p: torch.Tensor) -> torch.Tensor:
        batch, positions = p.shape
        num_nodes = positions // 2 + 1
        v, u, w = gauss_legendre_01_torch(num_nodes, p.dtype, p.device)
        one_minus_p = (1 - p).unsqueeze(-1)  # (B, N, 1)
        p3 = p.unsqueeze(-1)
        blocks = _node_blocks(batch, positions, num_nodes)
        weights, c = [], None
        for start, stop in blocks:
            log_g = torch.log1p(p3 * -v[start:stop]).sum(dim=1)  # (B, n_blk): log G(u_j)
            weight = torch.exp(log_g).mul_(w[start:stop])  # W_j = w_j G(u_j)
            inv_a = torch.addcmul(one_minus_p, p3, u[start:stop]).reciprocal_()  # 1 / (1 - p_i v_j)
            part = torch.bmm(inv_a, weight.unsqueeze(-1)).squeeze(-1)  # (B, N)
            c = part if c is None else c.add_(part)
            weights.append(weight)
        node_weight = weights[0] if len(weights) == 1 else torch.cat(weights, dim=1)
        ctx.save_for_backward(p, c, node_weight)
        return p * c

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        # d lambda_i / d p_m with a_ij = 1 - p_i v_j, W_j = w_j G(u_j):
        #   dL/dp_m = g_m c_m - sum_j W_j v_j R_j / a_mj + g_m p_m sum_j W_j v_j / a_mj^2,
        #   R_j = sum_i g_i p_i / a_ij.
        p, c, node_weight = ctx.saved_tensors
        batch, positions = p.shape
        v, u, _ = gauss_legendre_01_torch(node_weight.shape[1], p.dtype, p.device)
        one_minus_p = (1 - p).unsqueeze(-1)
        p3 = p.unsqueeze(-1)
        gp = grad * p
        gp_row = gp.unsqueeze(1)  # (B, 1, N)
        grad_p = grad * c
        for start, stop in _node_blocks(batch, positions, node_weight.shape[1]):
            inv_a = torch.addcmul(one_minus_p, p3, u[start:stop]).reciprocal_()  # (B, N, n_blk)
            wv = node_weight[:, start:stop] * v[start:stop]  # (B, n_blk)
            r = torch.bmm(gp_row, inv_a).squeeze(1)  # (B, n_blk)
            grad_p.sub_(torch.bmm(inv_a, (wv * r).unsqueeze(-1)).squeeze(-1))
            grad_p.addcmul_(gp, torch.bmm(inv_a.square_(), wv.unsqueeze(-1)).squeeze(-1))
        return grad_p


def _flatten_probabilities(p: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    check_floating(p, "p")
    if p.dim() < 2:
        raise ValueError(f"p must have shape (B, *S) with at least one position dim, got {tuple(p.shape)}")
    if p.shape[1:].numel() == 0:
        raise ValueError(f"p has no positions to aggregate (shape {tuple(p.shape)})")
    mask = check_mask(mask, p.shape)
    check_probabilities(p)
    flat = p.reshape(p.shape[0], -1).to(_compute_dtype(p.dtype))
    if mask is not None:
        flat = torch.where(mask.reshape(p.shape[0], -1), flat, torch.zeros_like(flat))
    return flat


def maa_weights(p: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Effective weights lambda_i = p_i c_i of marginalized average aggregation.

    Args:
        p (Tensor[B, *S]): selection probabilities in [0, 1]; all positions of a sample are aggregated
            together (the ``*S`` dims are flattened).
        mask (BoolTensor[B, *S], optional): True = valid position; invalid positions get weight 0 and do
            not influence the others (as if they were absent).

    Returns:
        Tensor[B, *S]: lambda, in the dtype of ``p`` (half and bfloat16 are computed in float32).
        Each sample's weights sum to 1 - prod_i (1 - p_i).
    """
    flat = _flatten_probabilities(p, mask)
    return _MAAWeights.apply(flat).to(p.dtype).reshape(p.shape)


def marginalized_average(x: torch.Tensor, p: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Marginalized average aggregation E[sum_i z_i x_i / sum_i z_i], z_i ~ Bernoulli(p_i).

    Args:
        x (Tensor[B, C, *S]): features, channels first (e.g. (B, C, T), (B, C, H, W), (B, C, T, H, W)).
        p (Tensor[B, *S]): selection probabilities in [0, 1].
        mask (BoolTensor[B, *S], optional): True = valid position.

    Returns:
        Tensor[B, C]: the aggregated features (the empty subset contributes 0).
    """
    check_features(x)
    check_floating(p, "p")
    if p.shape != x.shape[:1] + x.shape[2:]:
        raise ValueError(
            f"p has shape {tuple(p.shape)} but x of shape {tuple(x.shape)} needs p of shape "
            f"{tuple(x.shape[:1] + x.shape[2:])}"
        )
    weights = maa_weights(p, mask)
    return weighted_pool(x, weights)


def weighted_pool(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum_i weights_i x_i: x (Tensor[B, C, *S]), weights (Tensor[B, *S]) -> Tensor[B, C].

    Half and bfloat16 features are accumulated in float32 and returned in their own dtype.
    """
    dtype = torch.promote_types(x.dtype, weights.dtype)
    compute = _compute_dtype(dtype)
    flat_x = x.reshape(x.shape[0], x.shape[1], -1)
    flat_w = weights.reshape(weights.shape[0], -1, 1)
    pooled = torch.bmm(flat_x.to(compute), flat_w.to(compute)).squeeze(-1)
    return pooled.to(dtype)
