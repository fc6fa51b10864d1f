"""Sound-event-detection pooling (linear softmax, AutoPool) against loops over their formulas."""

import math

import pytest
import torch

import wsl
from wsl.aggregators import AutoPool, LinearSoftmaxPool


def _loop_linear_softmax(x, mask):
    batch, channels = x.shape[:2]
    flat, valid = x.flatten(2), mask.flatten(1)
    out = torch.zeros(batch, channels, dtype=torch.float64)
    for b in range(batch):
        for c in range(channels):
            values = [float(flat[b, c, i]) for i in range(flat.shape[2]) if valid[b, i]]
            out[b, c] = sum(v * v for v in values) / sum(values) if sum(values) > 0 else 0.0
    return out


def _loop_autopool(x, mask, alpha):
    batch, channels = x.shape[:2]
    flat, valid = x.flatten(2), mask.flatten(1)
    out = torch.zeros(batch, channels, dtype=torch.float64)
    for b in range(batch):
        for c in range(channels):
            values = [float(flat[b, c, i]) for i in range(flat.shape[2]) if valid[b, i]]
            exps = [math.exp(float(alpha[c]) * v) for v in values]
            out[b, c] = sum(v * e for v, e in zip(values, exps)) / sum(exps)
    return out


@pytest.mark.parametrize("spatial", [(9,), (3, 4)])
def test_smoke(spatial):
    for name in ("linear_softmax", "autopool"):
        agg = wsl.build_aggregator(name, channels=5)
        out = agg(torch.rand(2, 5, *spatial))
        assert out.pooled.shape == (2, 5) and out.attention is None and out.weights is None
        assert not agg.uses_attention


@pytest.mark.parametrize("spatial", [(9,), (3, 4)])
def test_linear_softmax_matches_loop(spatial):
    torch.manual_seed(0)
    x = torch.rand(3, 4, *spatial, dtype=torch.float64)
    mask = torch.rand(3, *spatial) > 0.3
    mask.view(3, -1)[:, 0] = True
    x[1, 2] = 0.0  # an all-zero channel pools to zero
    got = LinearSoftmaxPool()(x, mask=mask).pooled
    torch.testing.assert_close(got, _loop_linear_softmax(x, mask), rtol=1e-12, atol=1e-14)


def test_linear_softmax_hand_computed():
    x = torch.tensor([[[0.2, 0.6, 0.2]]], dtype=torch.float64)
    assert LinearSoftmaxPool()(x).pooled.item() == pytest.approx((0.04 + 0.36 + 0.04) / 1.0)


@pytest.mark.parametrize("spatial", [(9,), (2, 5)])
def test_autopool_matches_loop(spatial):
    torch.manual_seed(1)
    agg = AutoPool(channels=4).double()
    with torch.no_grad():
        agg.alpha.copy_(torch.tensor([0.0, 1.5, -2.0, 6.0]))
    x = torch.randn(3, 4, *spatial, dtype=torch.float64)
    mask = torch.rand(3, *spatial) > 0.3
    mask.view(3, -1)[:, 0] = True
    torch.testing.assert_close(agg(x, mask=mask).pooled, _loop_autopool(x, mask, agg.alpha.detach()),
                               rtol=1e-12, atol=1e-14)


def test_autopool_limits():
    x = torch.randn(2, 3, 7, dtype=torch.float64)
    mean = AutoPool(channels=3, alpha=0.0).double()(x).pooled
    torch.testing.assert_close(mean, x.mean(dim=2))
    high = AutoPool(channels=3, alpha=200.0).double()(x).pooled
    torch.testing.assert_close(high, x.amax(dim=2), rtol=1e-6, atol=1e-6)
    shared = AutoPool(alpha=-200.0, per_channel=False).double()(x).pooled
    torch.testing.assert_close(shared, x.amin(dim=2), rtol=1e-6, atol=1e-6)


def test_gradcheck():
    x = torch.rand(2, 3, 5, dtype=torch.float64) + 0.1
    mask = torch.tensor([[1, 1, 1, 0, 1], [1, 0, 1, 1, 1]], dtype=torch.bool)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: LinearSoftmaxPool()(v, mask=mask).pooled, (x,))
    agg = AutoPool(channels=3, alpha=0.7).double()
    alpha = agg.alpha.detach().clone().requires_grad_(True)

    def pooled(v, a):
        return torch.func.functional_call(agg, {"alpha": a}, (v,), {"mask": mask}).pooled

    assert torch.autograd.gradcheck(pooled, (x, alpha))


def test_module():
    agg = wsl.build_aggregator("autopool", channels=4, alpha=1.0)
    assert isinstance(agg, AutoPool) and agg.alpha.requires_grad
    assert "per_channel=True" in repr(agg)
    loss = agg(torch.randn(2, 4, 6)).pooled.sum()
    loss.backward()
    assert agg.alpha.grad is not None and torch.isfinite(agg.alpha.grad).all()


def test_exception():
    with pytest.raises(ValueError, match="non-negative"):
        LinearSoftmaxPool()(torch.tensor([[[0.5, -0.1]]]))
    with pytest.raises(ValueError, match="needs channels"):
        wsl.build_aggregator("autopool")
    with pytest.raises(ValueError, match="built for 4 channels, got 3"):
        AutoPool(channels=4)(torch.randn(1, 3, 5))
