"""Built-in aggregators: shapes, masks, contracts, and agreement with the functional ops."""

from __future__ import annotations

import math

import pytest
import torch

import wsl
from wsl.aggregators import AttentionHead
from wsl.functional import marginalized_average

ATTENTION = ["maa", "weighted_sum", "dropout", "norm", "softmax_norm"]
PARAMETER_FREE = ["mean", "max", "topk_mean"]


def _build(name, channels=6, **kwargs):
    torch.manual_seed(0)
    return wsl.build_aggregator(name, channels=channels, **kwargs).double().eval()


@pytest.mark.parametrize("name", ATTENTION + PARAMETER_FREE)
@pytest.mark.parametrize("spatial", [(7,), (3, 4), (2, 3, 2)])
def test_smoke_shapes(name, spatial):
    agg = _build(name)
    x = torch.randn(2, 6, *spatial, dtype=torch.float64)
    out = agg(x)
    assert isinstance(out, wsl.Aggregation)
    assert out.pooled.shape == (2, 6)
    if name in ATTENTION:
        assert agg.uses_attention
        assert out.attention.shape == (2, *spatial)
        assert torch.all((out.attention >= 0) & (out.attention <= 1))
    else:
        assert not agg.uses_attention
        assert out.attention is None
    if out.weights is not None:
        assert out.weights.shape == (2, *spatial)
        pooled = torch.einsum("bcn,bn->bc", x.flatten(2), out.weights.flatten(1))
        torch.testing.assert_close(out.pooled, pooled)


@pytest.mark.parametrize("name", ATTENTION + PARAMETER_FREE)
def test_mask_equals_truncation(name):
    agg = _build(name)
    x = torch.randn(2, 6, 12, dtype=torch.float64)
    lengths = [12, 5]
    mask = torch.arange(12)[None] < torch.tensor(lengths)[:, None]
    padded = torch.where(mask[:, None], x, torch.full_like(x, 1e3))
    out = agg(padded, mask)
    for b, length in enumerate(lengths):
        alone = agg(x[b : b + 1, :, :length])
        torch.testing.assert_close(out.pooled[b : b + 1], alone.pooled)
        if out.attention is not None:
            assert torch.all(out.attention[b, length:] == 0)
        if out.weights is not None:
            assert torch.all(out.weights[b, length:] == 0)


def test_maa_module_equals_functional():
    agg = _build("maa")
    x = torch.randn(3, 6, 4, 5, dtype=torch.float64)
    out = agg(x)
    torch.testing.assert_close(out.pooled, marginalized_average(x, out.attention))
    torch.testing.assert_close(out.attention, agg.head(x))


def test_weighted_baselines_formulas():
    x = torch.randn(2, 6, 9, dtype=torch.float64)
    lam = _build("weighted_sum").head(x)
    torch.testing.assert_close(_build("weighted_sum")(x).pooled, torch.einsum("bcn,bn->bc", x, lam))
    norm = _build("norm")(x)
    torch.testing.assert_close(norm.pooled, torch.einsum("bcn,bn->bc", x, lam / lam.sum(1, keepdim=True)))
    soft = _build("softmax_norm")(x)  # the paper's formula: softmax of the sigmoid attention
    torch.testing.assert_close(soft.weights, torch.softmax(lam, dim=1))
    on_logits = _build("softmax_norm", on="logits")(x)
    logits = _build("softmax_norm").head.logits(x)
    torch.testing.assert_close(on_logits.weights, torch.softmax(logits, dim=1))


def test_dropout_train_and_eval():
    agg = _build("dropout")
    x = torch.randn(4, 6, 50, dtype=torch.float64)
    evaluated = agg(x)
    torch.testing.assert_close(evaluated.weights, evaluated.attention)  # eval: plain weighted sum
    agg.train()
    torch.manual_seed(1)
    trained = agg(x)
    kept = trained.weights != 0
    assert 0.3 < kept.double().mean() < 0.7
    torch.testing.assert_close(trained.weights[kept], 2 * trained.attention[kept])


def test_parameter_free_values():
    x = torch.randn(2, 3, 16, dtype=torch.float64)
    torch.testing.assert_close(_build("mean")(x).pooled, x.mean(2))
    torch.testing.assert_close(_build("gap")(x).pooled, x.mean(2))
    torch.testing.assert_close(_build("max")(x).pooled, x.amax(2))
    k = math.ceil(16 / 8)
    torch.testing.assert_close(_build("topk_mean")(x).pooled, x.topk(k, dim=2).values.mean(2))
    torch.testing.assert_close(_build("topk_mean", k=5)(x).pooled, x.topk(5, dim=2).values.mean(2))


def test_topk_mean_per_sample_k_with_mask():
    x = torch.randn(2, 3, 20, dtype=torch.float64)
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[1, 9:] = False  # 9 valid -> k = 2; 20 valid -> k = 3
    out = _build("topk_mean")(x, mask).pooled
    torch.testing.assert_close(out[0], x[0].topk(3, dim=1).values.mean(1))
    torch.testing.assert_close(out[1], x[1, :, :9].topk(2, dim=1).values.mean(1))


@pytest.mark.parametrize("name", ATTENTION + PARAMETER_FREE)
def test_gradcheck(name):
    agg = _build(name, channels=3, **({"hidden": 4} if name in ATTENTION else {}))
    x = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda inp: agg(inp).pooled, (x,))


def test_attention_head_is_the_papers():
    head = AttentionHead(1024)
    assert head.fc1.in_features == 1024 and head.fc1.out_features == 256
    assert head.fc2.out_features == 1
    assert isinstance(head.act, torch.nn.LeakyReLU)
    assert AttentionHead(8, hidden=16).fc1.out_features == 16


def test_module_trains_end_to_end():
    """MAA with its head and a linear classifier learns a toy bag-classification problem."""
    torch.manual_seed(0)
    agg = wsl.build_aggregator("maa", channels=4, hidden=8)
    classifier = torch.nn.Linear(4, 1)
    optimizer = torch.optim.Adam([*agg.parameters(), *classifier.parameters()], lr=0.05)
    x = torch.randn(64, 4, 10)
    labels = (torch.rand(64) < 0.5).float()
    x[labels == 1, 0, :3] += 3.0  # positive bags contain a few discriminative positions
    losses = []
    for _ in range(60):
        logits = classifier(agg(x).pooled).squeeze(1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_exception():
    with pytest.raises(ValueError, match="needs `channels`"):
        wsl.build_aggregator("maa")
    agg = wsl.build_aggregator("maa", channels=4)
    with pytest.raises(ValueError, match="expects 4"):
        agg(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="at least one spatial dim"):
        agg(torch.randn(2, 4))
    with pytest.raises(ValueError, match="floating"):
        agg(torch.ones(2, 4, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="mask has shape"):
        agg(torch.randn(2, 4, 3), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="no valid position"):
        wsl.build_aggregator("mean")(torch.randn(2, 4, 3), torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="bad options"):
        wsl.build_aggregator("mean", nonsense=1)
    with pytest.raises(ValueError, match="rate"):
        wsl.build_aggregator("dropout", channels=4, rate=1.5)
    with pytest.raises(ValueError, match="k must be"):
        wsl.build_aggregator("topk_mean", k=0)
    assert wsl.build_aggregator("mean", channels=99) is not None  # channels ignored when parameter-free


@pytest.mark.parametrize("name", ATTENTION + PARAMETER_FREE)
def test_attention_map_equals_forward_attention(name):
    agg = _build(name)
    x = torch.randn(2, 6, 9, dtype=torch.float64)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 5:] = False
    expected = agg(x, mask).attention
    if expected is None:
        assert agg.attention_map(x, mask) is None
    else:
        torch.testing.assert_close(agg.attention_map(x, mask), expected)
