"""The CAM-family image methods has, cutmix and adl: their augmentations and layers against loops, and one
short training through ``wsl-image train --method NAME`` each."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
import yaml

from wsl_image.cli import main
from wsl_image.config import TrainConfig
from wsl_image.methods import get_method, list_methods
from wsl_image.methods.adl import AttentionDropout, adl_insertion_points, insert_adl
from wsl_image.methods.cutmix import MixedTargets, cutmix_box, cutmix_images
from wsl_image.methods.has import hide_patches
from wsl_image.model import CamModel, CamOutput, create_backbone
from wsl_image.sim import make_cub_sim

torch.set_num_threads(1)

METRIC_KEYS = ("top1_loc", "top5_loc", "gt_known_loc", "max_box_acc", "max_box_acc_v2", "top1_cls", "top5_cls",
               "max_box_acc_v2_per_iou", "at_val_threshold", "val_cam_threshold", "num_images", "history")


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("methods-sim")
    make_cub_sim(out, seed=4, num_classes=2, train_per_class=4, test_per_class=2, val_per_class=1, image_size=64,
                 clutter=1)
    return out


# ---------------------------------------------------------------- training through the command


@pytest.mark.parametrize("method, aggregator, defaults", [
    ("has", "mean", {"has_patch_sizes": [0, 16, 32, 44, 56], "has_hide_prob": 0.5}),
    ("cutmix", "maa", {"cutmix_beta": 1.0, "cutmix_prob": 1.0}),
    ("adl", "tap", {"adl_drop_rate": 0.75, "adl_threshold": 0.9, "adl_layers": None}),
])
def test_trains_through_the_command(sim, tmp_path, method, aggregator, defaults):
    out = tmp_path / method
    argv = ["train", "--method", method, "--aggregator", aggregator, "--data-root", str(sim / "CUB_200_2011"),
            "--metadata", str(sim / "metadata" / "CUB"), "--out", str(out), "--epochs", "1", "--grid", "none",
            "--backbone", "test_resnet", "--image-size", "64", "--batch-size", "4", "--workers", "0",
            "--device", "cpu", "--seed", "1", "--quiet"]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(METRIC_KEYS) <= set(metrics) and metrics["aggregator"] == aggregator
    for key in METRIC_KEYS[:7]:
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["num_images"] == 4 and math.isfinite(metrics["history"][0]["loss"])
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["method"] == method and {key: config[key] for key in defaults} == defaults
    assert main(["evaluate", "--run", str(out), "--device", "cpu", "--quiet"]) == 0  # loads back with its method


def test_unknown_method_lists_them(capsys, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--data-root", "nowhere", "--method", "hass", "--out", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err == ("wsl-image train: error: unknown method 'hass'; did you mean 'has'? available: "
                                       "acol, adl, cam, cutmix, has, spg\n")
    assert not out.exists()
    assert {"adl", "cam", "cutmix", "has"} <= set(list_methods())


@pytest.mark.parametrize("changes, message", [
    ({"has_patch_sizes": []}, "has_patch_sizes must be a non-empty list of patch sides >= 0"),
    ({"has_patch_sizes": [16, -1]}, "has_patch_sizes must be a non-empty list of patch sides >= 0"),
    ({"has_hide_prob": 1.5}, r"has_hide_prob must be in \[0, 1\], got 1.5"),
    ({"cutmix_beta": -1}, "cutmix_beta must be >= 0"),
    ({"adl_threshold": 2}, r"adl_threshold must be in \[0, 1\], got 2"),
    ({"adl_layers": [""]}, "adl_layers must be a non-empty list of backbone module names"),
    ({"cam_percentile": 0}, r"cam_percentile must be in \(0, 100\] or null, got 0"),
])
def test_option_errors(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_defaults_fill_only_unset_options():
    config = get_method("has").resolve(TrainConfig(has_hide_prob=0.25))
    assert config.has_hide_prob == 0.25 and config.has_patch_sizes == [0, 16, 32, 44, 56]
    assert get_method("cam").resolve(TrainConfig()).has_hide_prob is None


# ---------------------------------------------------------------- Hide-and-Seek


def _hide_by_loop(images, sizes, prob):
    """Oracle: the draws of ``hide_patches`` in its order, each patch zeroed pixel block by pixel block."""
    out = images.clone()
    _, _, height, width = images.shape
    for b in range(images.shape[0]):
        side = sizes[int(torch.randint(len(sizes), ()))]
        if side == 0:
            continue
        draws = torch.rand(math.ceil(height / side), math.ceil(width / side))
        for row in range(draws.shape[0]):
            for col in range(draws.shape[1]):
                if float(draws[row, col]) < prob:
                    out[b, :, row * side:min((row + 1) * side, height), col * side:min((col + 1) * side, width)] = 0
    return out


def test_has_hides_exactly_the_drawn_patches():
    images = torch.randn(6, 3, 37, 50) + 10.0  # no pixel is 0 by chance; sides that do not divide the image
    sizes = [0, 4, 16, 7]
    torch.manual_seed(11)
    hidden = hide_patches(images, sizes, 0.5)
    torch.manual_seed(11)
    torch.testing.assert_close(hidden, _hide_by_loop(images, sizes, 0.5), rtol=0, atol=0)
    assert 0.2 < float((hidden == 0).float().mean()) < 0.8 and (hidden[:, 0] == 0).equal(hidden[:, 2] == 0)
    assert hide_patches(images, [8], 0.0).equal(images) and hide_patches(images, [0], 1.0).equal(images)
    assert (hide_patches(images, [8], 1.0) == 0).all()


def test_has_hidden_fraction_follows_the_probability():
    torch.manual_seed(0)
    hidden = hide_patches(torch.ones(64, 1, 64, 64), [8], 0.3)
    assert float((hidden == 0).float().mean()) == pytest.approx(0.3, abs=0.02)


# ---------------------------------------------------------------- CutMix


def test_cutmix_box_area_follows_lambda():
    torch.manual_seed(5)
    for lam in (0.0, 0.1, 0.5, 0.9, 1.0):
        for _ in range(20):
            y0, y1, x0, x1 = cutmix_box(100, 80, lam)
            assert 0 <= y0 <= y1 <= 100 and 0 <= x0 <= x1 <= 80
            side_h, side_w = int(100 * math.sqrt(1 - lam)), int(80 * math.sqrt(1 - lam))
            assert y1 - y0 <= 2 * (side_h // 2) and x1 - x0 <= 2 * (side_w // 2)
            if y0 > 0 and y1 < 100 and x0 > 0 and x1 < 80:  # not clipped: about (1 - lambda) of the image
                assert (y1 - y0) * (x1 - x0) / 8000 == pytest.approx(1 - lam, abs=0.03)


def test_cutmix_pastes_the_box_and_mixes_labels_by_area():
    images = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 3, 40, 40).contiguous()
    labels = torch.tensor([0, 1, 2, 3])
    torch.manual_seed(8)
    mixed, targets = cutmix_images(images, labels, 1.0)
    assert isinstance(targets, MixedTargets) and targets.labels.equal(labels)
    inside = mixed[:, 0] != images[:, 0]  # where the pasted image differs from the original
    for b in range(4):
        other = int(targets.other[b])
        assert (mixed[b, 0][inside[b]] == other).all() and (mixed[b, 0][~inside[b]] == b).all()
    moved = [b for b in range(4) if int(targets.other[b]) != b]  # the images that received another's box
    assert moved and 0.0 < targets.lam < 1.0  # (this seed mixes)
    for b in moved:  # the pasted area is 1 - lambda
        assert float(inside[b].float().mean()) == pytest.approx(1 - targets.lam, abs=1e-12)


def test_cutmix_loss_is_the_area_weighted_cross_entropies():
    method = get_method("cutmix")
    config = method.resolve(TrainConfig())
    logits = torch.randn(5, 4)  # the loss is computed in float32
    outputs = CamOutput(logits, torch.zeros(5, 1, 1, 1), None, torch.zeros(5, 1))
    first, second = torch.tensor([0, 1, 2, 3, 0]), torch.tensor([3, 3, 1, 0, 2])
    loss = method.loss(outputs, MixedTargets(first, second, 0.3), config)
    expected = 0.3 * F.cross_entropy(logits, first) + 0.7 * F.cross_entropy(logits, second)
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
    assert float(method.loss(outputs, first, config)) == pytest.approx(float(F.cross_entropy(logits, first)))


def test_cutmix_probability_and_beta_zero_leave_the_batch():
    images, labels = torch.randn(3, 3, 8, 8), torch.tensor([0, 1, 2])
    method = get_method("cutmix")
    for changes in ({"cutmix_prob": 0.0}, {"cutmix_beta": 0.0}):
        inputs, targets = method.training_batch(images, labels, method.resolve(TrainConfig(**changes)))
        assert inputs is images and targets is labels
    inputs, targets = method.training_batch(images, labels, method.resolve(TrainConfig()))
    assert isinstance(targets, MixedTargets)


# ---------------------------------------------------------------- ADL


def test_adl_layer_against_loops():
    torch.manual_seed(3)
    features = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    layer = AttentionDropout(drop_rate=1.0, threshold=0.6)  # always the drop branch
    dropped = layer(features)
    for b in range(2):
        attention = [[sum(float(features[b, c, i, j]) for c in range(4)) / 4 for j in range(5)] for i in range(3)]
        peak = max(max(row) for row in attention)
        for i in range(3):
            for j in range(5):
                keep = attention[i][j] < 0.6 * peak
                torch.testing.assert_close(dropped[b, :, i, j], features[b, :, i, j] * float(keep))
    assert (dropped == 0).any() and (dropped != 0).any()
    importance = AttentionDropout(drop_rate=0.0, threshold=0.6)(features)  # always the importance map
    torch.testing.assert_close(importance, features * torch.sigmoid(features.mean(1, keepdim=True)))
    layer.eval()
    assert layer(features) is features


def test_adl_insertion_points():
    with torch.device("meta"):  # shapes only: no weights are computed
        assert adl_insertion_points(create_backbone("resnet50")) == ["layer3.0", "layer4.0", "layer4.2"]
        assert adl_insertion_points(create_backbone("resnet18")) == ["layer3.0", "layer4.0", "layer4.1"]
        assert adl_insertion_points(create_backbone("vgg16")) == ["features.16", "features.22", "features.29"]
        assert adl_insertion_points(create_backbone("inception_v3")) == ["Mixed_5d", "Mixed_6e", "Mixed_7c"]
        assert adl_insertion_points(create_backbone("convnext_atto")) == ["stages.2", "stages.3"]


def test_adl_model_is_cam_in_eval_and_drops_in_training():
    torch.manual_seed(0)
    plain = CamModel("test_resnet", 3, aggregator="mean", grid=None, image_size=64)
    adl = insert_adl(CamModel("test_resnet", 3, aggregator="mean", grid=None, image_size=64), None,
                     drop_rate=1.0, threshold=0.5, image_size=64)
    assert adl.adl_layer_names == ["layer3.0", "layer4.0"]
    adl.load_state_dict(plain.state_dict())  # no new weights: checkpoints are CAM's
    images = torch.randn(2, 3, 64, 64)
    seen = []  # what follows layer3.0: a hook registered after the ADL hook sees its result
    adl.backbone.layer3[0].register_forward_hook(lambda module, inputs, output: seen.append(output))
    plain.eval(), adl.eval()
    with torch.no_grad():
        torch.testing.assert_close(adl(images).logits, plain(images).logits, rtol=0, atol=0)
        assert not (seen[-1] == 0).all(dim=1).any()  # eval: nothing dropped
        adl.train()
        adl(images)
    dropped = (seen[-1] == 0).all(dim=1)  # (B, h, w): positions dropped in every channel
    assert dropped.flatten(1).any(dim=1).all() and not dropped.all()


def test_adl_layer_errors():
    model = CamModel("test_resnet", 3, aggregator="mean", grid=None, image_size=32)
    with pytest.raises(ValueError, match="adl_layers: no module 'layer9' in backbone 'test_resnet'"):
        insert_adl(model, ["layer9"], drop_rate=0.5, threshold=0.5, image_size=32)
    with pytest.raises(ValueError, match=r"drop_rate must be in \[0, 1\], got 2"):
        AttentionDropout(drop_rate=2)


# ---------------------------------------------------------------- tuning the method options


def test_tune_searches_method_options(sim, tmp_path):
    pytest.importorskip("optuna")
    from wsl_image.tune import ImageTuneTask

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"epochs": {"choices": [1]}, "has_hide_prob": {"low": 0.25, "high": 0.75}}))
    base = dict(data_root=str(sim / "CUB_200_2011"), metadata=str(sim / "metadata" / "CUB"), backbone="test_resnet",
                image_size=32, workers=0, device="cpu")
    task = ImageTuneTask(TrainConfig(method="has", **base), space_file=str(space))
    assert task.space.settings["has_hide_prob"].searched
    assert task.base_settings()[0]["has_hide_prob"] == 0.5  # the method's default is the base setting
    assert task.protocol()["config"]["has_patch_sizes"] == [0, 16, 32, 44, 56]
    plain = ImageTuneTask(TrainConfig(**base)).protocol()["config"]  # cam: as recorded before these options
    assert not {"method", "has_hide_prob", "cutmix_beta", "adl_threshold", "cam_percentile",
                "cam_clamp_negative"} & set(plain)
    space.write_text(yaml.safe_dump({"cutmix_prob": {"choices": [0.5, 2.0]}}))
    with pytest.raises(ValueError, match=r"cutmix_prob = 2.0: cutmix_prob must be in \[0, 1\], got 2.0"):
        ImageTuneTask(TrainConfig(method="cutmix", **base), space_file=str(space))


# ---------------------------------------------------------------- seeds and resumption


@pytest.mark.parametrize("method", ["has", "cutmix", "adl"])
def test_resume_is_exact(sim, tmp_path, method):
    """2 epochs in one go == 1 epoch, interruption, ``resume`` (the augmentations draw from the saved RNG)."""
    from wsl_image.training import train

    def config(out):
        return TrainConfig(method=method, data_root=str(sim / "CUB_200_2011"), out=str(out), backbone="test_resnet",
                           image_size=32, grid=None, aggregator="mean", epochs=2, batch_size=4, workers=0,
                           device="cpu", has_patch_sizes=[0, 8, 16], adl_drop_rate=0.5)

    quiet = dict(progress=False, log=lambda message: None, evaluate=False)
    train(config(tmp_path / "straight"), **quiet)

    def interrupt(epoch, record, model):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path / "resumed"), epoch_callback=interrupt, **quiet)
    train(config(tmp_path / "resumed"), resume=True, **quiet)
    straight, resumed = (torch.load(tmp_path / name / "checkpoint.pt", weights_only=True)
                         for name in ("straight", "resumed"))
    assert resumed["epoch"] == straight["epoch"] == 2
    assert straight["model"].keys() == resumed["model"].keys()
    assert all(torch.equal(value, resumed["model"][key]) for key, value in straight["model"].items())


def test_adl_starts_from_the_weights_of_cam():
    from wsl_image.run import build_model

    models = {}
    for method in ("cam", "adl"):
        torch.manual_seed(0)
        models[method] = build_model(TrainConfig(method=method, backbone="test_resnet", image_size=32, grid=None),
                                     3, pretrained=False)
    cam, adl = (models[name].state_dict() for name in ("cam", "adl"))
    assert cam.keys() == adl.keys() and all(torch.equal(cam[key], adl[key]) for key in cam)
