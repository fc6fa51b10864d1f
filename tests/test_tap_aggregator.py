"""Thresholded average pooling against a loop over its definition."""

import pytest
import torch

import wsl
from wsl.aggregators import ThresholdedAveragePool


def _loop(x, mask, threshold):
    batch, channels = x.shape[:2]
    flat, valid = x.flatten(2), mask.flatten(1)
    out = torch.zeros(batch, channels, dtype=torch.float64)
    for b in range(batch):
        for c in range(channels):
            values = [float(flat[b, c, i]) for i in range(flat.shape[2]) if valid[b, i]]
            cut = threshold * max(values)
            kept = [v for v in values if v > cut]
            out[b, c] = sum(kept) / len(kept) if kept else 0.0
    return out


def test_smoke():
    agg = wsl.build_aggregator("tap")
    out = agg(torch.rand(2, 3, 4, 5))
    assert out.pooled.shape == (2, 3) and out.attention is None and not agg.uses_attention
    assert isinstance(wsl.build_aggregator("thresholded_mean", threshold=0.3), ThresholdedAveragePool)


@pytest.mark.parametrize("threshold", [0.0, 0.1, 0.5, 0.9])
@pytest.mark.parametrize("spatial", [(10,), (3, 4)])
def test_matches_loop(threshold, spatial):
    torch.manual_seed(0)
    x = torch.relu(torch.randn(3, 5, *spatial, dtype=torch.float64))
    x[0, 1] = 0.0  # an all-zero channel pools to 0
    x[1, 2] = -torch.rand(*spatial, dtype=torch.float64)  # a negative channel: the cut is above its maximum
    mask = torch.rand(3, *spatial) > 0.3
    mask.view(3, -1)[:, 0] = True
    got = ThresholdedAveragePool(threshold=threshold)(x, mask=mask).pooled
    torch.testing.assert_close(got, _loop(x, mask, threshold), rtol=1e-12, atol=1e-14)


def test_zero_threshold_is_mean_of_positive_positions():
    x = torch.tensor([[[0.0, 2.0, 0.0, 4.0]]], dtype=torch.float64)
    assert ThresholdedAveragePool(threshold=0.0)(x).pooled.item() == 3.0
    assert ThresholdedAveragePool(threshold=0.6)(x).pooled.item() == 4.0


def test_gradcheck():
    x = (torch.rand(2, 3, 6, dtype=torch.float64) + 0.05).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: ThresholdedAveragePool(threshold=0.4)(v).pooled, (x,))


def test_module():
    assert "threshold=0.25" in repr(ThresholdedAveragePool(threshold=0.25))


def test_exception():
    with pytest.raises(ValueError, match=r"threshold must lie in \[0, 1\)"):
        ThresholdedAveragePool(threshold=1.0)
    with pytest.raises(ValueError, match="bad options for aggregator 'tap'"):
        wsl.build_aggregator("tap", ratio=2)
