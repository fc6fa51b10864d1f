"""Negative-weight clamping and percentile normalisation of localization maps against naive loops."""

import numpy as np
import pytest
import torch

import wsl
from wsl.cam import percentile_normalize
from wsl_image.model import CamModel

torch.set_num_threads(1)


def _naive_clamped_cam(x, weight, classes):
    """Oracle: per position sum_c max(w_kc, 0) x_c by a loop, then min-max normalised by a loop."""
    batch, channels, height, width = x.shape
    out = torch.zeros(batch, classes.shape[1], height, width, dtype=x.dtype)
    for b in range(batch):
        for j, k in enumerate(classes[b].tolist()):
            raw = [[sum(max(float(weight[k, c]), 0.0) * float(x[b, c, i, l]) for c in range(channels))
                    for l in range(width)] for i in range(height)]
            low, high = min(min(row) for row in raw), max(max(row) for row in raw)
            for i in range(height):
                for l in range(width):
                    out[b, j, i, l] = (raw[i][l] - low) / max(high - low, 1e-12)
    return out


def test_clamped_linear_cam_matches_loop():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    weight = torch.randn(4, 5, dtype=torch.float64)
    classes = torch.tensor([[1, 3], [0, 0]])
    cams = wsl.linear_class_activation(x, weight, classes, clamp_negative=True)
    torch.testing.assert_close(cams, _naive_clamped_cam(x, weight, classes))
    assert not torch.allclose(cams, wsl.linear_class_activation(x, weight, classes))  # the option does something


def test_clamped_sigmoid_cas_matches_loop():
    torch.manual_seed(1)
    x = torch.randn(2, 5, 6, dtype=torch.float64)
    weight, bias = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    cas = wsl.class_activation(x, weight, bias, clamp_negative=True)
    for b in range(2):
        for k in range(3):
            for t in range(6):
                logit = sum(max(float(weight[k, c]), 0.0) * float(x[b, c, t]) for c in range(5)) + float(bias[k])
                assert float(cas[b, k, t]) == pytest.approx(1.0 / (1.0 + np.exp(-logit)), rel=1e-12)


@pytest.mark.parametrize("percentile", [100.0, 90.0, 37.5, 1.0])
def test_percentile_normalize_matches_numpy(percentile):
    torch.manual_seed(2)
    maps = torch.rand(3, 5, 7, dtype=torch.float64)
    maps[1] = 0.25  # a constant map becomes 0
    out = percentile_normalize(maps, percentile)
    for n in range(3):
        flat = maps[n].numpy().ravel()
        low, level = flat.min(), np.percentile(flat, percentile)  # numpy's default: linear interpolation
        for index, value in enumerate(flat):
            expected = 0.0 if level - low <= 1e-12 else min(max((value - low) / (level - low), 0.0), 1.0)
            assert float(out[n].reshape(-1)[index]) == pytest.approx(expected, abs=1e-12)
    if percentile == 100.0:
        torch.testing.assert_close(out, wsl.cam.minmax_normalize(maps))


def test_percentile_normalize_exception():
    with pytest.raises(ValueError, match=r"percentile must be in \(0, 100\], got 0"):
        percentile_normalize(torch.rand(2, 3), 0)
    with pytest.raises(ValueError, match=r"percentile must be in \(0, 100\], got 101"):
        percentile_normalize(torch.rand(2, 3), 101)


def test_model_options():
    torch.manual_seed(3)
    images = torch.randn(2, 3, 96, 96)  # a 3 x 3 feature map
    plain = CamModel("test_resnet", 3, aggregator="mean", grid=None, image_size=32).eval()
    clamped = CamModel("test_resnet", 3, aggregator="mean", grid=None, image_size=32, cam_clamp_negative=True).eval()
    clamped.load_state_dict(plain.state_dict())
    with torch.no_grad():
        plain.classifier.weight[0, :3] = -5.0  # some negative weights for sure
        clamped.classifier.weight.copy_(plain.classifier.weight)
    classes = torch.tensor([0, 0])
    logits, maps = clamped.localize(images, classes)
    torch.testing.assert_close(logits, plain.localize(images, classes)[0])  # the logits are unchanged
    with torch.no_grad():
        features = clamped(images).features
    expected = clamped.upsample_maps(_naive_clamped_cam(features.double(), clamped.classifier.weight.detach().double(),
                                                        classes.view(2, 1)).float(), (96, 96))
    torch.testing.assert_close(maps, expected, atol=1e-5, rtol=1e-5)

    tail = CamModel("test_resnet", 3, aggregator="mean", grid=None, image_size=32, cam_percentile=80.0).eval()
    tail.load_state_dict(plain.state_dict())
    _, plain_maps = plain.localize(images, classes)
    _, tail_maps = tail.localize(images, classes)
    torch.testing.assert_close(tail_maps, percentile_normalize(plain_maps.flatten(0, 1), 80.0).view_as(plain_maps))
    assert float((tail_maps == 1.0).float().mean()) >= 0.19  # the top fifth is saturated
    with pytest.raises(ValueError, match=r"cam_percentile must be in \(0, 100\] or None, got 0"):
        CamModel("test_resnet", 3, image_size=32, cam_percentile=0)


@pytest.mark.parametrize("method", ["cam", "has", "cutmix", "adl"])
def test_config_options_reach_every_cam_family_model(method):
    from wsl_image.config import TrainConfig
    from wsl_image.run import build_model

    config = TrainConfig(method=method, backbone="test_resnet", image_size=32, grid=None, cam_clamp_negative=True,
                         cam_percentile=90)
    model = build_model(config, 2, pretrained=False)
    assert model.cam_clamp_negative is True and model.cam_percentile == 90.0
    plain = build_model(TrainConfig(method=method, backbone="test_resnet", image_size=32), 2, pretrained=False)
    assert plain.cam_clamp_negative is False and plain.cam_percentile is None
