"""The two-head image methods acol and spg: their erasing and seed masks against loops, the models' places in
the benchmark's backbones, one short training on each sim through ``wsl-image train``, and VGG's feature map."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
import yaml

from wsl_image.cli import main
from wsl_image.config import TrainConfig
from wsl_image.methods import get_method
from wsl_image.methods.acol import AcolModel, erase_peaks
from wsl_image.methods.heads import end_inception_at_mixed_6e
from wsl_image.methods.spg import SpgModel, masked_bce_with_logits, seed_mask, spg_loss, spg_places
from wsl_image.model import CamModel, create_backbone

torch.set_num_threads(1)

SPG_DEFAULTS = {"spg_threshold_1h": 0.7, "spg_threshold_1l": 0.01, "spg_threshold_2h": 0.5, "spg_threshold_2l": 0.05,
                "spg_threshold_3h": 0.7, "spg_threshold_3l": 0.1}
THRESHOLDS = ((0.7, 0.01), (0.5, 0.05), (0.7, 0.1))


@pytest.fixture(scope="module")
def sims(tmp_path_factory):
    root = tmp_path_factory.mktemp("two-head-sims")
    for dataset in ("cub", "ilsvrc", "openimages"):
        assert main(["make-sim", "--dataset", dataset, "--out", str(root), "--num-classes", "2", "--train-per-class",
                     "4", "--val-per-class", "1", "--test-per-class", "2", "--image-size", "64", "--quiet"]) == 0
    return root


# ---------------------------------------------------------------- training through the command, on each sim


DATASETS = {  # --dataset, image root, metadata, the metrics every run writes
    "cub": ("CUB", "CUB_200_2011", "metadata/CUB", ("top1_loc", "gt_known_loc", "max_box_acc", "max_box_acc_v2")),
    "ilsvrc": ("ILSVRC", "ILSVRC", "metadata/ILSVRC", ("top1_loc", "gt_known_loc", "max_box_acc", "max_box_acc_v2")),
    "openimages": ("OpenImages", "OpenImages", "metadata", ("pxap", "piou")),
}


@pytest.mark.parametrize("method, aggregator, defaults", [
    ("acol", "mean", {"acol_threshold": 0.7}),
    ("spg", "maa", SPG_DEFAULTS),
])
@pytest.mark.parametrize("sim", ["cub", "ilsvrc", "openimages"])
def test_trains_one_epoch_on_each_sim(sims, tmp_path, method, aggregator, defaults, sim):
    dataset, images, metadata, keys = DATASETS[sim]
    out = tmp_path / "run"
    assert main(["train", "--method", method, "--aggregator", aggregator, "--dataset", dataset, "--data-root",
                 str(sims / images), "--metadata", str(sims / metadata), "--out", str(out), "--epochs", "1",
                 "--grid", "none", "--backbone", "test_resnet", "--image-size", "64", "--batch-size", "4",
                 "--workers", "0", "--device", "cpu", "--seed", "1", "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {*keys, "top1_cls", "num_images", "history"} <= set(metrics) and metrics["aggregator"] == aggregator
    for key in (*keys, "top1_cls"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["num_images"] == 4 and math.isfinite(metrics["history"][0]["loss"])
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["method"] == method and {key: config[key] for key in defaults} == defaults
    if sim == "cub":  # the run loads back with its method: evaluate, and localize the top-2 classes
        assert main(["evaluate", "--run", str(out), "--device", "cpu", "--workers", "0", "--quiet"]) == 0
        image = next((sims / images / "images").rglob("*.jpg"))
        assert main(["localize", "--run", str(out), str(image), "--out", str(tmp_path / "maps"), "--topk", "2",
                     "--device", "cpu"]) == 0
        assert len(json.loads((tmp_path / "maps" / "boxes.json").read_text())[0]["predictions"]) == 2


def test_tune_searches_the_thresholds(sims):
    pytest.importorskip("optuna")
    import tempfile

    from wsl_image.tune import ImageTuneTask

    base = dict(data_root=str(sims / "CUB_200_2011"), metadata=str(sims / "metadata" / "CUB"),
                backbone="test_resnet", image_size=32, workers=0, device="cpu")
    with tempfile.TemporaryDirectory() as folder:
        space = f"{folder}/space.yaml"
        for method, key, default in (("acol", "acol_threshold", 0.7), ("spg", "spg_threshold_2l", 0.05)):
            with open(space, "w") as handle:
                yaml.safe_dump({"epochs": {"choices": [1]}, key: {"low": 0.01, "high": 0.9}}, handle)
            task = ImageTuneTask(TrainConfig(method=method, **base), space_file=space)
            assert task.space.settings[key].searched and task.base_settings()[0][key] == default
    assert not {"acol_threshold", "spg_threshold_1h"} & set(ImageTuneTask(TrainConfig(**base)).protocol()["config"])


# ---------------------------------------------------------------- ACoL


def _erase_by_loop(features, maps, threshold):
    """Oracle: each map normalised by its own min and max, position by position."""
    out, maps = features.clone(), maps.detach()
    for b in range(features.shape[0]):
        values = maps[b].flatten().tolist()
        low, high = min(values), max(values)
        for i in range(maps.shape[1]):
            for j in range(maps.shape[2]):
                normalised = (float(maps[b, i, j]) - low) / (high - low) if high > low else 0.0
                if normalised >= threshold:
                    out[b, :, i, j] = 0
    return out


def test_erase_peaks_matches_a_loop():
    torch.manual_seed(0)
    features = torch.randn(3, 4, 5, 6, dtype=torch.float64)
    maps = torch.randn(3, 5, 6, dtype=torch.float64)
    maps[2] = 0.5  # a constant map: nothing erased
    for threshold in (0.0, 0.3, 0.7, 1.0):
        torch.testing.assert_close(erase_peaks(features, maps, threshold), _erase_by_loop(features, maps, threshold),
                                   rtol=0, atol=0)
    assert (erase_peaks(features, maps, 0.7)[:2] == 0).any() and erase_peaks(features, maps, 0.7)[2].equal(features[2])
    features.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda f: erase_peaks(f, maps, 0.6), (features,))
    with pytest.raises(ValueError, match=r"maps must have shape \(3, 5, 6\)"):
        erase_peaks(features, maps[:, :4], 0.5)


def _linear_cam(head, features, classes):
    """Oracle of the mean-aggregator map: w_c . f at every position (the bias does not change its ranking)."""
    weight = head.classifier.weight
    return torch.stack([torch.einsum("chw,c->hw", features[b], weight[int(classes[b])])
                        for b in range(features.shape[0])])


def test_acol_branch_b_reads_the_erased_features_and_the_loss_sums_both():
    torch.manual_seed(1)
    model = AcolModel("test_resnet", 3, threshold=0.5, aggregator="mean", grid=None, image_size=64)
    images, labels = torch.randn(2, 3, 64, 64), torch.tensor([2, 0])
    output = model(images, labels)
    features = model.branch_features(images)
    head_a = model.head.layers(features)
    erased = _erase_by_loop(features, _linear_cam(model.head, head_a, labels), 0.5)
    assert (erased == 0).any()
    torch.testing.assert_close(output.logits_b, model.head_b(erased).logits)
    torch.testing.assert_close(output.logits, model.head.classifier(head_a.mean(dim=(2, 3))))  # GAP of the maps
    loss = get_method("acol").loss(output, labels, TrainConfig())
    expected = F.cross_entropy(output.logits, labels) + F.cross_entropy(output.logits_b, labels)
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)


def test_acol_map_is_the_maximum_of_both_branches():
    torch.manual_seed(2)
    model = AcolModel("test_resnet", 3, aggregator="mean", grid=None, image_size=64).eval()
    images, classes = torch.randn(2, 3, 64, 64), torch.tensor([[1, 2], [0, 1]])
    logits, maps = model.localize(images, classes=classes)
    with torch.no_grad():
        features = model.branch_features(images)
        head_a = model.head.layers(features)
        expected = []
        for index in range(2):
            map_a = _linear_cam(model.head, head_a, classes[:, index])
            erased = _erase_by_loop(features, map_a, model.threshold)
            map_b = _linear_cam(model.head_b, model.head_b.layers(erased), classes[:, index])
            low_a, low_b = map_a.amin(dim=(1, 2), keepdim=True), map_b.amin(dim=(1, 2), keepdim=True)
            span_a, span_b = map_a.amax(dim=(1, 2), keepdim=True) - low_a, map_b.amax(dim=(1, 2), keepdim=True) - low_b
            expected.append(torch.maximum((map_a - low_a) / span_a, (map_b - low_b) / span_b))
        expected = CamModel.upsample_maps(torch.stack(expected, 1), (64, 64))
    assert maps.shape == (2, 2, 64, 64)
    torch.testing.assert_close(maps, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits, model(images).logits)


# ---------------------------------------------------------------- SPG


def _seed_mask_by_loop(attention, high, low, min_foreground):
    """Oracle in the benchmark's order: fill 'ignore', set foreground (relative when too few), then background."""
    attention = attention.detach()
    targets, valid = torch.zeros_like(attention), torch.zeros(attention.shape, dtype=torch.bool)
    for b in range(attention.shape[0]):
        values = attention[b].flatten().tolist()
        level = high if sum(v > high for v in values) >= min_foreground else 0.7 * max(values)
        for i in range(attention.shape[1]):
            for j in range(attention.shape[2]):
                value = float(attention[b, i, j])
                if value > level:
                    targets[b, i, j], valid[b, i, j] = 1.0, True
                if value < low:
                    targets[b, i, j], valid[b, i, j] = 0.0, True
    return targets, valid


def test_seed_mask_matches_a_loop():
    torch.manual_seed(3)
    attention = torch.rand(4, 6, 7, dtype=torch.float64)
    attention[1] *= 0.5  # few pixels above 0.7: foreground relative to the maximum
    attention[3] = 0.3  # constant: all above 0.7 x its maximum, all foreground
    for high, low in ((0.7, 0.01), (0.5, 0.05), (0.2, 0.4)):
        targets, valid = seed_mask(attention, high, low, min_foreground=8)
        expected_targets, expected_valid = _seed_mask_by_loop(attention, high, low, 8)
        assert valid.equal(expected_valid) and targets.equal(expected_targets)
    targets, valid = seed_mask(attention, 0.7, 0.01, min_foreground=8)
    assert 0 < targets[1].sum() < 42 and valid[3].all() and targets[3].all()


def test_masked_bce_matches_a_loop_and_is_zero_when_all_is_ignored():
    torch.manual_seed(4)
    logits = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    targets = (torch.rand(2, 3, 4) > 0.5).double()
    valid = torch.rand(2, 3, 4) > 0.4
    terms = [-(t * math.log(1 / (1 + math.exp(-x))) + (1 - t) * math.log(1 - 1 / (1 + math.exp(-x))))
             for x, t, v in zip(logits.flatten().tolist(), targets.flatten().tolist(), valid.flatten().tolist()) if v]
    loss = masked_bce_with_logits(logits, targets, valid)
    assert float(loss.detach()) == pytest.approx(sum(terms) / len(terms), rel=1e-12)
    assert torch.autograd.gradcheck(lambda x: masked_bce_with_logits(x, targets, valid), (logits,))
    empty = masked_bce_with_logits(logits, targets, torch.zeros_like(valid))
    empty.backward()
    assert float(empty.detach()) == 0.0 and (logits.grad == 0).all()


def test_spg_guidance_and_loss_against_their_definitions():
    torch.manual_seed(5)
    model = SpgModel("test_resnet", 3, aggregator="mean", grid=None, image_size=64)
    images, labels = torch.randn(2, 3, 64, 64), torch.tensor([1, 2])
    output = model(images, labels)
    features = output.cam.features
    cam = _linear_cam(model.head, features, labels)  # the map of the true class, at 64 x 64, normalised
    cam = F.interpolate(cam.unsqueeze(1), size=(64, 64), mode="bilinear", align_corners=False)[:, 0]
    low, high = cam.amin(dim=(1, 2), keepdim=True), cam.amax(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(output.guidance, (cam - low) / (high - low), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(output.logits, model.head.classifier(features.mean(dim=(2, 3))))

    def up(side):
        return F.interpolate(side, size=(64, 64), mode="bilinear", align_corners=False)[:, 0]

    def bce(logits, mask):
        targets, valid = mask
        return F.binary_cross_entropy_with_logits(logits[valid], targets[valid])

    b1, b2, c = up(output.side_b1), up(output.side_b2), up(output.side_c)
    expected = (F.cross_entropy(output.logits, labels)
                + bce(b2, _seed_mask_by_loop(output.guidance, 0.7, 0.01, 30))
                + bce(b1, _seed_mask_by_loop(torch.sigmoid(b2), 0.5, 0.05, 30))
                + bce(c, _seed_mask_by_loop((torch.sigmoid(b1) + torch.sigmoid(b2)) / 2, 0.7, 0.1, 30)))
    method = get_method("spg")
    loss = method.loss(output, labels, method.resolve(TrainConfig()))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert all(p.grad is not None for p in (model.side_b1[0].weight, model.side_shared[0].weight,
                                            model.side_c[0].weight, model.head.classifier.weight))
    assert spg_loss(output, labels, THRESHOLDS).item() == pytest.approx(loss.item())
    model.eval()
    assert model(images).guidance is None and model.localize(images)[1].shape == (2, 1, 64, 64)


# ---------------------------------------------------------------- places in the benchmark's backbones


def test_places_in_the_benchmark_backbones():
    with torch.device("meta"):  # shapes only
        assert spg_places(create_backbone("resnet50"))[:2] == ("layer3.0", "layer3")
        assert spg_places(create_backbone("vgg16"))[:2] == ("features.23", "features.29")
        inception = end_inception_at_mixed_6e(create_backbone("inception_v3"))
        assert spg_places(inception)[:2] == ("Mixed_5d", "Mixed_6d")
        assert inception(torch.zeros(1, 3, 224, 224)).shape[1] == 768  # ends at Mixed_6e
        assert spg_places(create_backbone("convnext_atto"))[:2] == ("stages.1", "stages.2")
        acol = AcolModel("inception_v3", 5, image_size=224)
        assert acol.num_features == 768 and acol.head.channels == acol.head_b.channels == 1024
        spg = SpgModel("vgg16", 5, image_size=224)
        assert spg.head.channels == 512 and spg(torch.zeros(1, 3, 224, 224)).cam.features.shape[-2:] == (14, 14)


def test_head_width_scale_scales_every_new_convolution():
    def widths(module):
        return [layer.out_channels for layer in module.modules() if isinstance(layer, torch.nn.Conv2d)]

    with torch.device("meta"):  # shapes only: the benchmark's widths times the scale
        acol = AcolModel("resnet50", 5, image_size=224, width_scale=0.125)
        assert widths(acol.head.layers) == widths(acol.head_b.layers) == [128, 128] and acol.head.channels == 128
        spg = SpgModel("vgg16", 5, image_size=224, width_scale=0.125)
        assert widths(spg.extra) == [64, 64] and spg.head.channels == 64
        assert widths(spg.side_b1) == widths(spg.side_b2) == [64] and widths(spg.side_shared) == [64, 1]
        assert widths(spg.side_c) == [64, 1]
        assert widths(SpgModel("resnet50", 5, image_size=224).side_b1) == [1024]  # default: the benchmark's
    config = TrainConfig(backbone="test_resnet", image_size=32, head_width_scale=0.25)
    for method, module in (("acol", "head"), ("spg", "side_b1")):
        model = get_method(method).build_model(config.replace(method=method), 3, pretrained=False)
        assert widths(getattr(model, module))[0] == 256
    with pytest.raises(ValueError, match=r"head_width_scale must be in \(0, 4\] or null, got 0.0"):
        TrainConfig(head_width_scale=0)


def test_scaled_run_loads_back(sims, tmp_path):
    settings = tmp_path / "settings.yaml"
    settings.write_text("head_width_scale: 0.0625\n")
    out = tmp_path / "run"
    assert main(["train", "--config", str(settings), "--method", "acol", "--aggregator", "maa", "--dataset", "CUB",
                 "--data-root", str(sims / "CUB_200_2011"), "--metadata", str(sims / "metadata/CUB"), "--out",
                 str(out), "--epochs", "1", "--backbone", "test_resnet", "--image-size", "64", "--batch-size", "4",
                 "--workers", "0", "--device", "cpu", "--quiet"]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["head_width_scale"] == 0.0625
    assert main(["evaluate", "--run", str(out), "--device", "cpu", "--workers", "0", "--quiet"]) == 0  # 64 wide


def test_unsupported_and_unknown_backbones():
    with pytest.raises(ValueError, match=r"spg: backbone 'test_vit': module 'blocks.\d+' outputs \(1, \d+, \d+\), "
                                         r"not a feature map \(B, C, h, w\)"):
        SpgModel("test_vit", 3, image_size=32)
    for model in (AcolModel, SpgModel):
        with pytest.raises(ValueError, match="unknown timm backbone 'resnet5'"):
            model("resnet5", 3, image_size=32)
    with pytest.raises(ValueError, match=r"acol_threshold must be in \[0, 1\], got 1.5"):
        TrainConfig(acol_threshold=1.5)
    with pytest.raises(ValueError, match=r"spg_threshold_2l must be in \[0, 1\], got -0.1"):
        TrainConfig(spg_threshold_2l=-0.1)


# ---------------------------------------------------------------- VGG's feature map


def test_vgg_maps_are_the_last_convolution_not_1x1():
    with torch.device("meta"):
        model = CamModel("vgg16", 5, aggregator="mean", grid=None, image_size=224)
        assert model.feature_map(torch.zeros(1, 3, 224, 224)).shape == (1, 1024, 14, 14)  # conv5_3 + the neck
    assert not any(isinstance(layer, torch.nn.MaxPool2d) for layer in list(model.backbone.features)[-1:])
    assert {id(p) for p in model.neck.parameters()} <= {id(p) for p in model.head_parameters()}
    assert [entry["module"] for entry in model.backbone.feature_info][-1] == "features.29"
