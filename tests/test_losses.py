"""Losses of wsl.losses against straightforward loops over the papers' formulas."""

import math

import pytest
import torch

from wsl.losses import (
    CoActivityLoss,
    MILCrossEntropy,
    TopKMILLoss,
    coactivity_loss,
    mil_cross_entropy,
    topk_mil_loss,
)


def _lengths_mask(lengths, length):
    return torch.arange(length).view(1, -1) < torch.tensor(lengths).view(-1, 1)


def _loop_topk_mil(logits, labels, lengths, ratio):
    """W-TALC Eq. (MIL): per video, per class, the mean of the ceil(T/r) highest logits; softmax CE."""
    total = 0.0
    batch, classes, _ = logits.shape
    for i in range(batch):
        k = math.ceil(lengths[i] / ratio)
        pooled = []
        for j in range(classes):
            values = sorted((float(logits[i, j, t]) for t in range(lengths[i])), reverse=True)
            pooled.append(sum(values[:k]) / k)
        norm = math.log(sum(math.exp(v) for v in pooled))
        positives = sum(float(labels[i, j]) for j in range(classes))
        total += -sum(float(labels[i, j]) / positives * (pooled[j] - norm) for j in range(classes))
    return total / batch


def _cos_distance(u, v):
    dot = sum(a * b for a, b in zip(u, v))
    return 1.0 - dot / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)))


def _loop_coactivity(features, logits, labels, lengths, margin, pairs):
    batch, dims, _ = features.shape
    classes = logits.shape[1]

    def pooled(m, j):
        exps = [math.exp(float(logits[m, j, t])) for t in range(lengths[m])]
        lam = [e / sum(exps) for e in exps]
        high = [sum(lam[t] * float(features[m, d, t]) for t in range(lengths[m])) for d in range(dims)]
        low = [sum((1 - lam[t]) * float(features[m, d, t]) for t in range(lengths[m])) / max(lengths[m] - 1, 1)
               for d in range(dims)]
        return high, low

    total, count = 0.0, 0
    for m in range(batch):
        for n in range(m + 1, batch):
            if pairs == "consecutive" and not (m % 2 == 0 and n == m + 1):
                continue
            for j in range(classes):
                if labels[m, j] == 1 and labels[n, j] == 1:
                    high_m, low_m = pooled(m, j)
                    high_n, low_n = pooled(n, j)
                    same = _cos_distance(high_m, high_n)
                    total += 0.5 * (max(0.0, same - _cos_distance(high_m, low_n) + margin)
                                    + max(0.0, same - _cos_distance(low_m, high_n) + margin))
                    count += 1
    return total / count if count else 0.0


def _batch(seed=0, batch=5, classes=4, dims=6, length=11):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, classes, length, generator=generator, dtype=torch.float64) * 2
    features = torch.randn(batch, dims, length, generator=generator, dtype=torch.float64)
    labels = (torch.rand(batch, classes, generator=generator) < 0.5).double()
    labels[labels.sum(dim=1) == 0, 0] = 1.0
    return features, logits, labels


def test_smoke():
    features, logits, labels = _batch()
    assert topk_mil_loss(logits, labels).shape == ()
    assert coactivity_loss(features, logits, labels).shape == ()
    assert mil_cross_entropy(logits.mean(dim=2), labels).shape == ()


@pytest.mark.parametrize("ratio", [1.0, 3.0, 8.0])
@pytest.mark.parametrize("lengths", [None, [11, 3, 7, 1, 10]])
def test_topk_mil_matches_loop(ratio, lengths):
    _, logits, labels = _batch(seed=1)
    mask = None if lengths is None else _lengths_mask(lengths, logits.shape[2])
    expected = _loop_topk_mil(logits, labels, lengths or [logits.shape[2]] * logits.shape[0], ratio)
    assert topk_mil_loss(logits, labels, mask, ratio).item() == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_mil_cross_entropy_hand_computed():
    # one video, two classes with logits 0 and log 3, both positive: target 1/2 each
    logits = torch.tensor([[0.0, math.log(3.0)]], dtype=torch.float64)
    labels = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    expected = -0.5 * (math.log(1 / 4) + math.log(3 / 4))
    assert mil_cross_entropy(logits, labels).item() == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("pairs", ["all", "consecutive"])
@pytest.mark.parametrize("lengths", [None, [11, 4, 9, 2, 11]])
@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_coactivity_matches_loop(pairs, lengths, margin):
    features, logits, labels = _batch(seed=2)
    mask = None if lengths is None else _lengths_mask(lengths, logits.shape[2])
    expected = _loop_coactivity(features, logits, labels, lengths or [logits.shape[2]] * 5, margin, pairs)
    got = coactivity_loss(features, logits, labels, mask, margin=margin, pairs=pairs).item()
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_coactivity_padding_is_ignored():
    features, logits, labels = _batch(seed=3, length=8)
    mask = _lengths_mask([8, 5, 8, 6, 3], 8)
    garbage_features, garbage_logits = features.clone(), logits.clone()
    garbage_features[~mask.unsqueeze(1).expand_as(features)] = 1e3
    garbage_logits[~mask.unsqueeze(1).expand_as(logits)] = 50.0
    assert coactivity_loss(garbage_features, garbage_logits, labels, mask).item() == pytest.approx(
        coactivity_loss(features, logits, labels, mask).item(), rel=1e-12)


def test_coactivity_no_shared_class_is_zero_with_zero_gradient():
    features, logits, _ = _batch(batch=3, classes=3)
    labels = torch.eye(3, dtype=torch.float64)
    logits.requires_grad_(True)
    loss = coactivity_loss(features, logits, labels)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


def test_coactivity_zero_feature_gives_no_nan():
    features, logits, labels = _batch()
    features[0] = 0.0
    assert torch.isfinite(coactivity_loss(features, logits, labels))


def test_gradcheck():
    features, logits, labels = _batch(batch=4, classes=3, dims=3, length=5)
    mask = _lengths_mask([5, 3, 4, 5], 5)
    features.requires_grad_(True)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda f, a: coactivity_loss(f, a, labels, mask), (features, logits))
    assert torch.autograd.gradcheck(lambda a: topk_mil_loss(a, labels, mask, ratio=2.0), (logits,))


def test_module():
    features, logits, labels = _batch()
    assert TopKMILLoss(ratio=4)(logits, labels).item() == topk_mil_loss(logits, labels, ratio=4).item()
    assert MILCrossEntropy()(logits[..., 0], labels).item() == mil_cross_entropy(logits[..., 0], labels).item()
    module = CoActivityLoss(margin=0.3, pairs="consecutive")
    assert module(features, logits, labels).item() == coactivity_loss(features, logits, labels, margin=0.3,
                                                                      pairs="consecutive").item()
    assert "ratio=4.0" in repr(TopKMILLoss(ratio=4))


def test_exception():
    features, logits, labels = _batch()
    with pytest.raises(ValueError, match="at least one positive label"):
        mil_cross_entropy(logits[..., 0], torch.zeros_like(labels))
    with pytest.raises(ValueError, match=r"labels must have shape \(5, 4\)"):
        topk_mil_loss(logits, labels[:, :2])
    with pytest.raises(ValueError, match=r"logits must have shape \(B, C, T\)"):
        topk_mil_loss(logits[0], labels)
    with pytest.raises(ValueError, match="NaN or infinite"):
        topk_mil_loss(logits.clone().fill_(float("nan")), labels)
    with pytest.raises(ValueError, match="ratio must be >= 1"):
        TopKMILLoss(ratio=0.5)
    with pytest.raises(ValueError, match="without any valid position"):
        topk_mil_loss(logits, labels, torch.zeros(5, 11, dtype=torch.bool))
    with pytest.raises(ValueError, match="pairs must be one of"):
        coactivity_loss(features, logits, labels, pairs="random")
    with pytest.raises(ValueError, match="to match features"):
        coactivity_loss(features[..., :5], logits, labels)
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        coactivity_loss(features, logits, labels * 2)


@pytest.mark.parametrize("values", [[1.0, -2.0], [3e38] * 4, [-3e38] * 4, [float("nan"), 1.0], [float("inf"), 1.0],
                                    [float("inf"), float("-inf")], [3e38, 3e38, float("nan")], [3e38, float("-inf")]])
def test_finiteness_check_agrees_with_the_entrywise_test(values):
    from wsl.losses._checks import all_finite

    x = torch.tensor(values)
    assert all_finite(x) == bool(torch.isfinite(x).all())  # overflowing sums of finite values included
    features = x.view(1, 1, -1).expand(1, 2, -1).clone()
    if not torch.isfinite(x).all():
        with pytest.raises(ValueError, match="features holds NaN or infinite values"):
            coactivity_loss(features, torch.zeros(1, 2, len(values)), torch.ones(1, 2))
