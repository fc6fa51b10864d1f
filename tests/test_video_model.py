import numpy as np
import pytest
import torch

import wsl
from wsl_video.config import InferenceConfig
from wsl_video.inference import kept_classes, predict_video, shifted_uniform_snippets
from wsl_video.model import StreamClassifier, TemporalLocalizer, weak_label_loss

AGGREGATORS = ["maa", "weighted_sum", "dropout", "norm", "softmax_norm", "mean", "max", "topk_mean"]


def _features(batch=3, length=11, dim=6, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, length, dim, generator=generator, dtype=dtype)


@pytest.mark.parametrize("aggregator", AGGREGATORS)
def test_smoke(aggregator):
    torch.manual_seed(0)
    model = StreamClassifier(aggregator, channels=6, num_classes=4).eval()
    x = _features()
    out = model(x)
    assert out.logits.shape == (3, 4)
    uses_attention = model.aggregator.uses_attention
    assert (out.attention is not None) == uses_attention
    if uses_attention:
        assert out.attention.shape == (3, 11)
    cas = model.cas(x)
    assert cas.shape == (3, 11, 4)
    assert torch.isfinite(cas).all() and (cas >= 0).all() and (cas <= 1).all()


@pytest.mark.parametrize("aggregator", ["maa", "weighted_sum", "mean"])
def test_cas_oracle(aggregator):
    """CAS = a_t * sigmoid(w_c . x_t + b_c) (Eq. 14 / Eq. 12), plain sigmoid without attention."""
    torch.manual_seed(1)
    model = StreamClassifier(aggregator, channels=6, num_classes=4).eval()
    x = _features(batch=2, length=9)
    with torch.no_grad():
        cas = model.cas(x)
        logits = x @ model.classifier.weight.T + model.classifier.bias  # (B, T, K)
        expected = torch.sigmoid(logits)
        attention = model.aggregator(x.transpose(1, 2)).attention
        if attention is not None:
            expected = expected * attention[..., None]
    torch.testing.assert_close(cas, expected)


@pytest.mark.parametrize("aggregator", ["maa", "weighted_sum", "norm", "softmax_norm", "mean"])
def test_cas_permutation_equivariance(aggregator):
    torch.manual_seed(2)
    model = StreamClassifier(aggregator, channels=6, num_classes=3).eval()
    x = _features(batch=2, length=10, dtype=torch.float64)
    model = model.double()
    perm = torch.randperm(10)
    with torch.no_grad():
        torch.testing.assert_close(model.cas(x[:, perm]), model.cas(x)[:, perm])
        # video-level logits do not depend on snippet order
        torch.testing.assert_close(model(x[:, perm]).logits, model(x).logits)


def test_maa_cas_is_local():
    """With MAA, the CAS of a snippet depends on that snippet only (p_t comes from x_t alone)."""
    torch.manual_seed(3)
    model = StreamClassifier("maa", channels=5, num_classes=2).eval()
    x = _features(batch=1, length=8, dim=5)
    y = x.clone()
    y[:, 4:] = torch.rand(1, 4, 5)
    with torch.no_grad():
        torch.testing.assert_close(model.cas(x)[:, :4], model.cas(y)[:, :4])


def test_module_fusion():
    torch.manual_seed(4)
    model = TemporalLocalizer("maa", {"rgb": 6, "flow": 4}, num_classes=3).eval()
    features = {"rgb": _features(dim=6, seed=1), "flow": _features(dim=4, seed=2)}
    with torch.no_grad():
        outputs = model(features)
        expected = 0.5 * torch.sigmoid(outputs["rgb"].logits) + 0.5 * torch.sigmoid(outputs["flow"].logits)
        torch.testing.assert_close(model.probabilities(features), expected)
        streams = model.streams
        cas = 0.5 * streams["rgb"].cas(features["rgb"]) + 0.5 * streams["flow"].cas(features["flow"])
        torch.testing.assert_close(model.cas(features), cas)
    assert model.uses_attention


def test_exception():
    with pytest.raises(ValueError, match="nope"):
        StreamClassifier("nope", channels=4, num_classes=2)
    with pytest.raises(ValueError, match="stream_weights"):
        TemporalLocalizer("maa", {"rgb": 4, "flow": 4}, 2, stream_weights=[1.0])
    with pytest.raises(ValueError):
        TemporalLocalizer("maa", {}, 2)


def test_loss_oracle():
    torch.manual_seed(5)
    model = TemporalLocalizer("weighted_sum", {"rgb": 6, "flow": 6}, num_classes=4)
    features = {"rgb": _features(seed=1), "flow": _features(seed=2)}
    labels = torch.tensor([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0]], dtype=torch.float32)
    outputs = model(features)
    expected = 0.0
    for out in outputs.values():
        p = torch.sigmoid(out.logits)
        expected = expected - (labels * p.log() + (1 - labels) * (1 - p).log()).sum() / 3
    torch.testing.assert_close(weak_label_loss(outputs, labels), expected)
    sparsity = sum(out.attention.sum() / 3 for out in outputs.values())
    torch.testing.assert_close(weak_label_loss(outputs, labels, 0.5), expected + 0.5 * sparsity)


def test_gradcheck():
    torch.manual_seed(6)
    model = StreamClassifier("maa", channels=3, num_classes=2).double()
    x = _features(batch=2, length=5, dim=3, dtype=torch.float64).requires_grad_(True)
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)

    def loss(features):
        return weak_label_loss({"s": model(features)}, labels)

    assert torch.autograd.gradcheck(loss, (x,))


def test_shifted_uniform_snippets():
    index = shifted_uniform_snippets(100, 20, 5)
    assert index.shape == (5, 20)
    segment = np.arange(20) * 5
    # one snippet inside each segment, each sample at a different offset
    assert ((index >= segment) & (index < segment + 5)).all()
    assert len({tuple(row) for row in index}) == 5
    short = shifted_uniform_snippets(7, 20, 3)
    assert short.min() >= 0 and short.max() <= 6
    assert (np.diff(short, axis=1) >= 0).all()
    with pytest.raises(ValueError):
        shifted_uniform_snippets(0, 20, 1)


def test_kept_classes():
    np.testing.assert_array_equal(kept_classes(np.array([0.05, 0.3, 0.1, 0.09])), [1, 2])
    np.testing.assert_array_equal(kept_classes(np.array([0.05, 0.01, 0.08])), [2])  # none passes: top class


def _model(aggregator, dim=6, classes=3, seed=7):
    torch.manual_seed(seed)
    return TemporalLocalizer(aggregator, {"rgb": dim, "flow": dim}, classes).eval()


def test_predict_video_sampled_footing():
    """Sampled video scores equal the model on the uniform T-snippet sample used in training."""
    model = _model("maa")
    rng = np.random.default_rng(0)
    features = {name: rng.random((57, 6), dtype=np.float32) for name in ("rgb", "flow")}
    config = InferenceConfig(score_samples=1)
    prediction = predict_video(model, features, config, num_segments=20)
    index = shifted_uniform_snippets(57, 20, 1)[0]
    with torch.no_grad():
        expected = model.probabilities({k: torch.from_numpy(v[index])[None] for k, v in features.items()})[0]
        cas = model.cas({k: torch.from_numpy(v)[None] for k, v in features.items()})[0]
    np.testing.assert_allclose(prediction.scores, expected.numpy(), rtol=1e-6)
    np.testing.assert_allclose(prediction.cas, cas.numpy(), rtol=1e-6)
    full = predict_video(model, features, InferenceConfig(video_scores="full"), num_segments=20)
    with torch.no_grad():
        expected_full = model.probabilities({k: torch.from_numpy(v)[None] for k, v in features.items()})[0]
    np.testing.assert_allclose(full.scores, expected_full.numpy(), rtol=1e-6)


def test_predict_video_length_invariance():
    """Stretching a video (each snippet repeated) leaves sampled scores unchanged, even for the
    unnormalised weighted sum, whose scores on all snippets grow with the length."""
    model = _model("weighted_sum")
    rng = np.random.default_rng(1)
    features = {name: rng.random((30, 6), dtype=np.float32) for name in ("rgb", "flow")}
    stretched = {name: np.repeat(f, 8, axis=0) for name, f in features.items()}
    config = InferenceConfig(score_samples=3)
    short, long = predict_video(model, features, config), predict_video(model, stretched, config)
    np.testing.assert_allclose(short.scores, long.scores, rtol=1e-6)
    full = InferenceConfig(video_scores="full")
    with torch.no_grad():
        stream = model.streams["rgb"]
        pooled_short = stream.aggregator(torch.from_numpy(features["rgb"]).T[None]).pooled
        pooled_long = stream.aggregator(torch.from_numpy(stretched["rgb"]).T[None]).pooled
    torch.testing.assert_close(pooled_long, 8 * pooled_short, rtol=1e-5, atol=1e-5)
    full_short, full_long = predict_video(model, features, full), predict_video(model, stretched, full)
    assert not np.allclose(full_short.scores, full_long.scores)


def test_predict_video_exception():
    model = _model("maa")
    with pytest.raises(ValueError, match="different numbers of snippets"):
        predict_video(model, {"rgb": np.zeros((5, 6), np.float32), "flow": np.zeros((6, 6), np.float32)},
                      InferenceConfig())


def test_registry_names_exist():
    names = set(wsl.list_aggregators())
    assert {"maa", "weighted_sum", "dropout", "norm", "softmax_norm"} <= names
