"""wsl.class_activation: CAS / CAM against a direct per-position computation."""

import pytest
import torch

import wsl


def test_matches_per_position_loop():
    x = torch.randn(2, 5, 7, dtype=torch.float64)
    linear = torch.nn.Linear(5, 3).double()
    attention = torch.rand(2, 7, dtype=torch.float64)
    cas = wsl.class_activation(x, linear.weight, linear.bias, attention)
    assert cas.shape == (2, 3, 7)
    for b in range(2):
        for t in range(7):
            expected = attention[b, t] * torch.sigmoid(linear(x[b, :, t]))
            torch.testing.assert_close(cas[b, :, t], expected)


def test_2d_without_attention():
    x = torch.randn(1, 4, 3, 2)
    weight = torch.randn(6, 4)
    cam = wsl.class_activation(x, weight)
    assert cam.shape == (1, 6, 3, 2)
    torch.testing.assert_close(cam[0, :, 1, 1], torch.sigmoid(weight @ x[0, :, 1, 1]))


def test_exception():
    x = torch.randn(2, 5, 7)
    with pytest.raises(ValueError, match="weight"):
        wsl.class_activation(x, torch.randn(3, 4))
    with pytest.raises(ValueError, match="bias"):
        wsl.class_activation(x, torch.randn(3, 5), torch.randn(4))
    with pytest.raises(ValueError, match="attention"):
        wsl.class_activation(x, torch.randn(3, 5), attention=torch.rand(2, 6))
