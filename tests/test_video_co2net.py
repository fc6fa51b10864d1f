"""The CO2-Net and DELU recipes: losses against loop implementations of the papers' formulas, the model's pieces,
the authors' inference, end-to-end training through ``wsl-video train`` (also with MAA inside) and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from wsl_video import cli as video_cli
from wsl_video.config import RunConfig
from wsl_video.methods import get_method
from wsl_video.methods.co2net import CO2NetModel, CO2NetOutput, co2net_detections, co2net_loss, suppress_cas
from wsl_video.methods.delu import delu_loss

SIM = ["--dataset", "thumos14-sim", "--sim", "videos=6", "--sim", "feature_dim=8", "--device", "cpu", "--quiet"]
SHORT = ["--batch-size", "4", "--num-segments", "14"]


def resolved(method: str) -> RunConfig:
    config = RunConfig()
    config.model.method = method
    return config.resolved()


def random_outputs(batch=6, classes=3, length=14, dim=5, seed=0):
    """CO2NetOutput of random tensors, the video logits pooled as the model pools them (top-k, ratio 7)."""
    import wsl

    g = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, dim, length, generator=g, dtype=torch.float64)
    cas = torch.randn(batch, classes + 1, length, generator=g, dtype=torch.float64)
    rgb = torch.rand(batch, length, generator=g, dtype=torch.float64).requires_grad_()
    flow = torch.rand(batch, length, generator=g, dtype=torch.float64).requires_grad_()
    attention = (rgb + flow) / 2
    supp = suppress_cas(cas, attention)
    pool = wsl.build_aggregator("topk_mean", channels=classes + 1, ratio=7.0)
    out = CO2NetOutput(features, cas, supp, attention, rgb, flow, pool(cas).pooled, pool(supp).pooled, None)
    labels = torch.zeros(batch, classes, dtype=torch.float64)
    labels[[0, 1, 2, 3, 4, 5], [0, 0, 1, 1, 2, 0]] = 1
    labels[1, 2] = 1
    labels[3, 0] = 1
    return out, labels


def co2net_oracle(features, cas, rgb, flow, labels, pairs=3, guide_weight=0.8):
    """CO2-Net's loss from the paper, one video, snippet and class at a time (k = T // 7 snippets per class)."""
    batch, classes = labels.shape
    length = cas.shape[2]
    k = max(1, length // 7)
    attention = [[(rgb[i, t] + flow[i, t]) / 2 for t in range(length)] for i in range(batch)]
    supp = torch.zeros_like(cas)
    for i in range(batch):
        for t in range(length):
            low = min(cas[i, c, t] for c in range(classes + 1))
            for c in range(classes + 1):
                supp[i, c, t] = attention[i][t] * (cas[i, c, t] - low) + low

    def mil(sequence, background):
        total = 0.0
        for i in range(batch):
            pooled = torch.stack([sum(sorted(sequence[i, c].unbind(), reverse=True)[:k]) / k
                                  for c in range(classes + 1)])
            target = torch.cat([labels[i], torch.tensor([background], dtype=labels.dtype)])
            target = target / target.sum()
            total = total - (target * (pooled - torch.logsumexp(pooled, 0))).sum()
        return total / batch

    hinge, count = 0.0, 0
    for m in range(0, 2 * pairs, 2):
        n = m + 1
        for c in range(classes):
            if not (labels[m, c] and labels[n, c]):
                continue

            def high_low(v, c=c):
                a = torch.softmax(supp[v, c], 0)
                return (features[v] * a).sum(1), (features[v] * (1 - a)).sum(1) / (length - 1)

            def dist(u, w):
                return 1 - (u @ w) / (u.norm() * w.norm())

            (hm, lm), (hn, ln) = high_low(m), high_low(n)
            hinge = hinge + 0.5 * torch.clamp(dist(hm, hn) - dist(hm, ln) + 0.5, min=0)
            hinge = hinge + 0.5 * torch.clamp(dist(hm, hn) - dist(lm, hn) + 0.5, min=0)
            count += 1
    contrastive = hinge / count
    cells = batch * length
    mutual = 0.0
    for i in range(batch):
        for t in range(length):  # each stream learns from the other's stopped attention
            mutual = mutual + 0.5 * (rgb[i, t] - flow[i, t].detach()) ** 2 / cells
            mutual = mutual + 0.5 * (flow[i, t] - rgb[i, t].detach()) ** 2 / cells
    norm, guide = 0.0, 0.0
    for i in range(batch):
        for t in range(length):
            background = torch.softmax(cas[i, :, t], 0)[-1]
            for a in (attention[i][t], rgb[i, t], flow[i, t]):
                norm = norm + a / (3 * cells)
                guide = guide + (1 - a - background).abs() / (3 * cells)
    return mil(cas, 1.0) + mil(supp, 0.0) + contrastive + mutual + 0.8 * norm + guide_weight * guide


def test_co2net_loss_matches_the_papers_formulas():
    out, labels = random_outputs()
    loss = co2net_loss(out, labels)
    grads = torch.autograd.grad(loss, (out.rgb_attention, out.flow_attention))
    expected = co2net_oracle(out.features, out.cas, out.rgb_attention, out.flow_attention, labels)
    expected_grads = torch.autograd.grad(expected, (out.rgb_attention, out.flow_attention))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    for got, want in zip(grads, expected_grads):  # the stop-gradients of the mutual term included
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-9)


def delu_oracle(out, labels, progress):
    """DELU's loss from the paper and the authors' settings: CO2-Net's (guide weight 0.4) + 1.3 evidential
    + 0.4 uncertainty-guided curriculum, one video, snippet and class at a time."""
    batch, classes = labels.shape
    length = out.cas.shape[2]
    base = co2net_oracle(out.features, out.cas, out.rgb_attention, out.flow_attention, labels, guide_weight=0.4)
    rgb, flow = out.rgb_attention, out.flow_attention
    evidential, curriculum = 0.0, 0.0
    for i in range(batch):
        attention = [(rgb[i, t] + flow[i, t]) / 2 for t in range(length)]
        low = [min(out.cas[i, c, t] for c in range(classes + 1)) for t in range(length)]
        supp = [[attention[t] * (out.cas[i, c, t] - low[t]) + low[t] for t in range(length)]
                for c in range(classes + 1)]
        k = max(1, length // 9)
        top = sorted(range(length), key=lambda t: -attention[t].item())[:k]
        logits = [sum(supp[c][t] for t in top) / k for c in range(classes)]
        alpha = [torch.exp(torch.clamp(z, -10, 10)) + 1 for z in logits]
        strength = sum(alpha)
        u = (classes / strength).detach()
        inverse = [labels[i, c] / alpha[c] for c in range(classes)]
        for c in range(classes):
            g = (1 - u) * labels[i].sum() * inverse[c] / sum(inverse)
            evidential = evidential + g * (torch.log(strength) - torch.log(alpha[c])) / batch
        snippet_u = [classes / sum(torch.exp(torch.clamp(supp[c][t], -10, 10)).item() + 1 for c in range(classes + 1))
                     for t in range(length)]
        order = sorted(range(length), key=lambda t: snippet_u[t])
        curve = [0.7 * np.tanh((2 * (j + 0.5) / length - 1) * (1 - 2 * progress)) + 1 for j in range(length)]
        for t in range(length):
            background = torch.softmax(out.cas[i, :, t], 0)[-1]
            guide = sum((1 - a - background).abs() for a in (attention[t], rgb[i, t], flow[i, t])) / 3
            curriculum = curriculum + curve[order[t]] * guide / (batch * length)
    return base + 1.3 * evidential + 0.4 * curriculum


@pytest.mark.parametrize("progress", [0.0, 0.3, 1.0])
def test_delu_loss_matches_the_papers_formulas(progress):
    out, labels = random_outputs(seed=1)
    loss = delu_loss(out, labels, progress)
    expected = delu_oracle(out, labels, progress)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    grads = torch.autograd.grad(loss, (out.rgb_attention, out.flow_attention))
    expected_grads = torch.autograd.grad(expected, (out.rgb_attention, out.flow_attention))
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-9)


def test_delu_schedule_follows_the_iteration():
    out, labels = random_outputs(seed=2)
    method, config = get_method("delu"), resolved("delu")
    config.train.iterations = 10
    first = method.training_loss(out, labels, config, 0)
    assert first.item() == pytest.approx(method.loss(out, labels, config).item())
    assert method.training_loss(out, labels, config, 9).item() != pytest.approx(first.item())
    assert get_method("co2net").training_loss(out, labels, config, 9).item() == pytest.approx(
        co2net_loss(out, labels).item())


def test_co2net_model_pieces():
    torch.manual_seed(0)
    model = CO2NetModel(6, 4, num_classes=3).eval()
    features = {"rgb": torch.randn(2, 21, 6), "flow": torch.randn(2, 21, 4)}
    out = model(features)
    assert out.cas.shape == (2, 4, 21) and out.features.shape == (2, 10, 21)
    torch.testing.assert_close(out.attention, (out.rgb_attention + out.flow_attention) / 2)
    assert ((out.attention > 0) & (out.attention < 1)).all()
    k = 3  # ceil(21 / 7) highest logits per class
    torch.testing.assert_close(out.video_logits, out.cas.topk(k, dim=2).values.mean(dim=2))
    weighted = out.cas * out.attention.unsqueeze(1)
    torch.testing.assert_close(model.cas(features), weighted[:, :3].transpose(1, 2))
    expected = torch.softmax(weighted.topk(k, dim=2).values.mean(dim=2), dim=1)[:, :3]
    torch.testing.assert_close(model.probabilities(features), expected)
    # the flow stream re-weights the RGB features: changing flow changes the RGB attention
    other = model({"rgb": features["rgb"], "flow": features["flow"] + 1}).rgb_attention
    assert not torch.allclose(other, out.rgb_attention)


def test_co2net_detections_follow_the_authors_rules():
    attention = np.array([0.0, 0.95, 0.95, 0.5, 0.0, 0.0, 0.0, 0.0])
    cas = np.zeros((8, 2))
    cas[0:4, 0] = [1.0, 2.0, 3.0, 1.0]
    scores = np.array([0.9, 0.1])
    rows = co2net_detections(cas, attention, scores, 0.5, thresholds=(0.3, 0.9), nms="none")
    # class 1 is below 0.2: only class 0; runs [1, 4) (cut 0.3) and [1, 3) (cut 0.9); outer region int(0.25 * length)
    # snippets on each side: snippet 0 for both (value 1), nothing after (int(3.75) = 3, int(2.5) = 2)
    assert [row[:3] for row in rows] == [(0, 0.5, 1.5), (0, 0.5, 2.0)]
    assert rows[0][3] == pytest.approx(2.5 - 1.0 + 0.2 * 0.9)
    assert rows[1][3] == pytest.approx(2.0 - 1.0 + 0.2 * 0.9)
    assert co2net_detections(cas, attention, np.array([0.1, 0.05]), 0.5, thresholds=(0.3,))[0][0] == 0  # best class
    soft = co2net_detections(cas, attention, scores, 0.5, thresholds=(0.3, 0.9), nms="soft", soft_sigma=0.3)
    assert soft[0][3] == pytest.approx(rows[0][3]) and soft[1][3] < rows[1][3]  # the overlapping one decays


def test_co2net_defaults():
    config = resolved("co2net")
    assert (config.data.streams, config.model.aggregator, config.train.batch_size, config.train.num_segments,
            config.train.lr, config.train.weight_decay) == ("two", "topk_mean", 10, 500, 5e-5, 1e-3)
    assert (config.inference.class_threshold, config.inference.nms, config.inference.soft_sigma,
            config.inference.video_scores) == (0.2, "soft", 0.3, "full")
    assert config.inference.cas_thresholds == pytest.approx(list(np.linspace(0.1, 0.9, 10)))
    assert resolved("maan").inference.soft_sigma == 0.5
    delu = resolved("delu")
    assert (delu.data.streams, delu.train.num_segments, delu.train.lr, delu.train.weight_decay) == (
        "two", 320, 5e-5, 1e-3)
    assert get_method("delu").localize.__func__ is get_method("co2net").localize.__func__


def test_co2net_batches_pair_different_videos():
    config = resolved("co2net")
    config.train.batch_size, config.train.num_segments = 8, 12
    labels = np.zeros((10, 3))
    labels[np.arange(10), np.arange(10) % 3] = 1
    videos = {i: {"rgb": np.full((30, 2), i, np.float32), "flow": np.full((30, 3), i, np.float32)} for i in range(10)}
    rng = np.random.default_rng(0)
    for _ in range(20):
        batch = get_method("co2net").sample_batch(lambda i: videos[i], labels, ("rgb", "flow"), config, rng, "cpu")
        assert batch.mask is None and batch.features["rgb"].shape == (8, 12, 2)
        assert batch.features["flow"].shape == (8, 12, 3)
        for m in range(0, 6, 2):
            a, b = batch.videos[m], batch.videos[m + 1]
            assert a != b and (labels[a] * labels[b]).any()
        assert torch.equal(batch.features["rgb"][:, 0, 0], torch.as_tensor(batch.videos, dtype=torch.float32))


# ------------------------------------------------------------------------------------------- the command


@pytest.mark.parametrize("method", ["co2net", "delu"])
def test_trains_end_to_end(method, tmp_path):
    out = tmp_path / method
    assert video_cli.main(["train", "--method", method, *SIM, *SHORT, "--iterations", "3", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["aggregator"] == "topk_mean" and 0 <= metrics["average_mAP"] <= 1 and metrics["num_videos"] == 6
    results = json.loads((out / "detections.json").read_text())["results"]
    assert results and all(d["segment"][0] < d["segment"][1] for rows in results.values() for d in rows)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["model"]["method"] == method and config["data"]["streams"] == "two"
    assert config["train"]["lr"] == 5e-5 and config["inference"]["soft_sigma"] == 0.3


@pytest.mark.parametrize("method", ["co2net", "delu"])
def test_train_with_maa_inside(method, tmp_path):
    out = tmp_path / method
    argv = ["train", "--method", method, "--aggregator", "maa", *SIM, *SHORT, "--iterations", "2", "--no-eval",
            "--out", str(out)]
    assert video_cli.main(argv) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["model"]["aggregator"] == "maa"
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert any(key.startswith("pool.") for key in state["model"]) and state["iteration"] == 2


@pytest.mark.parametrize("method", ["co2net", "delu"])
def test_one_stream_is_refused(method, tmp_path, capsys):
    from test_video_custom_data import write_custom

    out = tmp_path / "run"
    assert video_cli.main(["train", "--method", method, *SIM, "--streams", "joint", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"wsl-video train: error: method '{method}' needs separate RGB and flow "
                                       "streams (data.streams: two), got 'joint'\n")
    root = write_custom(tmp_path / "rgb", streams=("rgb",))
    argv = ["train", "--method", method, "--dataset", "custom", "--data-root", str(root), "--device", "cpu",
            "--quiet", "--out", str(out)]
    assert video_cli.main(argv) == 2
    assert capsys.readouterr().err == (f"wsl-video train: error: method '{method}' needs RGB and flow features "
                                       "(data.streams: two); custom has RGB features only\n")
    assert not out.exists()
