"""Marginalized average aggregation (MAA, Yuan et al., ICLR 2019), batched and N-D, in linear time.

With z_i ~ Bernoulli(p_i) independent, MAA is E[sum_i z_i x_i / sum_i z_i] (0 for the empty subset).
Proposition 1 of the paper gives it as sum_i lambda_i x_i with lambda_i = p_i c_i and
c_i = E[1 / (1 + sum_{k != i} z_k)]. Since 1 / (1 + s) = int_0^1 u^s du and E[u^z_k] = 1 - p_k + p_k u,
substituting v = 1 - u,

    c_i = int_0^1 prod_{k != i} (1 - p_k v) dv = int_0^1 G(v) / (1 - p_i v) dv,   G(v) = prod_k (1 - p_k v).

G at a node is one sum of logs (log1p keeps every term to full relative precision), shared by all
positions; each c_i is then a weighted sum of 1 / (1 - p_i v_j) over the nodes, computed as
1 / ((1 - p_i) + p_i (1 - v_j)) so that nothing cancels when p_i and v_j are both near 1. The backward
pass is analytic. Work is split into blocks of nodes so memory stays bounded. Up to 256 positions,
where fixed costs dominate, G is instead the product of its N factors (each in (0, 1], relative error
below N ulp), everything runs in float64 in one block, and the factors 1 / (1 - p_i v_j) are kept for
the backward pass rather than computed again.

Two rules choose the nodes v_j:

- **Exact rule** (``exact=True``, and the default for N <= 2K positions): the integrand is a polynomial
  of degree N - 1, so Gauss-Legendre quadrature with floor(N / 2) + 1 nodes on [0, 1] is exact.
  Cost O(N^2 / 2) per sample.
- **Truncated rule** (the default for N > 2K): K Gauss-Legendre nodes on [0, a], a = min(1, L / (S - 1)),
  S = sum_k p_k, computed per sample in the same vectorised pass. Cost O(N K): linear in N, independent
  of the feature dimension. K and L depend on the compute dtype (:data:`TRUNCATED_RULE`).

Error bound of the truncated rule. Since 1 - x <= exp(-x), the integrand of c_i is
prod_{k != i} (1 - p_k v) <= exp(-(S - p_i) v) <= exp(-(S - 1) v), so the dropped tail is
int_a^1 <= exp(-L) / (S - 1). By Jensen, c_i = E[1 / (1 + sum_{k != i} z_k)] >= 1 / (1 + S), so dropping
the tail changes every c_i (and lambda_i) by less than (1 + S) / (S - 1) * exp(-L) relative:
below 3e-16 for L = 36 and 4e-9 for L = 20, whatever N. On [0, a] the integrand
f(t) = prod_{k != i} (1 - p_k a t), t in [0, 1], is an entire function with |f(z)| <= exp((L + 1) |z|)
(sum_k p_k a <= L + 1), so K-node Gauss-Legendre converges like the Bernstein-ellipse bound
rho^(-2K) exp((L + 1)(1 + rho + 1 / rho) / 4 + ...); measured against the exact rule in float64, the
chosen K and L agree to the round-off of the sum of N logs (<= 3e-13 relative up to N = 20,000, across
uniform, p^8, sparse spikes over tiny values, S near the switch L + 1, exact 0/1 mixtures, all ones, all
tiny and clipped-normal p), and float32 stays within 1e-5 relative of float64. Leaving the interval end
a out of the backward pass (it is a function of S) changes the gradient by at most
exp(-L) |da/dS| <= exp(-L) / L relative to c_i, the same order as the truncation itself.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ._checks import check_features, check_floating, check_mask, check_probabilities
from .quadrature import gauss_legendre_01_torch

__all__ = ["maa_weights", "marginalized_average", "weighted_pool", "TRUNCATED_RULE"]

#: (K nodes, L e-foldings) of the truncated rule, by compute dtype (half and bfloat16 compute in float32).
#: The tail bound (1 + S) / (S - 1) * exp(-L) is 2.3e-16 for float64 and 2.1e-9 for float32; K is the
#: smallest node count measured to reach the dtype's round-off (see the module docstring).
TRUNCATED_RULE = {torch.float64: (32, 36.0), torch.float32: (16, 20.0)}

# Largest number of (position, node) pairs processed at once, per block of nodes.
_BLOCK_ELEMENTS = 1 << 22
# Up to this many positions (and one block), the weights take the float64 product path (_SmallMAAWeights).
_SMALL_POSITIONS = 256


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _node_blocks(batch: int, positions: int, nodes: int) -> list[slice]:
    step = max(1, _BLOCK_ELEMENTS // max(1, batch * positions))
    return [slice(start, min(start + step, nodes)) for start in range(0, nodes, step)]


def use_truncated_rule(positions: int, dtype: torch.dtype) -> bool:
    """Whether the default rule for ``positions`` positions in ``dtype`` is the truncated one (N > 2K)."""
    return positions > 2 * TRUNCATED_RULE[_compute_dtype(dtype)][0]


class _Nodes(NamedTuple):
    """Quadrature nodes for p (Tensor[B, N]), each Tensor[1 or B, 1, n]: ``neg_v64`` = -v_j in float64
    (for log G), ``v`` = v_j, ``u`` = 1 - v_j and ``w`` = the weights, in ``dtype``."""

    neg_v64: torch.Tensor
    v: torch.Tensor
    u: torch.Tensor
    w: torch.Tensor


def _quadrature(p: torch.Tensor, exact: bool, dtype: torch.dtype) -> _Nodes:
    if exact:
        return _Nodes(*gauss_legendre_01_torch(p.shape[1] // 2 + 1, dtype, p.device))
    nodes, efolds = TRUNCATED_RULE[p.dtype]
    neg_t64, t64, one_minus_t64, w64 = gauss_legendre_01_torch(nodes, torch.float64, p.device)
    # a = min(1, L / (S - 1)) per sample, a constant for autograd (see the module docstring).
    total = p.detach().sum(dim=1, dtype=torch.float64).view(-1, 1, 1)  # (B, 1, 1)
    a = efolds / torch.clamp(total - 1.0, min=efolds)
    u = torch.addcmul(1.0 - a, a, one_minus_t64)  # 1 - a t = (1 - a) + a (1 - t), without cancellation
    return _Nodes(a * neg_t64, (a * t64).to(dtype), u.to(dtype), (a * w64).to(dtype))


class _SmallMAAWeights(torch.autograd.Function):
    """lambda (Tensor[B, N]) from p (Tensor[B, N]) for few positions (N <= ``_SMALL_POSITIONS``).

    Where fixed costs dominate, every step runs in float64 on the whole (B, n, N) array at once (nodes
    first, so that the broadcasts and the product over positions run along contiguous memory): G(v_j) is
    the product of the factors a_ji = 1 - p_i v_j, each in (0, 1] (no logs; relative error below N ulp),
    and 1 / a_ji is kept for the backward pass instead of being computed again. The nodes v, u and
    weights w are float64 Tensor[1 or B, n, 1].
    """

    @staticmethod
    def forward(ctx, p: torch.Tensor, v: torch.Tensor, u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        p64 = p.to(torch.float64).unsqueeze(1)  # (B, 1, N)
        factor = torch.addcmul(torch.sub(1.0, p64), p64, u)  # (B, n, N): a_ji = (1 - p_i) + p_i (1 - v_j)
        weight = factor.prod(dim=-1, keepdim=True).mul_(w)  # (B, n, 1): W_j = w_j G(v_j)
        inv_a = factor.reciprocal_()
        c = torch.bmm(weight.transpose(1, 2), inv_a)  # (B, 1, N)
        ctx.save_for_backward(p64, c, weight.mul_(v), inv_a)
        return (p64 * c).squeeze(1).to(p.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        # dL/dp_m = g_m c_m + sum_j W_j v_j / a_jm (g_m p_m / a_jm - R_j),  R_j = sum_i g_i p_i / a_ji
        p64, c, weight_v, inv_a = ctx.saved_tensors
        g = grad.to(torch.float64).unsqueeze(1)  # (B, 1, N)
        gp = g * p64
        r = torch.bmm(inv_a, gp.transpose(1, 2))  # (B, n, 1): R_j
        inner = torch.addcmul(r.neg_(), gp, inv_a).mul_(inv_a)  # (B, n, N)
        grad_p = torch.baddbmm(g * c, weight_v.transpose(1, 2), inner)  # (B, 1, N)
        return grad_p.squeeze(1).to(grad.dtype), None, None, None


class _MAAWeights(torch.autograd.Function):
    """lambda (Tensor[B, N]) from p (Tensor[B, N]) and the quadrature nodes (constants); float32 or float64."""

    @staticmethod
    def forward(ctx, p: torch.Tensor, neg_v64: torch.Tensor, v: torch.Tensor, u: torch.Tensor,
                w: torch.Tensor) -> torch.Tensor:
        batch, positions = p.shape
        one_minus_p = (1 - p).unsqueeze(-1)  # (B, N, 1)
        p3 = p.unsqueeze(-1)
        p3_64 = p3.to(torch.float64)  # log G in float64: every term of the sum of N logs to full precision
        weights, c = [], None
        for blk in _node_blocks(batch, positions, v.shape[-1]):
            log_g = torch.mul(p3_64, neg_v64[..., blk]).log1p_().sum(dim=1, keepdim=True)  # (B, 1, n): log G(v_j)
            weight = log_g.exp_().to(p.dtype).mul_(w[..., blk])  # W_j = w_j G(v_j)
            inv_a = torch.addcmul(one_minus_p, p3, u[..., blk]).reciprocal_()  # (B, N, n): 1 / (1 - p_i v_j)
            part = torch.bmm(inv_a, weight.transpose(1, 2))  # (B, N, 1)
            c = part if c is None else c.add_(part)
            weights.append(weight)
        node_weight = weights[0] if len(weights) == 1 else torch.cat(weights, dim=-1)  # (B, 1, n)
        c = c.squeeze(-1)
        ctx.save_for_backward(p, c, node_weight, v, u)
        return p * c

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        # d lambda_i / d p_m with a_ij = 1 - p_i v_j, W_j = w_j G(v_j):
        #   dL/dp_m = g_m c_m - sum_j W_j v_j R_j / a_mj + g_m p_m sum_j W_j v_j / a_mj^2,
        #   R_j = sum_i g_i p_i / a_ij.
        p, c, node_weight, v, u = ctx.saved_tensors
        batch, positions = p.shape
        one_minus_p = (1 - p).unsqueeze(-1)
        p3 = p.unsqueeze(-1)
        gp = grad * p
        gp_row = gp.unsqueeze(1)  # (B, 1, N)
        grad_p = (grad * c).unsqueeze(-1)  # (B, N, 1)
        wv_all = node_weight * v  # (B, 1, n)
        for blk in _node_blocks(batch, positions, v.shape[-1]):
            inv_a = torch.addcmul(one_minus_p, p3, u[..., blk]).reciprocal_()  # (B, N, n)
            wv = wv_all[..., blk]
            r = torch.bmm(gp_row, inv_a)  # (B, 1, n)
            grad_p.sub_(torch.bmm(inv_a, r.mul_(wv).transpose(1, 2)))
            grad_p.addcmul_(gp.unsqueeze(-1), torch.bmm(inv_a.square_(), wv.transpose(1, 2)))
        return grad_p.squeeze(-1), None, None, None, None


def _flatten_probabilities(p: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    check_floating(p, "p")
    if p.dim() < 2:
        raise ValueError(f"p must have shape (B, *S) with at least one position dim, got {tuple(p.shape)}")
    if p.shape[1:].numel() == 0:
        raise ValueError(f"p has no positions to aggregate (shape {tuple(p.shape)})")
    mask = check_mask(mask, p.shape)
    check_probabilities(p)
    flat = p if p.dim() == 2 else p.reshape(p.shape[0], -1)
    flat = flat.to(_compute_dtype(p.dtype))
    if mask is not None:
        flat = torch.where(mask.reshape(flat.shape), flat, torch.zeros_like(flat))
    return flat


def maa_weights(p: torch.Tensor, mask: torch.Tensor | None = None, *, exact: bool | None = None) -> torch.Tensor:
    """Effective weights lambda_i = p_i c_i of marginalized average aggregation.

    Args:
        p (Tensor[B, *S]): selection probabilities in [0, 1]; all positions of a sample are aggregated
            together (the ``*S`` dims are flattened).
        mask (BoolTensor[B, *S], optional): True = valid position; invalid positions get weight 0 and do
            not influence the others (as if they were absent).
        exact: ``True`` for the exact floor(N / 2) + 1-node rule, ``False`` for the linear-time truncated
            rule (equal to round-off, see the module docstring), ``None`` (default) for the exact rule up
            to N = 2K positions and the truncated one above.

    Returns:
        Tensor[B, *S]: lambda, in the dtype of ``p`` (half and bfloat16 are computed in float32).
        Each sample's weights sum to 1 - prod_i (1 - p_i).
    """
    flat = _flatten_probabilities(p, mask)
    batch, positions = flat.shape
    if exact is None:
        exact = not use_truncated_rule(positions, flat.dtype)
    weights = None
    if positions <= _SMALL_POSITIONS:
        nodes = _quadrature(flat, bool(exact), torch.float64)
        if batch * positions * nodes.v.shape[-1] <= _BLOCK_ELEMENTS:
            v, u, w = (node.transpose(1, 2) for node in nodes[1:])  # (1 or B, n, 1)
            weights = _SmallMAAWeights.apply(flat, v, u, w)
    if weights is None:
        weights = _MAAWeights.apply(flat, *_quadrature(flat, bool(exact), flat.dtype))
    weights = weights.to(p.dtype)
    return weights if p.dim() == 2 else weights.reshape(p.shape)


def marginalized_average(
    x: torch.Tensor, p: torch.Tensor, mask: torch.Tensor | None = None, *, exact: bool | None = None
) -> torch.Tensor:
    """Marginalized average aggregation E[sum_i z_i x_i / sum_i z_i], z_i ~ Bernoulli(p_i).

    Args:
        x (Tensor[B, C, *S]): features, channels first (e.g. (B, C, T), (B, C, H, W), (B, C, T, H, W)).
        p (Tensor[B, *S]): selection probabilities in [0, 1].
        mask (BoolTensor[B, *S], optional): True = valid position.
        exact: the quadrature rule, as in :func:`maa_weights`.

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
    weights = maa_weights(p, mask, exact=exact)
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
