"""CO2-Net and DELU on ActivityNet: the temporal filter against a loop, the dataset defaults (and what wins over
them), DELU's ActivityNet loss, and a short run on generated ActivityNet1.2 files whose checkpoint is rebuilt with
its filter."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from test_video_activitynet12 import _write as write_activitynet12

from wsl_video import cli as video_cli
from wsl_video.config import RunConfig, load_run_config
from wsl_video.methods import get_method
from wsl_video.methods.co2net import CO2NetModel, activitynet_filter_width, temporal_average
from wsl_video.methods.delu import DELU_ACTIVITYNET, DELU_THUMOS14, delu_loss, evidential_mse_loss
from wsl_video.run import load_run


def loop_average(values, width, mask=None):
    """The authors' filter one entry at a time: the sum over the window, zeros outside the video (and at padded
    snippets), divided by the full width."""
    x = values if values.dim() == 3 else values.unsqueeze(1)
    batch, channels, length = x.shape
    out = torch.zeros_like(x)
    half = width // 2
    for b in range(batch):
        for c in range(channels):
            for t in range(length):
                total = 0.0
                for j in range(t - half, t + half + 1):
                    if 0 <= j < length and (mask is None or mask[b, j]):
                        total = total + x[b, c, j]
                out[b, c, t] = total / width
    return out if values.dim() == 3 else out.squeeze(1)


@pytest.mark.parametrize("width,length", [(3, 9), (13, 20), (13, 5)])
def test_temporal_average_matches_a_loop(width, length):
    g = torch.Generator().manual_seed(width + length)
    values = torch.randn(2, 3, length, generator=g, dtype=torch.float64)
    torch.testing.assert_close(temporal_average(values, width), loop_average(values, width))
    attention = torch.rand(2, length, generator=g, dtype=torch.float64)
    torch.testing.assert_close(temporal_average(attention, width), loop_average(attention, width))
    mask = torch.ones(2, length, dtype=torch.bool)
    mask[1, length - 2:] = False
    torch.testing.assert_close(temporal_average(values, width, mask), loop_average(values, width, mask))
    assert temporal_average(values, 1) is values
    # a constant signal keeps its value only where the whole window lies inside the video
    ones = temporal_average(torch.ones(1, length, dtype=torch.float64), width)[0]
    assert ones[0].item() == pytest.approx(min(length, width // 2 + 1) / width)
    with pytest.raises(ValueError, match="odd positive"):
        temporal_average(values, 4)


def test_temporal_average_gradients():
    values = torch.randn(2, 2, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: temporal_average(v, 5), (values,))


def test_the_filter_sits_after_the_heads_and_before_the_suppression():
    torch.manual_seed(0)
    filtered = CO2NetModel(6, 4, num_classes=3, temporal_filter=5).eval()
    plain = CO2NetModel(6, 4, num_classes=3).eval()
    plain.load_state_dict(filtered.state_dict())  # the filter has no parameters
    features = {"rgb": torch.randn(2, 11, 6), "flow": torch.randn(2, 11, 4)}
    out, raw = filtered(features), plain(features)
    for name in ("cas", "attention", "rgb_attention", "flow_attention"):
        torch.testing.assert_close(getattr(out, name), loop_average(getattr(raw, name).double(), 5).float())
    torch.testing.assert_close(out.features, raw.features)  # the fused features are not filtered
    low = out.cas.min(dim=1, keepdim=True).values
    torch.testing.assert_close(out.cas_supp, out.attention.unsqueeze(1) * (out.cas - low) + low)
    torch.testing.assert_close(out.video_logits, out.cas.topk(2, dim=2).values.mean(dim=2))  # ceil(11 / 7)


def resolve(method="co2net", dataset="thumos14", **settings):
    config = RunConfig()
    config.model.method, config.data.dataset = method, dataset
    for key, value in settings.items():
        section, _, name = key.partition("__")
        setattr(getattr(config, section), name, value)
    return config.resolved()


@pytest.mark.parametrize("method", ["co2net", "delu"])
@pytest.mark.parametrize("dataset", ["activitynet", "activitynet1.2"])
def test_activitynet_defaults(method, dataset):
    config = resolve(method, dataset)
    assert (config.train.num_segments, config.train.lr, config.train.weight_decay, config.train.iterations,
            config.train.batch_size) == (60, 3e-5, 5e-4, 22000, 10)
    assert config.model.aggregator_kwargs == {"ratio": 5.0} and config.model.temporal_filter == 13
    assert config.inference.class_threshold == 0.2 and config.inference.nms == "soft"  # inference as on THUMOS14
    model = get_method(method).build_model(config, {"rgb": 4, "flow": 4}, 3)
    assert model.temporal_filter == 13 and model.pool.ratio == 5.0


@pytest.mark.parametrize("method,segments", [("co2net", 500), ("delu", 320)])
def test_thumos14_keeps_its_settings(method, segments):
    config = resolve(method, "thumos14")
    assert (config.train.num_segments, config.train.lr, config.train.weight_decay, config.train.iterations) == (
        segments, 5e-5, 1e-3, 5000)
    assert config.model.aggregator_kwargs == {} and config.model.temporal_filter == 1
    assert get_method(method).build_model(config, {"rgb": 4, "flow": 4}, 3).pool.ratio == 7.0
    assert resolve("maan", "activitynet").train.iterations == 5000  # other methods: no ActivityNet defaults


def test_set_values_win_over_the_dataset_defaults():
    config = resolve("co2net", "activitynet", train__lr=1e-4, train__iterations=300, train__num_segments=100,
                     model__aggregator_kwargs={"ratio": 7.0})
    assert (config.train.lr, config.train.iterations, config.train.num_segments) == (1e-4, 300, 100)
    assert config.train.weight_decay == 5e-4 and config.model.aggregator_kwargs == {"ratio": 7.0}
    assert config.model.temporal_filter == activitynet_filter_width(100) == 21  # derived from the snippets
    assert resolve("delu", "activitynet1.2", model__temporal_filter=1).model.temporal_filter == 1
    assert resolve("co2net", "activitynet", model__aggregator="maa").model.aggregator_kwargs == {}
    with pytest.raises(ValueError, match="method 'maan' has no temporal filter"):
        resolve("maan", "thumos14", model__temporal_filter=3)
    with pytest.raises(ValueError, match="model.temporal_filter must be an odd positive integer"):
        resolve("co2net", "thumos14", model__temporal_filter=4)


def test_delu_activitynet_loss():
    assert get_method("delu").loss_settings(resolve("delu", "activitynet1.2")) is DELU_ACTIVITYNET
    assert get_method("delu").loss_settings(resolve("delu", "thumos14")) is DELU_THUMOS14
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, generator=g, dtype=torch.float64)
    labels = torch.tensor([[1.0, 0, 0], [0, 1, 1], [0, 0, 1], [1, 0, 0]], dtype=torch.float64)
    expected = 0.0
    for i in range(4):
        alpha = [max(float(z), 0.0) + 1 for z in logits[i]]
        strength = sum(alpha)
        expected += sum((float(labels[i, k]) - alpha[k] / strength) ** 2 for k in range(3)) / 4
    assert evidential_mse_loss(logits, labels).item() == pytest.approx(expected)
    # delu_loss with the ActivityNet settings: the base terms, 1.2 * the MSE evidential term, 0.2 * the curriculum
    from test_video_co2net import random_outputs

    out, labels = random_outputs(length=15)
    settings = DELU_ACTIVITYNET
    total = delu_loss(out, labels, progress=0.5, **settings)
    zero = {**settings, "weights": {**settings["weights"], "evidential": 0.0}}
    from wsl_video.methods.delu import attention_topk_logits

    edl = evidential_mse_loss(attention_topk_logits(out.cas_supp, out.attention, 5), labels)
    assert (total - delu_loss(out, labels, progress=0.5, **zero)).item() == pytest.approx(1.2 * edl.item())


def test_short_activitynet_run_keeps_its_filter(tmp_path, capsys):
    write_activitynet12(tmp_path / "data")
    out = tmp_path / "run"
    argv = ["train", "--method", "co2net", "--dataset", "activitynet1.2", "--data-root", str(tmp_path / "data"),
            "--out", str(out), "--iterations", "3", "--batch-size", "4", "--num-segments", "20", "--device", "cpu",
            "--quiet"]
    assert video_cli.main(argv) == 0, capsys.readouterr().err
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"]["temporal_filter"] == 5 and saved["model"]["aggregator_kwargs"] == {"ratio": 5.0}
    assert saved["train"]["lr"] == 3e-5 and saved["train"]["iterations"] == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_videos"] == 4 and 0.0 <= metrics["average_mAP"] <= 1.0
    config, model, _ = load_run(out)
    assert config.model.temporal_filter == 5 and model.temporal_filter == 5
    # a run written before the key existed was trained without the filter, and loads so
    del saved["model"]["temporal_filter"]
    (out / "config.yaml").write_text(yaml.safe_dump(saved))
    assert load_run_config(out / "config.yaml").resolved().model.temporal_filter == 1
    assert load_run(out)[1].temporal_filter == 1
