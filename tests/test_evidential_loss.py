"""wsl.losses.evidential_loss against a loop over the formulas with an independent digamma."""

import math

import pytest
import torch

from wsl.losses import EvidentialLoss, dirichlet_uncertainty, evidence, evidential_loss


def _digamma(x):
    """psi(x) by the recurrence psi(x) = psi(x + 1) - 1/x and the asymptotic series (|error| < 1e-13)."""
    result = 0.0
    while x < 10.0:
        result -= 1.0 / x
        x += 1.0
    inv2 = 1.0 / (x * x)
    series = inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 * (1 / 240 - inv2 / 132))))
    return result + math.log(x) - 0.5 / x - series


def _evidence(z, function):
    return {"relu": max(z, 0.0), "exp": math.exp(min(max(z, -10.0), 10.0)),
            "softplus": math.log1p(math.exp(z))}[function]


def _loop(logits, labels, function, kind, weighting, kl_weight):
    phi = math.log if kind == "log" else _digamma
    total = 0.0
    for row, y in zip(logits.tolist(), labels.tolist()):
        classes = len(row)
        alpha = [_evidence(z, function) + 1.0 for z in row]
        strength = sum(alpha)
        if weighting:
            u = classes / strength
            inv = [yk / ak for yk, ak in zip(y, alpha)]
            g = [(1 - u) * sum(y) * v / sum(inv) for v in inv]
        else:
            g = y
        loss = sum(gk * (phi(strength) - phi(ak)) for gk, ak in zip(g, alpha))
        if kl_weight:
            tilde = [yk + (1 - yk) * ak for yk, ak in zip(y, alpha)]
            s = sum(tilde)
            kl = (math.lgamma(s) - sum(math.lgamma(a) for a in tilde) - math.lgamma(classes)
                  + sum((a - 1) * (_digamma(a) - _digamma(s)) for a in tilde))
            loss += kl_weight * kl
        total += loss
    return total / len(logits)


def _batch(seed=0, batch=6, classes=5):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, classes, generator=generator, dtype=torch.float64) * 3
    labels = (torch.rand(batch, classes, generator=generator) < 0.4).double()
    labels[labels.sum(dim=1) == 0, -1] = 1.0
    return logits, labels


def test_smoke():
    logits, labels = _batch()
    assert evidential_loss(logits, labels).shape == ()
    u = dirichlet_uncertainty(logits)
    assert u.shape == (6,) and torch.all((u > 0) & (u <= 1))


@pytest.mark.parametrize("function", ["relu", "exp", "softplus"])
@pytest.mark.parametrize("kind", ["log", "digamma"])
@pytest.mark.parametrize("weighting", [True, False])
@pytest.mark.parametrize("kl_weight", [0.0, 0.7])
def test_matches_loop(function, kind, weighting, kl_weight):
    logits, labels = _batch(seed=1)
    got = evidential_loss(logits, labels, function=function, kind=kind, uncertainty_weighting=weighting,
                          kl_weight=kl_weight).item()
    assert got == pytest.approx(_loop(logits, labels, function, kind, weighting, kl_weight), rel=1e-10, abs=1e-12)


def test_hand_computed():
    # two classes, logits log 3 and -inf-ish: alpha = (4, 1 + e^-10), label on class 0, plain log loss
    logits = torch.tensor([[math.log(3.0), -20.0]], dtype=torch.float64)
    labels = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    alpha1 = 1 + math.exp(-10.0)
    expected = math.log(4 + alpha1) - math.log(4)
    assert evidential_loss(logits, labels, uncertainty_weighting=False).item() == pytest.approx(expected, rel=1e-14)
    assert evidence(torch.tensor([30.0]), "exp").item() == pytest.approx(math.exp(10.0))


def test_kl_vanishes_without_absent_evidence():
    labels = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    logits = torch.tensor([[5.0, -3.0, -1.0]], dtype=torch.float64)  # relu evidence 0 on absent classes
    with_kl = evidential_loss(logits, labels, function="relu", kl_weight=1.0)
    assert with_kl.item() == pytest.approx(evidential_loss(logits, labels, function="relu").item(), abs=1e-12)


def test_uncertainty_is_detached_in_the_weights():
    logits, labels = _batch(seed=2)
    logits.requires_grad_(True)
    evidential_loss(logits, labels).backward()
    manual = logits.detach().clone().requires_grad_(True)
    alpha = torch.exp(manual.clamp(-10, 10)) + 1
    strength = alpha.sum(dim=1, keepdim=True)
    u = (5 / strength).detach()
    inv = labels / alpha
    g = (1 - u) * labels.sum(dim=1, keepdim=True) * inv / inv.sum(dim=1, keepdim=True)
    (g * (strength.log() - alpha.log())).sum(dim=1).mean().backward()
    torch.testing.assert_close(logits.grad, manual.grad)


def test_gradcheck():
    # the uncertainty-guided weights treat u as a constant (checked above), so finite differences see another
    # function; the gradient of everything else is checked here
    logits, labels = _batch(batch=3, classes=4)
    logits.requires_grad_(True)
    for kind in ("log", "digamma"):
        assert torch.autograd.gradcheck(
            lambda z, kind=kind: evidential_loss(z, labels, function="softplus", kind=kind, kl_weight=0.5,
                                                uncertainty_weighting=False), (logits,))


def test_module():
    logits, labels = _batch()
    module = EvidentialLoss(function="softplus", kind="digamma", kl_weight=0.2)
    assert module(logits, labels).item() == evidential_loss(logits, labels, function="softplus", kind="digamma",
                                                            kl_weight=0.2).item()
    module.kl_weight = 0.0
    assert module(logits, labels).item() == evidential_loss(logits, labels, function="softplus",
                                                            kind="digamma").item()
    assert "kind='digamma'" in repr(module)


def test_exception():
    logits, labels = _batch()
    with pytest.raises(ValueError, match="evidence function must be one of"):
        evidential_loss(logits, labels, function="sigmoid")
    with pytest.raises(ValueError, match="kind must be one of"):
        EvidentialLoss(kind="mse")
    with pytest.raises(ValueError, match="at least one positive label"):
        evidential_loss(logits, torch.zeros_like(labels))
    with pytest.raises(ValueError, match="kl_weight must be >= 0"):
        evidential_loss(logits, labels, kl_weight=-1.0)
    with pytest.raises(ValueError, match=r"shape \(B, K\)"):
        evidential_loss(logits[0], labels)
    with pytest.raises(ValueError, match="NaN or infinite"):
        evidential_loss(logits.clone().fill_(float("inf")), labels)
