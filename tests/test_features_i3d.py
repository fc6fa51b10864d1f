"""I3D: shapes, strict loading of the PyTorch port's checkpoint format, and a slow independent oracle."""

import pytest
import torch
import torch.nn.functional as F

from wsl_video.features.i3d import I3D, load_i3d, same_padding

# ---------------------------------------------------------------- an independent oracle
# Written from the published architecture, not from the module: every layer is an explicit pad + conv +
# batch-norm formula read straight from the state dict; channel counts come from the weight shapes.
_SEQUENCE = [
    ("unit", "Conv3d_1a_7x7", 2), ("pool", (1, 3, 3), (1, 2, 2)), ("unit", "Conv3d_2b_1x1", 1),
    ("unit", "Conv3d_2c_3x3", 1), ("pool", (1, 3, 3), (1, 2, 2)), ("mixed", "Mixed_3b"), ("mixed", "Mixed_3c"),
    ("pool", (3, 3, 3), (2, 2, 2)), ("mixed", "Mixed_4b"), ("mixed", "Mixed_4c"), ("mixed", "Mixed_4d"),
    ("mixed", "Mixed_4e"), ("mixed", "Mixed_4f"), ("pool", (2, 2, 2), (2, 2, 2)), ("mixed", "Mixed_5b"),
    ("mixed", "Mixed_5c"),
]


def _pad_amounts(sizes, kernel, stride):
    """The port's rule: k - s if the size divides by s, else k - (size mod s); the odd pixel after."""
    out = []
    for size, k, s in zip(sizes, kernel, stride):
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        out.append((total // 2, total - total // 2))
    return out


def _explicit_pad(x, kernel, stride):
    (t0, t1), (h0, h1), (w0, w1) = _pad_amounts(x.shape[2:], kernel, stride)
    return F.pad(x, (w0, w1, h0, h1, t0, t1), value=0.0)


def _oracle_unit(state, prefix, x, stride=1):
    weight = state[f"{prefix}.conv3d.weight"].to(x.dtype)
    kernel = weight.shape[2:]
    y = F.conv3d(_explicit_pad(x, kernel, (stride,) * 3), weight, stride=stride)
    shape = (1, -1, 1, 1, 1)
    mean, var = state[f"{prefix}.bn.running_mean"].to(x.dtype), state[f"{prefix}.bn.running_var"].to(x.dtype)
    gamma, beta = state[f"{prefix}.bn.weight"].to(x.dtype), state[f"{prefix}.bn.bias"].to(x.dtype)
    y = (y - mean.view(shape)) / torch.sqrt(var.view(shape) + 1e-3) * gamma.view(shape) + beta.view(shape)
    return torch.where(y > 0, y, torch.zeros_like(y))


def _oracle_pool(x, kernel, stride):
    return F.max_pool3d(_explicit_pad(x, kernel, stride), kernel, stride)


def oracle_features(state, clips):
    x = clips
    for step in _SEQUENCE:
        if step[0] == "unit":
            x = _oracle_unit(state, step[1], x, step[2])
        elif step[0] == "pool":
            x = _oracle_pool(x, step[1], step[2])
        else:
            name = step[1]
            x = torch.cat([
                _oracle_unit(state, f"{name}.b0", x),
                _oracle_unit(state, f"{name}.b1b", _oracle_unit(state, f"{name}.b1a", x)),
                _oracle_unit(state, f"{name}.b2b", _oracle_unit(state, f"{name}.b2a", x)),
                _oracle_unit(state, f"{name}.b3b", _oracle_pool(x, (3, 3, 3), (1, 1, 1))),
            ], dim=1)
    return x.mean(dim=(2, 3, 4)), x


def realistic_state(in_channels=3, num_classes=400, seed=0):
    """A state dict in the port's format with He-scaled weights and non-trivial batch-norm statistics,
    so activations stay of order one through the 60 layers (plain random init makes them vanish)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in I3D(in_channels, num_classes).state_dict().items():
        shape = value.shape
        if key.endswith("conv3d.weight"):
            fan_in = shape[1] * shape[2] * shape[3] * shape[4]
            state[key] = torch.randn(shape, generator=generator) * (2.0 / fan_in) ** 0.5
        elif key.endswith("running_mean") or key.endswith("conv3d.bias"):
            state[key] = torch.randn(shape, generator=generator) * 0.1
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) * 1.5 + 0.5
        elif key.endswith("bn.weight"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        elif key.endswith("bn.bias"):
            state[key] = torch.randn(shape, generator=generator) * 0.1
        else:  # num_batches_tracked
            state[key] = torch.tensor(100)
    return state


@pytest.fixture(scope="module")
def rgb_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("i3d") / "rgb_imagenet.pt"
    torch.save(realistic_state(3), path)
    return path


# ---------------------------------------------------------------- tests
def test_same_padding_matches_tensorflow():
    # TF: out = ceil(in / s), total = max((out - 1) s + k - in, 0), the extra pixel after
    assert same_padding(16, 7, 2) == (2, 3)
    assert same_padding(224, 7, 2) == (2, 3)
    assert same_padding(112, 3, 2) == (0, 1)
    assert same_padding(8, 3, 2) == (0, 1)
    assert same_padding(7, 3, 2) == (1, 1)
    assert same_padding(2, 2, 2) == (0, 0)
    assert same_padding(5, 1, 1) == (0, 0)
    for size in range(1, 40):
        for k in (1, 2, 3, 7):
            for s in (1, 2):
                assert same_padding(size, k, s) == _pad_amounts([size], [k], [s])[0]


def test_keys_and_channels_of_the_port():
    state = I3D(3).state_dict()
    # 3 stem convolutions + 9 Inception blocks x 6 convolutions, each weight + 4 batch-norm tensors; logits 2
    assert len([k for k in state if not k.endswith("num_batches_tracked")]) == (3 + 9 * 6) * 5 + 2
    for key in ("Conv3d_1a_7x7.conv3d.weight", "Conv3d_1a_7x7.bn.running_mean", "Mixed_3b.b0.conv3d.weight",
                "Mixed_3b.b1a.bn.weight", "Mixed_5c.b3b.bn.running_var", "logits.conv3d.weight", "logits.conv3d.bias"):
        assert key in state
    assert state["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert I3D(2).state_dict()["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 2, 7, 7, 7)
    assert state["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1)
    outs = {name: sum(state[f"{name}.{b}.conv3d.weight"].shape[0] for b in ("b0", "b1b", "b2b", "b3b"))
            for name in ("Mixed_3b", "Mixed_3c", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f",
                         "Mixed_5b", "Mixed_5c")}
    assert outs == {"Mixed_3b": 256, "Mixed_3c": 480, "Mixed_4b": 512, "Mixed_4c": 512, "Mixed_4d": 512,
                    "Mixed_4e": 528, "Mixed_4f": 832, "Mixed_5b": 832, "Mixed_5c": 1024}
    assert all(m.eps == 1e-3 for m in I3D(3).modules() if isinstance(m, torch.nn.BatchNorm3d))


def test_smoke_shapes():
    for modality, channels in (("rgb", 3), ("flow", 2)):
        model = load_i3d(modality)
        assert not model.training
        with torch.inference_mode():
            assert model(torch.zeros(2, channels, 2, 16, 16)).shape == (2, 1024)
            assert model.feature_map(torch.zeros(1, channels, 9, 33, 47)).shape == (1, 1024, 2, 2, 2)
            assert model.classify(torch.zeros(1, channels, 2, 16, 16)).shape == (1, 400)


def test_random_weights_are_reproducible():
    a, b = load_i3d("flow").state_dict(), load_i3d("flow").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_exception_inputs():
    model = load_i3d("rgb")
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        model(torch.zeros(1, 2, 4, 32, 32))
    with pytest.raises(ValueError, match="floating-point"):
        model(torch.zeros(1, 3, 4, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="modality"):
        load_i3d("depth")
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_i3d("rgb", "nowhere.pt")


def test_matches_independent_oracle_odd_sizes(rgb_file):
    """In float64, so that any difference is the architecture's, not round-off: odd T, H, W exercise the
    asymmetric "SAME" padding of every convolution and pool."""
    state = {k: v.double() for k, v in torch.load(rgb_file, weights_only=True).items()}
    model = load_i3d("rgb", rgb_file).double()
    clips = torch.rand(2, 3, 9, 37, 45, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1
    with torch.inference_mode():
        got = model(clips)
        expected, _ = oracle_features(state, clips)
    assert got.abs().mean() > 0.05  # activations of order one: the comparison means something
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10 * expected.abs().max().item())


def test_matches_oracle_full_clip_flow(tmp_path):
    """One standard clip, 16 x 224 x 224: Mixed_5c is 2 x 7 x 7, so the feature is the port's AvgPool3d([2, 7, 7])."""
    path = tmp_path / "flow_imagenet.pt"
    state = realistic_state(2, seed=3)
    torch.save(state, path)
    model = load_i3d("flow", path)
    clips = (torch.rand(1, 2, 16, 224, 224, generator=torch.Generator().manual_seed(2)) * 2 - 1)
    with torch.inference_mode():
        got = model(clips)
        expected, feature_map = oracle_features(state, clips)
        pooled = F.avg_pool3d(feature_map, kernel_size=(2, 7, 7), stride=1)
    assert feature_map.shape == (1, 1024, 2, 7, 7) and pooled.shape == (1, 1024, 1, 1, 1)
    assert got.shape == (1, 1024)
    scale = expected.abs().max().item()
    torch.testing.assert_close(got, pooled.flatten(1), rtol=1e-4, atol=1e-4 * scale)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * scale)


def test_loading_strict(tmp_path, rgb_file):
    state = torch.load(rgb_file, weights_only=True)
    model = load_i3d("rgb", rgb_file)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)

    missing = dict(state)
    del missing["Mixed_4c.b2b.bn.running_var"]
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match=r"missing keys 'Mixed_4c\.b2b\.bn\.running_var'") as info:
        load_i3d("rgb", tmp_path / "missing.pt")
    assert "\n" not in str(info.value) and "missing.pt" in str(info.value)

    unexpected = dict(state, **{"Mixed_6a.b0.conv3d.weight": torch.zeros(1)})
    torch.save(unexpected, tmp_path / "unexpected.pt")
    with pytest.raises(ValueError, match=r"unexpected keys 'Mixed_6a\.b0\.conv3d\.weight'"):
        load_i3d("rgb", tmp_path / "unexpected.pt")

    wrong = dict(state, **{"Mixed_3b.b0.conv3d.weight": torch.zeros(65, 192, 1, 1, 1)})
    torch.save(wrong, tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match=r"Mixed_3b\.b0\.conv3d\.weight' has shape \(65, 192, 1, 1, 1\)"):
        load_i3d("rgb", tmp_path / "wrong.pt")

    with pytest.raises(ValueError, match=r"3 input channels \(rgb\), not flow"):
        load_i3d("flow", rgb_file)

    nan = dict(state, **{"Conv3d_2b_1x1.bn.bias": torch.full((64,), float("nan"))})
    torch.save(nan, tmp_path / "nan.pt")
    with pytest.raises(ValueError, match="NaN"):
        load_i3d("rgb", tmp_path / "nan.pt")

    torch.save({"state_dict": state}, tmp_path / "wrapped.pt")
    with pytest.raises(ValueError, match="unexpected keys 'state_dict'"):
        load_i3d("rgb", tmp_path / "wrapped.pt")


def test_loading_old_checkpoints_and_other_classifiers(tmp_path):
    state = {k: v for k, v in realistic_state(3, num_classes=157).items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "rgb_charades.pt")
    model = load_i3d("rgb", tmp_path / "rgb_charades.pt")
    assert model.num_classes == 157
    with torch.inference_mode():
        assert model.classify(torch.zeros(1, 3, 4, 32, 32)).shape == (1, 157)


def test_refuses_code_in_checkpoint(tmp_path):
    import pickle

    class Payload:
        def __reduce__(self):
            return (print, ("ran",))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"Conv3d_1a_7x7.conv3d.weight": Payload()}, handle, protocol=2)
    with pytest.raises(ValueError, match="refused"):
        load_i3d("rgb", path)
