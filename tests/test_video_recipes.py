"""The W-TALC and BaS-Net recipes: losses against loop implementations of the papers' formulas, the batch hook
(pairs, crops, masks, MAAN's draw unchanged), end-to-end training through ``wsl-video train`` and bad input."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from wsl_video import cli as video_cli
from wsl_video.config import RunConfig
from wsl_video.methods import Batch, get_method
from wsl_video.methods.basnet import BaSNetModel, basnet_loss, normalise_cas
from wsl_video.methods.wtalc import WTALCModel, crop_or_pad, similar_pairs, wtalc_detections

SIM = ["--dataset", "thumos14-sim", "--sim", "videos=6", "--sim", "feature_dim=8", "--device", "cpu", "--quiet"]


def resolved(method: str, **train) -> RunConfig:
    config = RunConfig()
    config.model.method = method
    for key, value in train.items():
        setattr(config.train, key, value)
    return config.resolved()


# ------------------------------------------------------------------------------------------- oracles


def wtalc_oracle(embedded, logits, labels, lengths, pairs, lam=0.5):
    """W-TALC's loss written from the paper, one video and one class at a time."""
    batch, classes = labels.shape
    mil = 0.0
    for i in range(batch):
        n = int(lengths[i])
        k = math.ceil(n / 8)
        video = []
        for c in range(classes):
            values = sorted(logits[i, c, :n].tolist(), reverse=True)[:k]
            video.append(sum(values) / k)
        video = torch.tensor(video, dtype=torch.float64)
        log_p = video - torch.logsumexp(video, 0)
        target = labels[i].double() / labels[i].sum()
        mil -= float((target * log_p).sum()) / batch
    total, count = 0.0, 0
    for m in range(0, 2 * pairs, 2):
        n = m + 1
        for c in range(classes):
            if not (labels[m, c] and labels[n, c]):
                continue

            def high_low(v, c=c):
                t = int(lengths[v])
                a = torch.softmax(logits[v, c, :t].double(), 0)
                x = embedded[v, :, :t].double()
                return (x * a).sum(1), (x * (1 - a)).sum(1) / max(t - 1, 1)

            hm, lm = high_low(m)
            hn, ln = high_low(n)

            def dist(u, v):
                return 1 - float(u @ v) / (float(u.norm()) * float(v.norm()))

            total += 0.5 * max(0.0, dist(hm, hn) - dist(hm, ln) + 0.5)
            total += 0.5 * max(0.0, dist(hm, hn) - dist(lm, hn) + 0.5)
            count += 1
    casl = total / count if count else 0.0
    return lam * mil + (1 - lam) * casl


def basnet_oracle(base_logits, supp_logits, attention, labels, alpha=1e-4):
    """BaS-Net's loss from the paper: two BCEs on the softmax scores with the background class, L1 of the attention."""
    batch, classes = labels.shape

    def bce(scores, targets):
        total = 0.0
        for i in range(batch):
            for c in range(classes + 1):
                p, y = float(scores[i, c]), float(targets[i][c])
                total -= y * math.log(p) + (1 - y) * math.log(1 - p)
        return total / (batch * (classes + 1))

    base_targets, supp_targets = [], []
    for i in range(batch):
        row = [float(v) for v in labels[i]]
        base = row + [1.0]
        base_targets.append([v / sum(base) for v in base])
        supp = row + [0.0]
        supp_targets.append([v / sum(supp) if sum(supp) else 0.0 for v in supp])
    norm = sum(float(attention[i].abs().sum()) for i in range(batch)) / batch
    return (bce(torch.softmax(base_logits.double(), 1), base_targets)
            + bce(torch.softmax(supp_logits.double(), 1), supp_targets) + alpha * norm)


# ------------------------------------------------------------------------------------------- losses


def test_wtalc_loss_matches_the_papers_formulas():
    torch.manual_seed(0)
    config = resolved("wtalc", batch_size=8)
    method = get_method("wtalc")
    model = WTALCModel(12, 5).eval()
    lengths = torch.tensor([20, 13, 9, 20, 17, 5, 11, 20])
    mask = torch.arange(20).unsqueeze(0) < lengths.unsqueeze(1)
    features = {"joint": torch.randn(8, 20, 12) * mask.unsqueeze(2)}
    labels = torch.zeros(8, 5)
    for row, classes in enumerate([(0,), (0, 2), (1,), (1,), (3, 4), (4,), (2,), (0,)]):
        labels[row, list(classes)] = 1
    outputs = model(features, mask)
    loss = method.loss(outputs, labels, config)
    expected = wtalc_oracle(outputs.embedded.detach(), outputs.logits.detach(), labels, lengths, similar_pairs(8))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert similar_pairs(8) == 3 and similar_pairs(10) == 3 and similar_pairs(4) == 2


def test_basnet_loss_matches_the_papers_formulas():
    torch.manual_seed(0)
    model = BaSNetModel(6, 4).eval()
    features = {"joint": torch.randn(3, 16, 6)}
    labels = torch.tensor([[1.0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]])  # the last one: background only
    outputs = model(features)
    expected = basnet_oracle(outputs.base_logits.detach(), outputs.supp_logits.detach(),
                             outputs.attention.detach(), labels)
    assert basnet_loss(outputs, labels).item() == pytest.approx(expected, rel=1e-5)
    assert outputs.base_logits.shape == (3, 5) and outputs.attention.shape == (3, 16)
    assert ((outputs.attention > 0) & (outputs.attention < 1)).all()


def test_basnet_branches_share_the_classifier():
    torch.manual_seed(0)
    model = BaSNetModel(6, 4).eval()
    x = torch.randn(2, 10, 6)
    out = model({"joint": x})
    weighted = x.transpose(1, 2) * out.attention.unsqueeze(1)
    assert torch.allclose(out.cas_base, model.classifier(x.transpose(1, 2)), atol=1e-6)
    assert torch.allclose(out.cas_supp, model.classifier(weighted), atol=1e-6)


@pytest.mark.parametrize("method, model", [("wtalc", WTALCModel), ("basnet", BaSNetModel)])
def test_topk_pooling_is_the_original(method, model):
    torch.manual_seed(0)
    net = model(6, 3).eval()
    lengths = torch.tensor([16, 9])
    mask = torch.arange(16).unsqueeze(0) < lengths.unsqueeze(1)
    out = net({"joint": torch.randn(2, 16, 6)}, mask)
    cas = out.logits if method == "wtalc" else out.cas_supp
    pooled = out.video_logits if method == "wtalc" else out.supp_logits
    for i, n in enumerate(lengths.tolist()):
        k = math.ceil(n / 8)
        top = cas[i, :, :n].sort(dim=1, descending=True).values[:, :k].mean(dim=1)
        assert torch.allclose(pooled[i], top, atol=1e-6)


def test_basnet_cas_normalisation():
    cas = torch.tensor([[[1.0, -2.0], [3.0, -1.0], [2.0, -3.0], [9.0, 9.0]]])  # (1, T=4, 2); the last is padding
    mask = torch.tensor([[True, True, True, False]])
    basnet = normalise_cas(cas, mask)[0]  # (c - relu(min)) / (relu(max) - relu(min)), 1 for a non-positive spread
    assert torch.allclose(basnet[:, 0], torch.tensor([0.0, 1.0, 0.5, 0.0]))
    assert torch.allclose(basnet[:, 1], torch.tensor([-2.0, -1.0, -3.0, 0.0]))


@pytest.mark.parametrize("method, aggregator, lr, steps", [("wtalc", "topk_mean", 1e-2, 30), ("wtalc", "maa", 1e-2, 30),
                                                            ("basnet", "topk_mean", 1e-4, 8)])
def test_loss_decreases_on_a_fixed_batch(method, aggregator, lr, steps):
    torch.manual_seed(0)
    config = RunConfig()
    config.model.method, config.model.aggregator = method, aggregator
    config.train.batch_size = 4
    config = config.resolved()
    recipe = get_method(method)
    model = recipe.build_model(config, {"joint": 8}, 3)
    generator = torch.Generator().manual_seed(1)
    lengths = torch.tensor([12, 12, 9, 12])
    mask = torch.arange(12).unsqueeze(0) < lengths.unsqueeze(1)
    labels = torch.tensor([[1.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 1]])
    features = {"joint": torch.rand(4, 12, 8, generator=generator) * mask.unsqueeze(2)}

    def evaluate():
        model.eval()
        with torch.no_grad():
            value = float(recipe.loss(model(features, mask), labels, config))
        model.train()
        return value

    before = evaluate()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = recipe.loss(model(features, mask), labels, config)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = evaluate()
    assert math.isfinite(before) and after < 0.9 * before, (before, after)


def test_wtalc_detections_follow_the_authors_rules():
    # T = 16: k = 2; class 0: top-2 mean 2.5 > 0; class 1: all negative (not localized)
    cas = np.full((16, 2), -1.0)
    cas[2:5, 0] = [1.0, 3.0, 2.0]  # range [-1, 3]: cut at 1 -> snippets 3-4 (> 1, strictly)
    cas[9, 0] = 2.0  # a single snippet above the cut: too short
    cas[12:15, 0] = [1.5, 1.2, 1.1]  # snippets 12-14
    rows = wtalc_detections(cas, 0.5)
    assert rows == [(0, 1.5, 2.5, pytest.approx(3.0 + 0.7 * 2.5)), (0, 6.0, 7.5, pytest.approx(1.5 + 0.7 * 2.5))]
    assert wtalc_detections(cas, 0.5, class_threshold=0.95) == []  # sigmoid(2.5) < 0.95
    assert wtalc_detections(cas, 0.5, duration=7.0)[1][2] == 7.0  # clipped to the video
    assert len(wtalc_detections(cas, 0.5, max_detections=1)) == 1
    assert wtalc_detections(cas, 0.5, fractions=(0.5, 0.5), nms="hard", nms_iou=0.5) == rows  # duplicates removed


def test_wtalc_evaluation_uses_its_own_rules(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--method", "wtalc", *SIM, "--batch-size", "4", "--num-segments", "16", "--iterations", "2",
            "--out", str(out)]
    assert video_cli.main(argv) == 0
    from wsl_video.data.opening import open_data
    from wsl_video.inference import predict_video
    from wsl_video.run import load_run

    config, model, _ = load_run(out)
    dataset = open_data(config, "test")
    results = json.loads((out / "detections.json").read_text())["results"]
    for index, video in enumerate(dataset.videos):
        prediction = predict_video(model, dataset.features(index), config.inference)
        expected = wtalc_detections(prediction.cas, video.seconds_per_snippet, duration=video.duration)
        assert [(dataset.classes[c], pytest.approx([s, e]), pytest.approx(score, abs=1e-6))
                for c, s, e, score in expected] == [(d["label"], d["segment"], d["score"]) for d in results[video.name]]


# ------------------------------------------------------------------------------------------- batches


def _videos(lengths):
    """video i -> {"joint": ndarray[T_i, 3]}, snippet t = (i, t, 1), so that crops can be read back."""
    return {i: {"joint": np.stack([np.full(n, i, np.float32), np.arange(n, dtype=np.float32),
                                   np.ones(n, np.float32)], axis=1)}
            for i, n in enumerate(lengths)}


def test_wtalc_batches_pair_videos_sharing_a_class_and_crop_long_ones():
    lengths = [30, 5, 12, 40, 8, 25, 31, 9, 14, 22, 7, 50]
    videos = _videos(lengths)
    labels = np.zeros((12, 4), np.float32)
    for i in range(12):
        labels[i, i % 4] = 1
    labels[3, 2] = 1
    labels[11] = 0  # background only: never drawn as a random video
    config = resolved("wtalc", batch_size=10, num_segments=20)
    method = get_method("wtalc")
    rng = np.random.default_rng(0)
    for _ in range(30):
        batch = method.sample_batch(lambda i: videos[i], labels, ("joint",), config, rng, "cpu")
        assert isinstance(batch, Batch) and len(batch.videos) == 10
        for first in range(0, 6, 2):
            a, b = batch.videos[first], batch.videos[first + 1]
            assert (labels[a] * labels[b]).any(), (a, b)
        assert 11 not in batch.videos[6:].tolist()
        x, mask = batch.features["joint"].numpy(), batch.mask.numpy()
        assert x.shape[1] == max(min(lengths[v], 20) for v in batch.videos)
        for row, video in enumerate(batch.videos):
            n = min(lengths[video], 20)
            assert mask[row].sum() == n and mask[row, :n].all()
            assert (x[row, :n, 0] == video).all()
            start = x[row, 0, 1]
            assert np.array_equal(x[row, :n, 1], start + np.arange(n))  # a contiguous crop
            assert 0 <= start <= lengths[video] - n
            assert (x[row, n:] == 0).all()  # zero padding


def test_crop_or_pad_draws_every_start():
    videos = [{"joint": np.arange(10, dtype=np.float32).reshape(10, 1)}]
    rng = np.random.default_rng(0)
    starts = {int(crop_or_pad(videos, ("joint",), 7, rng, "cpu")[0]["joint"][0, 0, 0]) for _ in range(200)}
    assert starts == {0, 1, 2, 3}


def test_default_batches_are_maans_draw():
    from wsl_video.data import sample_snippets

    lengths = [30, 5, 12, 40]
    videos = {i: {"rgb": np.random.default_rng(i).random((n, 3)), "flow": np.random.default_rng(9 + i).random((n, 2))}
              for i, n in enumerate(lengths)}
    config = resolved("maan", batch_size=3, num_segments=8)
    batch = get_method("maan").sample_batch(lambda i: videos[i], np.ones((4, 2)), ("rgb", "flow"), config,
                                            np.random.default_rng(5), "cpu")
    rng = np.random.default_rng(5)  # the draw the training loop made before the hook existed
    chosen = rng.choice(4, size=3, replace=False)
    assert batch.mask is None and np.array_equal(batch.videos, chosen)
    for row, video in enumerate(chosen):
        snippets = sample_snippets(lengths[video], 8, rng)
        for name in ("rgb", "flow"):
            assert np.allclose(batch.features[name][row].numpy(), videos[video][name][snippets])


def test_basnet_uses_750_sampled_snippets():
    config = resolved("basnet")
    assert (config.train.num_segments, config.train.batch_size, config.train.lr, config.train.weight_decay) == (
        750, 16, 1e-4, 5e-4)
    assert config.data.streams == "joint" and config.model.aggregator == "topk_mean"
    videos = {0: {"joint": np.zeros((1000, 2), np.float32)}, 1: {"joint": np.zeros((300, 2), np.float32)}}
    batch = get_method("basnet").sample_batch(lambda i: videos[i], np.ones((2, 1)), ("joint",), config,
                                              np.random.default_rng(0), "cpu")
    assert batch.mask is None and batch.features["joint"].shape == (16, 750, 2)


def test_method_defaults_and_user_settings():
    wtalc = resolved("wtalc")
    assert (wtalc.train.batch_size, wtalc.train.num_segments, wtalc.train.lr, wtalc.train.weight_decay) == (
        10, 750, 1e-4, 5e-4)
    assert (wtalc.inference.video_scores, wtalc.inference.class_threshold, wtalc.inference.cas_thresholds,
            wtalc.inference.nms) == ("full", 0.5, [0.5], "none")
    assert get_method("wtalc").localize.__func__ is not get_method("maan").localize.__func__
    maan = resolved("maan")
    assert (maan.data.streams, maan.model.aggregator, maan.train.batch_size, maan.train.num_segments, maan.train.lr,
            maan.train.weight_decay, maan.inference.video_scores, maan.inference.nms) == (
        "two", "maa", 16, 20, 5e-4, 0.0, "sampled", "hard")
    assert resolved("wtalc", lr=3e-3, batch_size=4).train.lr == 3e-3  # a setting beats the method's default


# ------------------------------------------------------------------------------------------- the command


@pytest.mark.parametrize("method", ["wtalc", "basnet", "co2net", "delu"])
def test_every_aggregator_pools_the_cas(method):
    """Every registered aggregator stands in a method's pooling of CAS logits into video logits: the loss and every
    gradient are finite after one backward pass. linear_softmax, made for probabilities, is told so (logits=True):
    it pools the sigmoids of the CAS and returns the logit of the pooled probability."""
    import wsl

    recipe = get_method(method)
    dims = {"joint": 8} if method in ("wtalc", "basnet") else {"rgb": 4, "flow": 4}
    equal = method in ("co2net", "delu")  # their batches are sampled to equal lengths: no mask
    lengths = torch.tensor([12, 12, 12, 12, 12, 12] if equal else [12, 12, 9, 12, 10, 12])
    mask = torch.arange(12).unsqueeze(0) < lengths.unsqueeze(1)
    labels = torch.tensor([[1.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [0, 0, 1]])
    generator = torch.Generator().manual_seed(3)
    features = {name: 4 * torch.randn(6, 12, dim, generator=generator) * mask.unsqueeze(2)
                for name, dim in dims.items()}
    for aggregator in wsl.list_aggregators():
        torch.manual_seed(0)
        config = RunConfig()
        config.model.method, config.model.aggregator = method, aggregator
        config = config.resolved()
        model = recipe.build_model(config, dims, 3)
        out = model(features, None if equal else mask)
        loss = recipe.loss(out, labels, config)
        loss.backward()
        assert torch.isfinite(loss), (aggregator, loss)
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None), aggregator
        if aggregator == "linear_softmax":
            assert model.pool.logits
            if method == "wtalc":
                cas, pooled = out.logits, out.video_logits
            elif method == "basnet":
                cas, pooled = out.cas_supp, out.supp_logits
            else:
                cas, pooled = out.cas, out.video_logits
            for i, n in enumerate(lengths.tolist()):
                p = torch.sigmoid(cas[i, :, :n].double())
                expected = torch.logit((p * p).sum(dim=1) / p.sum(dim=1))
                torch.testing.assert_close(pooled[i].double(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method, extra", [
    ("wtalc", ["--batch-size", "4", "--num-segments", "64", "--iterations", "4"]),
    ("basnet", ["--batch-size", "2", "--num-segments", "24", "--iterations", "2"]),
])
def test_train_end_to_end(method, extra, tmp_path):
    out = tmp_path / method
    assert video_cli.main(["train", "--method", method, *SIM, *extra, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["aggregator"] == "topk_mean" and 0 <= metrics["average_mAP"] <= 1 and metrics["num_videos"] == 6
    results = json.loads((out / "detections.json").read_text())["results"]
    assert results and all(d["segment"][0] < d["segment"][1] for rows in results.values() for d in rows)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["model"]["method"] == method and config["data"]["streams"] == "joint"
    assert config["train"]["lr"] == 1e-4 and config["train"]["weight_decay"] == 5e-4


@pytest.mark.parametrize("method", ["wtalc", "basnet"])
def test_train_with_maa_inside(method, tmp_path):
    out = tmp_path / method
    argv = ["train", "--method", method, "--aggregator", "maa", *SIM, "--batch-size", "2", "--num-segments", "24",
            "--iterations", "2", "--no-eval", "--out", str(out)]
    assert video_cli.main(argv) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["model"]["aggregator"] == "maa"
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert any(key.startswith("pool.") for key in state["model"]) and state["iteration"] == 2


@pytest.mark.parametrize("argv, message", [
    (["--method", "wtalc", "--streams", "two"],
     "method 'wtalc' reads the joint RGB+flow vector (data.streams: joint), got 'two'"),
    (["--method", "basnet", "--streams", "two"],
     "method 'basnet' reads the joint RGB+flow vector (data.streams: joint), got 'two'"),
    (["--method", "wtalc", "--batch-size", "1"], "method 'wtalc' needs train.batch_size >= 2 (pairs of videos), got 1"),
])
def test_bad_settings(argv, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert video_cli.main(["train", *argv, *SIM, "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"wsl-video train: error: {message}\n"
    assert not out.exists()


@pytest.mark.parametrize("method", ["wtalc", "basnet"])
def test_rgb_only_features_are_refused(method, tmp_path, capsys):
    from test_video_custom_data import write_custom

    root = write_custom(tmp_path / "rgb", streams=("rgb",))
    out = tmp_path / "run"
    argv = ["train", "--method", method, "--dataset", "custom", "--data-root", str(root), "--device", "cpu",
            "--quiet", "--out", str(out)]
    assert video_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err == (f"wsl-video train: error: method '{method}' needs RGB and flow features (the joint vector); "
                   "custom has RGB features only\n")
    assert not out.exists()


def test_wtalc_resumes_exactly(tmp_path):
    argv = ["train", "--method", "wtalc", *SIM, "--batch-size", "4", "--num-segments", "16", "--no-eval"]
    assert video_cli.main([*argv, "--iterations", "4", "--out", str(tmp_path / "straight")]) == 0
    assert video_cli.main([*argv, "--iterations", "2", "--out", str(tmp_path / "resumed")]) == 0
    assert video_cli.main([*argv, "--iterations", "4", "--resume", "--out", str(tmp_path / "resumed")]) == 0
    straight = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)["model"]
    resumed = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["model"]
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[key], resumed[key]) for key in straight)


def test_delu_resumes_only_with_the_iterations_it_started_with(tmp_path, capsys):
    """DELU's curriculum runs over the whole run, so extending a finished run is refused in one line."""
    out = tmp_path / "run"
    argv = ["train", "--method", "delu", *SIM, "--batch-size", "4", "--num-segments", "16", "--no-eval",
            "--out", str(out)]
    assert video_cli.main([*argv, "--iterations", "2"]) == 0
    before = {name: (out / name).read_bytes() for name in ("checkpoint.pt", "config.yaml", "train.log")}
    capsys.readouterr()
    assert video_cli.main([*argv, "--iterations", "4", "--resume"]) == 2
    assert capsys.readouterr().err == (f"wsl-video train: error: cannot resume {out}: method 'delu' schedules its "
                                       "loss over the run's 2 iterations; resume with --iterations 2\n")
    assert {name: (out / name).read_bytes() for name in before} == before  # the run is left as it was
    assert video_cli.main([*argv, "--iterations", "2", "--resume"]) == 0


# ------------------------------------------------------------------------------------------- one-pass inference


@pytest.mark.parametrize("method", ["wtalc", "basnet", "co2net"])
def test_one_pass_predictions_equal_the_separate_calls(method):
    from wsl_video.inference import predict_video
    from wsl_video.methods.co2net import CO2NetModel

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    if method == "co2net":
        model = CO2NetModel(6, 6, 3).eval()
        features = {"rgb": rng.random((13, 6), dtype=np.float32), "flow": rng.random((13, 6), dtype=np.float32)}
    else:
        model = (WTALCModel(12, 3) if method == "wtalc" else BaSNetModel(12, 3)).eval()
        features = {"joint": rng.random((13, 12), dtype=np.float32)}
    config = resolved(method).inference
    fast = predict_video(model, features, config)
    separate = SimpleNamespace(stream_names=model.stream_names, streams=model.streams, parameters=model.parameters,
                               cas=model.cas, probabilities=model.probabilities)  # no one-pass method
    if hasattr(model, "snippet_attention"):
        separate.snippet_attention = model.snippet_attention
    slow = predict_video(separate, features, config)
    assert np.array_equal(fast.scores, slow.scores) and np.array_equal(fast.cas, slow.cas)
    assert (fast.attention is None) == (slow.attention is None) == (method != "co2net")
    if method == "co2net":
        assert np.array_equal(fast.attention, slow.attention)
