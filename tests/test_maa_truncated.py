"""The linear-time truncated rule of wsl.functional.maa_weights against the exact rule and independent oracles.

The exact rule (floor(N / 2) + 1 Gauss-Legendre nodes on [0, 1]) is itself checked against the 2^N
enumeration and the paper's Algorithm 1 in test_maa_functional.py; here the truncated rule (K nodes on
[0, a], a = min(1, L / (S - 1))) must agree with it to round-off, and with closed forms at large N.
"""

from __future__ import annotations

import math

import pytest
import torch

import wsl
from wsl.functional import maa_weights, marginalized_average
from wsl.functional.maa import TRUNCATED_RULE, use_truncated_rule
from wsl.reference import maa_recurrence, maa_weights_enumerate, probability_families

K64, L64 = TRUNCATED_RULE[torch.float64]


def _families(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    return probability_families(n, seed, switch=L64 + 1)


def _max_relative(approx: torch.Tensor, exact: torch.Tensor) -> float:
    nonzero = exact != 0
    assert torch.all(approx[~nonzero] == 0)
    return ((approx - exact).abs()[nonzero] / exact[nonzero]).max().item()


def test_smoke():
    p = torch.rand(3, 500, dtype=torch.float64)
    assert use_truncated_rule(500, torch.float64) and not use_truncated_rule(2 * K64, torch.float64)
    lam = maa_weights(p)
    assert lam.shape == p.shape and torch.isfinite(lam).all()
    torch.testing.assert_close(lam.sum(1), 1 - torch.prod(1 - p, dim=1), rtol=1e-13, atol=0)


@pytest.mark.parametrize(
    "n, names",
    [(200, None), (2_000, None), (6_000, None), (20_000, ("uniform",))],
)
def test_matches_exact_rule_across_families(n, names):
    """All eight families up to N = 6,000; uniform p at N = 20,000 (the exact rule costs O(N^2) there); the
    closed-form tests below cover N = 20,000 for constant p, all ones and 0/1 mixtures."""
    families = _families(n, seed=n)
    if names is not None:
        families = {name: families[name] for name in names}
    p = torch.stack(list(families.values()))
    truncated = maa_weights(p, exact=False)
    exact = maa_weights(p, exact=True)
    for row, name in enumerate(families):
        assert _max_relative(truncated[row], exact[row]) <= 1e-12, name
    torch.testing.assert_close(maa_weights(p), truncated, rtol=0, atol=0)  # the default above 2K positions


@pytest.mark.parametrize("n", [1_000, 20_000])
@pytest.mark.parametrize("q", [1.0, 0.5, 1e-2, (L64 + 1.5) / 1_000, 1e-6])
def test_constant_probability_closed_form(n, q):
    """All p_i = q: by symmetry lambda_i = (1 - (1 - q)^N) / N, an oracle independent of any quadrature."""
    p = torch.full((1, n), q, dtype=torch.float64)
    expected = -math.expm1(n * math.log1p(-q)) / n if q < 1 else 1.0 / n
    relative = (maa_weights(p, exact=False) - expected).abs().max().item() / expected
    assert relative <= 1e-12


@pytest.mark.parametrize("ones", [1, 3, 2_000])
def test_zero_one_mixture_closed_form(ones):
    """m positions with p = 1, the rest p = 0: lambda = 1 / m on the ones, exactly 0 elsewhere."""
    n = 20_000
    p = torch.zeros(2, n, dtype=torch.float64)
    generator = torch.Generator().manual_seed(ones)
    for row in range(2):
        p[row, torch.randperm(n, generator=generator)[:ones]] = 1.0
    lam = maa_weights(p, exact=False)
    assert torch.all(lam[p == 0] == 0)
    torch.testing.assert_close(lam[p == 1], torch.full_like(lam[p == 1], 1.0 / ones), rtol=1e-12, atol=0)


@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_forced_truncated_rule_matches_enumeration(n):
    """Small N: a = 1 and K nodes integrate the degree N - 1 polynomial exactly."""
    generator = torch.Generator().manual_seed(n)
    p = torch.rand(4, n, generator=generator, dtype=torch.float64)
    p[0, 0], p[1, -1] = 0.0, 1.0
    torch.testing.assert_close(maa_weights(p, exact=False), maa_weights_enumerate(p), rtol=0, atol=1e-14)


@pytest.mark.parametrize("n", [100, 300])
def test_matches_algorithm_1(n):
    generator = torch.Generator().manual_seed(n)
    p = torch.rand(3, n, generator=generator, dtype=torch.float64)
    p[2] = p[2] ** 8  # S close to the switch L + 1 for n = 300
    assert (p.sum(1) - 1 > L64).any()  # the interval really is truncated for some rows
    x = torch.randn(3, 5, n, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(marginalized_average(x, p, exact=False), maa_recurrence(x, p), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("families", [("uniform", "all_ones", "sum_near_switch", "zeros_and_ones"),
                                      ("power8", "sparse_spikes", "all_tiny", "clipped_normal")])
def test_float32_close_to_float64_at_20000(families):
    n = 20_000
    rows = _families(n, seed=1)
    p = torch.stack([rows[name] for name in families])
    assert use_truncated_rule(n, torch.float32)
    lam64 = maa_weights(p)
    p32 = p.float().requires_grad_(True)
    lam32 = maa_weights(p32)
    assert lam32.dtype == torch.float32
    for row, name in enumerate(families):
        assert _max_relative(lam32[row].detach().double(), lam64[row]) <= 1e-5, name
    (grad,) = torch.autograd.grad(lam32.sum(), p32)
    assert torch.isfinite(grad).all()


def test_gradcheck():
    """Float64 gradcheck on the truncated rule (S > L + 1, so a < 1) and at p in {0, 1}."""
    generator = torch.Generator().manual_seed(0)
    n = 2 * K64 + 6
    p = 0.6 + 0.4 * torch.rand(2, n, generator=generator, dtype=torch.float64)
    p[1, ::7], p[1, 1::5] = 0.0, 1.0
    assert (p.sum(1) - 1 > L64).all()
    p.requires_grad_(True)
    with wsl.validation(False):  # finite differences step just outside [0, 1] at p in {0, 1}
        assert torch.autograd.gradcheck(maa_weights, (p,))


def test_gradient_matches_exact_rule():
    generator = torch.Generator().manual_seed(3)
    p = torch.rand(3, 1_500, generator=generator, dtype=torch.float64)
    p[1] = p[1] ** 8
    p[2, ::3] = 1.0
    upstream = torch.randn(3, 1_500, generator=generator, dtype=torch.float64)
    grads = []
    for exact in (False, True):
        q = p.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad((maa_weights(q, exact=exact) * upstream).sum(), q)
        grads.append(grad)
    scale = grads[1].abs().max(dim=1, keepdim=True).values
    assert ((grads[0] - grads[1]).abs() / scale).max() <= 1e-11


def test_mask_is_padding_invariant():
    generator = torch.Generator().manual_seed(1)
    n = 400
    p = torch.rand(3, n, generator=generator, dtype=torch.float64)
    lengths = [n, 150, 1]
    mask = torch.arange(n)[None] < torch.tensor(lengths)[:, None]
    garbage = torch.where(mask, p, torch.rand_like(p))
    weights = maa_weights(garbage, mask)
    assert torch.all(weights[~mask] == 0)
    for b, length in enumerate(lengths):
        alone = maa_weights(p[b : b + 1, :length], exact=True)
        torch.testing.assert_close(weights[b : b + 1, :length], alone, rtol=1e-12, atol=1e-15)


def test_nd_equals_flattened():
    p = torch.rand(2, 30, 40, dtype=torch.float64)
    x = torch.randn(2, 5, 30, 40, dtype=torch.float64)
    torch.testing.assert_close(marginalized_average(x, p), marginalized_average(x.flatten(2), p.flatten(1)),
                               rtol=0, atol=1e-15)
    torch.testing.assert_close(maa_weights(p), maa_weights(p, exact=True), rtol=1e-12, atol=0)


def test_half_and_bfloat16_computed_in_float32():
    p = torch.rand(2, 500)
    for dtype in (torch.float16, torch.bfloat16):
        low = p.to(dtype)
        lam = maa_weights(low)
        assert lam.dtype == dtype
        torch.testing.assert_close(lam.float(), maa_weights(low.float()).to(dtype).float(), rtol=0, atol=0)


def test_torch_compile_fullgraph():
    """No graph break on the truncated path: the interval scale is computed without data-dependent shapes."""
    x = torch.randn(2, 4, 3 * K64, requires_grad=True)
    p = torch.rand(2, 3 * K64, requires_grad=True)
    compiled = torch.compile(marginalized_average, backend="aot_eager", fullgraph=True)
    out = compiled(x, p)
    torch.testing.assert_close(out, marginalized_average(x, p))
    out.sum().backward()
    assert torch.isfinite(p.grad).all()


def test_module():
    exact = wsl.build_aggregator("maa", channels=8, exact=True)
    default = wsl.build_aggregator("maa", channels=8)
    default.load_state_dict(exact.state_dict())
    x = torch.randn(2, 8, 300, dtype=torch.float64)
    exact.double(), default.double()
    torch.testing.assert_close(default(x).pooled, exact(x).pooled, rtol=1e-12, atol=1e-14)


def test_exception():
    with pytest.raises(ValueError, match="exact must be None, True or False"):
        wsl.build_aggregator("maa", channels=8, exact="yes")
