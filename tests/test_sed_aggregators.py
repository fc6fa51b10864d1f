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


@pytest.mark.parametrize("spatial", [(9,), (3, 4)])
def test_linear_softmax_logits_matches_loop(spatial):
    """logits=True: the logit of the linear softmax of the sigmoids, against a loop in float64."""
    torch.manual_seed(2)
    z = 3 * torch.randn(3, 4, *spatial, dtype=torch.float64)
    mask = torch.rand(3, *spatial) > 0.3
    mask.view(3, -1)[:, 0] = True
    pooled = _loop_linear_softmax(torch.sigmoid(z), mask)
    expected = torch.log(pooled) - torch.log1p(-pooled)
    got = LinearSoftmaxPool(logits=True)(z, mask=mask).pooled
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_linear_softmax_logits_extremes():
    """Finite for logits far in either tail (where float32 sigmoids round to 0 or 1); near the large logits."""
    z = torch.tensor([[[80.0, 90.0, -3.0], [-90.0, -80.0, -85.0]]])
    got = LinearSoftmaxPool(logits=True)(z).pooled
    assert torch.isfinite(got).all()
    assert got[0, 0] > 3.0 and got[0, 1] < -79.0
    # two equal logits pool to that logit (p^2 + p^2) / (p + p) = p
    same = LinearSoftmaxPool(logits=True)(torch.full((1, 1, 2), -40.0, dtype=torch.float64)).pooled
    assert same.item() == pytest.approx(-40.0, abs=1e-9)


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
    z = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: LinearSoftmaxPool(logits=True)(v, mask=mask).pooled, (z,))
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
    assert torch.isfinite(LinearSoftmaxPool(logits=True)(torch.tensor([[[0.5, -0.1]]])).pooled).all()
    assert "logits=True" in repr(wsl.build_aggregator("linear_softmax", logits=True))
    with pytest.raises(ValueError, match="needs channels"):
        wsl.build_aggregator("autopool")
    with pytest.raises(ValueError, match="built for 4 channels, got 3"):
        AutoPool(channels=4)(torch.randn(1, 3, 5))


def test_build_logit_pool():
    """Aggregators made for probabilities are told their inputs are logits; the others are built as they are."""
    from wsl.aggregators import TopKMeanPool, build_logit_pool

    assert build_logit_pool("linear_softmax").logits
    assert not build_logit_pool("linear_softmax", logits=False).logits  # an explicit choice is kept
    assert isinstance(build_logit_pool("topk_mean", channels=3), TopKMeanPool)
    with pytest.raises(ValueError, match="unknown aggregator"):
        build_logit_pool("nope")
