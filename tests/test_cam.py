"""wsl.cam: the sigmoid CAS and the min-max normalised linear CAM against direct per-position loops."""

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


def _naive_linear_cam(x, weight, classes, attention):
    """Oracle: per sample, class and position w_c . x_s; min and max found by a loop; then times the attention."""
    batch, _, height, width = x.shape
    out = torch.zeros(batch, classes.shape[1], height, width, dtype=x.dtype)
    for b in range(batch):
        for j, c in enumerate(classes[b].tolist()):
            raw = [[float(weight[c] @ x[b, :, i, k]) for k in range(width)] for i in range(height)]
            low = min(min(row) for row in raw)
            high = max(max(row) for row in raw)
            for i in range(height):
                for k in range(width):
                    value = (raw[i][k] - low) / max(high - low, 1e-12)
                    out[b, j, i, k] = value * (float(attention[b, i, k]) if attention is not None else 1.0)
    return out


def test_linear_cam_matches_per_position_loop():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 4, 6, dtype=torch.float64)
    weight = torch.randn(7, 5, dtype=torch.float64)
    classes = torch.tensor([[2, 0], [6, 6], [1, 3]])
    attention = torch.rand(3, 4, 6, dtype=torch.float64)
    for att in (None, attention):
        cams = wsl.linear_class_activation(x, weight, classes, att)
        assert cams.shape == (3, 2, 4, 6)
        torch.testing.assert_close(cams, _naive_linear_cam(x, weight, classes, att))
    every = wsl.linear_class_activation(x, weight)  # all K classes
    assert every.shape == (3, 7, 4, 6)
    torch.testing.assert_close(every, _naive_linear_cam(x, weight, torch.arange(7).expand(3, 7), None))
    flat = wsl.linear_class_activation(x[..., 0], weight, classes)  # a sequence (B, C, T) works too
    torch.testing.assert_close(flat, _naive_linear_cam(x[..., :1], weight, classes, None)[..., 0])


def test_linear_cam_ignores_bias_and_scale():
    """Min-max normalisation removes a positive scale and a constant shift of the activations."""
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    weight = torch.randn(3, 4, dtype=torch.float64)
    torch.testing.assert_close(wsl.linear_class_activation(x, 2.5 * weight), wsl.linear_class_activation(x, weight))
    cams = wsl.linear_class_activation(x, weight)
    assert cams.amin(dim=(2, 3)).eq(0).all() and torch.allclose(cams.amax(dim=(2, 3)), torch.ones(2, 3).double())


def test_minmax_normalize():
    from wsl.cam import minmax_normalize

    maps = torch.tensor([[[1.0, 3.0], [2.0, 5.0]], [[2.0, 2.0], [2.0, 2.0]]])
    normalised = minmax_normalize(maps)
    torch.testing.assert_close(normalised[0], torch.tensor([[0.0, 0.5], [0.25, 1.0]]))
    assert torch.equal(normalised[1], torch.zeros(2, 2))


def test_linear_cam_exception():
    x = torch.randn(2, 5, 3, 3)
    with pytest.raises(ValueError, match=r"weight must have shape \(K, 5\)"):
        wsl.linear_class_activation(x, torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"classes must have shape \(2, k\)"):
        wsl.linear_class_activation(x, torch.randn(3, 5), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="attention must have shape"):
        wsl.linear_class_activation(x, torch.randn(3, 5), attention=torch.rand(2, 3, 4))
