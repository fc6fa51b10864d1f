"""CamModel: shapes on several timm backbones and grids, CAM oracles, gradients, config round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import wsl
from wsl_image.config import TrainConfig, load_config, save_config
from wsl_image.model import CamModel
from wsl_image.overlay import GREEN, RED, figure6_tile, make_grid, save_png

torch.set_num_threads(1)

BACKBONES = ["test_resnet", "test_efficientnet", "test_convnext"]


def _model(backbone="test_resnet", aggregator="maa", grid=4, classes=5, size=64, **kwargs):
    torch.manual_seed(0)
    return CamModel(backbone, classes, aggregator=aggregator, grid=grid, image_size=size, **kwargs).eval()


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("grid", [4, 7, None])
def test_smoke(backbone, grid):
    model = _model(backbone, grid=grid)
    images = torch.randn(2, 3, 64, 64)
    output = model(images)
    features = model.feature_map(images)
    assert output.logits.shape == (2, 5)
    assert output.features.shape == features.shape and features.shape[1] == model.num_features
    side = features.shape[-2:] if grid is None else (grid, grid)
    assert output.attention.shape == (2, *side)
    assert ((output.attention >= 0) & (output.attention <= 1)).all()
    logits, maps = model.localize(images, topk=3)
    assert torch.equal(logits, output.logits)
    assert maps.shape == (2, 3, 64, 64)
    flat = maps.flatten(2)
    assert torch.allclose(flat.min(-1).values, torch.zeros(2, 3), atol=1e-6)
    assert torch.allclose(flat.max(-1).values, torch.ones(2, 3), atol=1e-6)


@pytest.mark.parametrize("aggregator", ["weighted_sum", "mean", "max"])
def test_aggregators(aggregator):
    model = _model(aggregator=aggregator, grid=7)
    output = model(torch.randn(2, 3, 48, 48))
    assert output.logits.shape == (2, 5)
    assert model.uses_attention == (aggregator == "weighted_sum")
    assert (output.attention is None) == (aggregator != "weighted_sum")


def test_vit_tokens_reshaped_to_grid():
    model = _model("test_vit", grid=None, size=64)
    images = torch.randn(1, 3, 64, 64)
    tokens = model.backbone(images)
    features = model.feature_map(images)
    height, width = features.shape[-2:]
    assert tokens.shape[1] - model.num_prefix_tokens == height * width
    # position (i, j) of the map is patch token i * width + j
    torch.testing.assert_close(features[0, :, 1, 2], tokens[0, model.num_prefix_tokens + width + 2])
    assert model.localize(images)[1].shape == (1, 1, 64, 64)


def test_gap_cam_identity():
    """CAM property of the GAP model at native resolution: logit_c = mean_s (w_c . f_s) + b_c."""
    model = _model(aggregator="mean", grid=None)
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        output = model(images)
        cams = torch.einsum("kc,bchw->bkhw", model.classifier.weight, output.features)
    expected = cams.mean(dim=(2, 3)) + model.classifier.bias
    torch.testing.assert_close(output.logits, expected, rtol=1e-4, atol=1e-5)


def test_pooled_is_marginalized_average_of_grid():
    model = _model(aggregator="maa", grid=4)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        output = model(images)
        grid = F.adaptive_avg_pool2d(output.features, 4)
        expected = wsl.functional.marginalized_average(grid, output.attention)
    torch.testing.assert_close(output.pooled, expected)
    torch.testing.assert_close(output.logits, model.classifier(expected))


def _oracle_map(model, features, attention, label, size, score):
    """Loop-based oracle: minmax(w_c . f) or sigmoid(w_c . f + b_c), times the upsampled attention,
    bilinear to the image, minmax."""
    weight = model.classifier.weight[label].double()
    bias = model.classifier.bias[label].double()
    height, width = features.shape[-2:]
    cam = torch.zeros(height, width, dtype=torch.float64)
    for y in range(height):
        for x in range(width):
            cam[y, x] = (weight * features[:, y, x].double()).sum()
    if score == "linear":
        cam = (cam - cam.min()) / (cam.max() - cam.min())
    else:
        cam = torch.sigmoid(cam + bias)
    if attention is not None:
        up = F.interpolate(attention[None, None].double(), size=(height, width), mode="bilinear", align_corners=False)
        cam = cam * up[0, 0]
    cam = F.interpolate(cam[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    return (cam - cam.min()) / (cam.max() - cam.min())


@pytest.mark.parametrize(
    "aggregator,grid,score",
    [
        ("maa", 4, "auto"),
        ("weighted_sum", 7, "auto"),
        ("maa", None, "linear"),
        ("mean", 4, "auto"),
        ("mean", None, "sigmoid"),
        ("maa", 7, "linear"),
    ],
)
def test_localization_map_oracle(aggregator, grid, score):
    model = _model(aggregator=aggregator, grid=grid, cam_score=score)
    expected_score = {"auto": "linear" if aggregator == "mean" else "sigmoid"}.get(score, score)
    assert model.resolved_cam_score == expected_score
    images = torch.randn(2, 3, 96, 96)
    labels = torch.tensor([1, 3])
    with torch.no_grad():
        output = model(images)
        _, maps = model.localize(images, classes=labels)
    for index in range(2):
        attention = None if output.attention is None else output.attention[index]
        expected = _oracle_map(model, output.features[index], attention, int(labels[index]), (96, 96), expected_score)
        torch.testing.assert_close(maps[index, 0].double(), expected, rtol=1e-4, atol=1e-4)


def test_localize_topk_order():
    model = _model()
    images = torch.randn(2, 3, 64, 64)
    logits, maps = model.localize(images, topk=2)
    top = logits.topk(2, dim=1).indices
    _, first = model.localize(images, classes=top[:, 0])
    torch.testing.assert_close(maps[:, :1], first)


def test_gradcheck():
    model = _model(aggregator="maa", grid=4, classes=3).double()
    features = torch.rand(1, model.num_features, 3, 3, dtype=torch.float64, requires_grad=True)

    def head(x):
        return model.classifier(model.aggregator(model.pool_grid(x)).pooled)

    assert torch.autograd.gradcheck(head, (features,), eps=1e-6, atol=1e-5)


def test_backward_reaches_backbone_and_head():
    model = _model().train()
    loss = F.cross_entropy(model(torch.randn(2, 3, 64, 64)).logits, torch.tensor([0, 1]))
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    assert any(p.grad.abs().sum() > 0 for p in model.aggregator.parameters())


def test_pretrained_path(tmp_path):
    import timm

    source = timm.create_model("test_resnet", pretrained=False)
    torch.nn.init.normal_(source.conv1[0].weight)
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    model = _model(pretrained_path=str(path))
    state = model.backbone.state_dict()
    for key, value in state.items():
        torch.testing.assert_close(value, source.state_dict()[key])


def test_exception(tmp_path):
    with pytest.raises(ValueError, match="unknown timm backbone"):
        CamModel("no_such_backbone", 3)
    with pytest.raises(ValueError, match="no_such_aggregator"):
        CamModel("test_resnet", 3, aggregator="no_such_aggregator", image_size=32)
    with pytest.raises(ValueError, match="num_classes"):
        CamModel("test_resnet", 0)
    with pytest.raises(ValueError, match="cam_score"):
        CamModel("test_resnet", 3, cam_score="softmax", image_size=32)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        CamModel("test_resnet", 3, pretrained_path=str(tmp_path / "missing.pth"))


def test_config_round_trip(tmp_path):
    config = TrainConfig(
        data_root="data",
        out="run",
        grid="none",
        aggregator="weighted_sum",
        lr=3e-4,
        backbone_kwargs={"output_stride": 16},
        pretrained_path="w.pth",
    )
    path = tmp_path / "config.yaml"
    save_config(config, path)
    assert load_config(path) == config
    assert load_config(path).grid is None
    (tmp_path / "partial.yaml").write_text("lr: 1e-3\ngrid: 4\nepochs: 2\n")
    partial = load_config(tmp_path / "partial.yaml")
    assert partial.lr == pytest.approx(1e-3) and partial.grid == 4 and partial.epochs == 2
    assert partial.batch_size == TrainConfig().batch_size


@pytest.mark.parametrize(
    "text,match",
    [
        ("learning_rate: 0.1\n", "unknown option"),
        ("epochs: two\n", "epochs"),
        ("grid: 5x5\n", "grid"),
        ("- 1\n- 2\n", "mapping"),
        ("lr: -1\n", "lr"),
        ("optimizer: rmsprop\n", "optimizer"),
        ("a: [\n", "YAML"),
    ],
)
def test_config_exception(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_config(path)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")


def test_overlay_colours(tmp_path):
    import cv2

    image = np.full((40, 50, 3), 128, np.uint8)
    heatmap = np.zeros((40, 50), np.float32)
    heatmap[10:20, 10:20] = 1.0
    tile = figure6_tile(image, heatmap, np.array([[2, 3, 30, 35]]), np.array([[10, 10, 19, 19]]))
    assert tuple(tile[3, 15]) == RED and tuple(tile[20, 2]) == RED
    assert tuple(tile[10, 15]) == GREEN
    path = save_png(tmp_path / "tile.png", tile)
    read = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(read, tile)
    grid = make_grid([tile] * 3, ["a", "b", "c"], columns=2, title="t")
    assert grid.shape[1] == 2 * (50 + 4) + 4 and grid.shape[0] > 2 * 40
    with pytest.raises(ValueError, match="heatmap shape"):
        figure6_tile(image, heatmap[:10], None, None)
