"""wsl.functional.maa_weights / marginalized_average against the paper's definition and recurrence."""

from __future__ import annotations

import pytest
import torch

import wsl
from wsl.functional import maa_weights, marginalized_average
from wsl.reference import maa_enumerate, maa_recurrence, maa_weights_enumerate

torch.set_default_dtype(torch.float32)


def _probabilities(shape, seed, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    p = torch.rand(shape, generator=generator, dtype=dtype)
    flat = p.view(-1)
    flat[::5] = 0.0  # exact zeros and ones are allowed values
    flat[1::7] = 1.0
    return p


@pytest.mark.parametrize("n", [1, 2, 3, 7, 12])
def test_weights_match_enumeration_1d(n):
    p = _probabilities((4, n), seed=n)
    torch.testing.assert_close(maa_weights(p), maa_weights_enumerate(p), rtol=0, atol=1e-14)


@pytest.mark.parametrize("shape", [(3, 3, 4), (2, 2, 5), (2, 1, 1)])
def test_matches_enumeration_2d(shape):
    p = _probabilities(shape, seed=sum(shape))
    x = torch.randn(shape[0], 6, *shape[1:], dtype=torch.float64)
    torch.testing.assert_close(marginalized_average(x, p), maa_enumerate(x, p), rtol=0, atol=1e-13)


def test_hand_computed_two_positions():
    # N = 2: E[sum z x / sum z] = p1 (1 - p2) x1 + (1 - p1) p2 x2 + p1 p2 (x1 + x2) / 2
    p = torch.tensor([[0.3, 0.8]], dtype=torch.float64)
    x = torch.tensor([[[1.0, 10.0]]], dtype=torch.float64)
    expected = 0.3 * 0.2 * 1.0 + 0.7 * 0.8 * 10.0 + 0.3 * 0.8 * 11.0 / 2
    assert marginalized_average(x, p).item() == pytest.approx(expected, abs=1e-13)


@pytest.mark.parametrize("n", [13, 64, 300])
def test_matches_algorithm_1(n):
    generator = torch.Generator().manual_seed(n)
    p = torch.rand(2, n, generator=generator, dtype=torch.float64)
    x = torch.randn(2, 5, n, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(marginalized_average(x, p), maa_recurrence(x, p), rtol=1e-12, atol=1e-12)


def test_recurrence_matches_enumeration():
    """The two oracles agree with each other (guards the oracles themselves)."""
    p = _probabilities((3, 8), seed=3)
    x = torch.randn(3, 4, 8, dtype=torch.float64)
    torch.testing.assert_close(maa_recurrence(x, p), maa_enumerate(x, p), rtol=0, atol=1e-13)


def test_proposition_1_order_and_total():
    p = torch.rand(8, 50, dtype=torch.float64)
    lam = maa_weights(p)
    # lambda preserves the order of p
    order_p = torch.argsort(p, dim=1)
    assert torch.all(torch.diff(torch.gather(lam, 1, order_p), dim=1) >= -1e-15)
    # sum lambda = 1 - prod(1 - p) (the empty subset contributes 0)
    torch.testing.assert_close(lam.sum(1), 1 - torch.prod(1 - p, dim=1), rtol=0, atol=1e-13)
    # c_i = lambda_i / p_i preserves the order of p too
    c = lam / p
    assert torch.all(torch.diff(torch.gather(c, 1, order_p), dim=1) >= -1e-13)


def test_proposition_2_dominant_response_suppression():
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        p = torch.rand(1, 30, generator=generator, dtype=torch.float64) ** 2
        lam = maa_weights(p)[0]
        c = lam / p[0]
        p_norm = p[0] / p[0].sum()
        lam_norm = lam / lam.sum()
        salient = c >= 1 / p[0].sum()
        assert salient.any()
        for i in torch.nonzero(salient).flatten():
            assert torch.all((p_norm[i] - p_norm).abs() <= (lam_norm[i] - lam_norm).abs() + 1e-12)


def test_mask_is_padding_invariant():
    generator = torch.Generator().manual_seed(1)
    p = torch.rand(3, 20, generator=generator, dtype=torch.float64)
    x = torch.randn(3, 4, 20, generator=generator, dtype=torch.float64)
    lengths = [20, 13, 1]
    mask = torch.arange(20)[None] < torch.tensor(lengths)[:, None]
    garbage_p = torch.where(mask, p, torch.rand_like(p))
    garbage_x = torch.where(mask[:, None], x, 1e6 * torch.randn_like(x))
    pooled = marginalized_average(garbage_x, garbage_p, mask)
    for b, length in enumerate(lengths):
        alone = marginalized_average(x[b : b + 1, :, :length], p[b : b + 1, :length])
        torch.testing.assert_close(pooled[b : b + 1], alone, rtol=1e-12, atol=1e-12)
    weights = maa_weights(garbage_p, mask)
    assert torch.all(weights[~mask] == 0)


def test_nd_equals_flattened():
    p = torch.rand(2, 3, 4, 5, dtype=torch.float64)
    x = torch.randn(2, 6, 3, 4, 5, dtype=torch.float64)
    flat = marginalized_average(x.flatten(2), p.flatten(1))
    torch.testing.assert_close(marginalized_average(x, p), flat, rtol=0, atol=1e-14)
    assert maa_weights(p).shape == p.shape


def test_gradcheck():
    p = torch.rand(2, 11, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 3, 11, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(marginalized_average, (x, p))


def test_gradcheck_at_zero_and_one():
    p = torch.tensor([[0.0, 1.0, 0.5, 1.0, 0.0, 0.25]], dtype=torch.float64, requires_grad=True)
    with wsl.validation(False):  # finite differences step just outside [0, 1]
        assert torch.autograd.gradcheck(maa_weights, (p,))
    lam = maa_weights(p)
    (grad,) = torch.autograd.grad(lam.pow(2).sum(), p)
    assert torch.isfinite(grad).all()


def test_gradient_matches_oracle_gradient():
    p = torch.rand(3, 9, dtype=torch.float64, requires_grad=True)
    x = torch.randn(3, 4, 9, dtype=torch.float64)
    (fast,) = torch.autograd.grad(marginalized_average(x, p).sin().sum(), p)
    (slow,) = torch.autograd.grad(maa_enumerate(x, p).sin().sum(), p)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n", [20, 600])  # the few-positions path and the blocked one
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_backward_leaves_incoming_gradient_alone(n, dtype):
    """The backward pass must not write into the gradient it receives (it may be shared downstream)."""
    generator = torch.Generator().manual_seed(5)
    p = torch.rand(3, n, generator=generator, dtype=dtype).requires_grad_(True)
    grad_out = torch.randn(3, n, generator=generator, dtype=dtype)
    kept = grad_out.clone()
    (first,) = torch.autograd.grad(maa_weights(p), p, grad_out)
    assert torch.equal(grad_out, kept)
    (second,) = torch.autograd.grad(maa_weights(p), p, grad_out)
    assert torch.equal(first, second)


def test_blocked_computation_matches(monkeypatch):
    import wsl.functional.maa as maa_module

    p = torch.rand(2, 60, dtype=torch.float64, requires_grad=True)
    expected = maa_weights(p)
    (expected_grad,) = torch.autograd.grad(expected.square().sum(), p)
    monkeypatch.setattr(maa_module, "_BLOCK_ELEMENTS", 50)  # many small blocks of nodes
    blocked = maa_weights(p)
    (blocked_grad,) = torch.autograd.grad(blocked.square().sum(), p)
    torch.testing.assert_close(blocked, expected, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(blocked_grad, expected_grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_few_positions_product_path_matches_log_path(monkeypatch, exact, dtype):
    """Up to 256 positions G is a float64 product with the factors kept for backward; the general path
    (a sum of log1p per block of nodes, factors computed again in backward) must agree with it."""
    import wsl.functional.maa as maa_module

    generator = torch.Generator().manual_seed(3)
    p = torch.rand(4, 200, generator=generator, dtype=torch.float64)
    p[0, :50] = 1.0
    p[1, ::3] = 0.0
    p[2] = p[2] ** 8
    p = p.to(dtype).requires_grad_(True)
    grad_out = torch.randn(4, 200, generator=generator, dtype=dtype)
    product = maa_weights(p, exact=exact)
    (product_grad,) = torch.autograd.grad(product, p, grad_out)
    monkeypatch.setattr(maa_module, "_SMALL_POSITIONS", 0)
    logs = maa_weights(p, exact=exact)
    (logs_grad,) = torch.autograd.grad(logs, p, grad_out)
    tolerance = {"rtol": 1e-12, "atol": 1e-14} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-7}
    torch.testing.assert_close(product, logs, **tolerance)
    torch.testing.assert_close(product_grad, logs_grad, **tolerance)


@pytest.mark.parametrize(
    "n, kinds", [(10_000, ("uniform", "ones")), (3_000, ("near_one", "cubed", "sparse", "tiny"))]
)
def test_float32_stable_at_large_n(n, kinds):
    generator = torch.Generator().manual_seed(7)
    u = torch.rand(1, n, generator=generator, dtype=torch.float64)
    rows = {
        "uniform": u,
        "cubed": u**3,
        "ones": torch.ones(1, n, dtype=torch.float64),
        "near_one": 1 - 1e-3 * u,
        "sparse": (u < 0.01).double() * u,
        "tiny": 1e-6 * u,
    }
    p = torch.cat([rows[kind] for kind in kinds])
    p32 = p.float().requires_grad_(True)
    with torch.no_grad():
        lam64 = maa_weights(p)
    lam32 = maa_weights(p32)
    assert torch.isfinite(lam32).all()
    nonzero = lam64 > 0
    relative = ((lam32.detach().double() - lam64).abs()[nonzero] / lam64[nonzero]).max()
    assert relative <= 1e-5
    (grad32,) = torch.autograd.grad(lam32.sum(), p32)
    assert torch.isfinite(grad32).all()


def test_half_and_bfloat16_inputs_computed_in_float32():
    p = torch.rand(2, 30)
    x = torch.randn(2, 4, 30)
    reference = marginalized_average(x, p)
    for dtype in (torch.float16, torch.bfloat16):
        out = marginalized_average(x.to(dtype), p.to(dtype))
        assert out.dtype == dtype
        torch.testing.assert_close(out.float(), marginalized_average(x.to(dtype).float(), p.to(dtype).float()),
                                   rtol=1e-2, atol=1e-2)
        torch.testing.assert_close(out.float(), reference, rtol=5e-2, atol=5e-2)


def test_all_zero_probabilities_give_zero():
    p = torch.zeros(2, 5)
    x = torch.randn(2, 3, 5)
    assert torch.all(marginalized_average(x, p) == 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    p = torch.rand(4, 200, dtype=torch.float64)
    x = torch.randn(4, 8, 200, dtype=torch.float64)
    torch.testing.assert_close(marginalized_average(x.cuda(), p.cuda()).cpu(), marginalized_average(x, p))


def test_exception():
    x = torch.randn(2, 3, 5)
    p = torch.rand(2, 5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        maa_weights(p + 1.0)
    with pytest.raises(ValueError, match="NaN"):
        maa_weights(torch.full((1, 3), float("nan")))
    with pytest.raises(ValueError, match="shape"):
        marginalized_average(x, torch.rand(2, 4))
    with pytest.raises(ValueError, match="shape"):
        marginalized_average(x, torch.rand(3, 5))
    with pytest.raises(ValueError, match="no positions"):
        marginalized_average(torch.randn(2, 3, 0), torch.rand(2, 0))
    with pytest.raises(ValueError, match="floating"):
        maa_weights(torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="floating"):
        marginalized_average(x.long(), p)
    with pytest.raises(ValueError, match="bool"):
        maa_weights(p, torch.ones(2, 5))
    with pytest.raises(ValueError, match="mask has shape"):
        maa_weights(p, torch.ones(2, 4, dtype=torch.bool))
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1] = False
    with pytest.raises(ValueError, match=r"no valid position in sample\(s\) \[1\]"):
        marginalized_average(x, p, mask)


def test_validation_can_be_switched_off():
    p = torch.rand(2, 5) + 1.0
    with wsl.validation(False):
        maa_weights(p)  # no check, no error
    with pytest.raises(ValueError):
        maa_weights(p)


def test_torch_compile_fullgraph():
    """No graph break: no Python loop over positions, no data-dependent branch while tracing."""
    x = torch.randn(2, 4, 10, requires_grad=True)
    p = torch.rand(2, 10, requires_grad=True)
    compiled = torch.compile(marginalized_average, backend="aot_eager", fullgraph=True)
    out = compiled(x, p)
    torch.testing.assert_close(out, marginalized_average(x, p))
    out.sum().backward()
    assert torch.isfinite(p.grad).all()
