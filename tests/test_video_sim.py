"""thumos14-sim: the real THUMOS14 time line, deterministic I3D-like features, the make-sim command."""

import argparse
import json

import numpy as np
import pytest

from wsl.utils.cli import run_cli
from wsl_video.commands import make_sim
from wsl_video.data import THUMOS14_CLASSES, SimConfig, open_dataset
from wsl_video.data.sim import thumos14_resources

SMALL = {"videos": 6, "feature_dim": 16, "class_dims": 4, "context_dims": 4, "actionness_dims": 3}


def make_sim_cli(argv):
    return run_cli("wsl-video", "test", {"make-sim": "wsl_video.commands.make_sim"}, ["make-sim", *argv])


def test_smoke():
    ds = open_dataset("thumos14-sim", "train", sim={"videos": 3})
    assert ds.streams == ("rgb", "flow") and ds.feature_dims == {"rgb": 64, "flow": 64}
    feats = ds.features(0)
    t = ds.videos[0].num_snippets
    assert feats["rgb"].shape == (t, 64) and feats["flow"].shape == (t, 64)
    assert feats["rgb"].dtype == np.float32


def test_real_timeline():
    train = open_dataset("thumos14-sim", "train")
    test = open_dataset("thumos14-sim", "test")
    assert len(train) == 200 and len(test) == 212 and train.classes == list(THUMOS14_CLASSES)
    assert len(open_dataset("thumos14-sim", "test", test_videos=210)) == 210
    assert sum(len(v.annotations) for v in test.videos) == 3358  # THUMOS14 test instances
    gt = json.loads((thumos14_resources() / "gt.json").read_text())["database"]
    for video in train.videos + test.videos:
        assert video.duration == gt[video.name]["duration"]
        assert video.num_snippets == int(video.duration / 0.64)
        assert len(video.annotations) == len(gt[video.name]["annotations"])
    assert test.ground_truth()["database"]["video_test_0000004"] == {
        "subset": "test", "duration": gt["video_test_0000004"]["duration"],
        "annotations": sorted(gt["video_test_0000004"]["annotations"], key=lambda a: (a["segment"], a["label"]))}
    assert len(test.ambiguous) > 30 and not train.ambiguous
    assert all(name.startswith("video_test_") for name in test.ambiguous)


def test_deterministic_per_video():
    a = open_dataset("thumos14-sim", "test", sim=dict(SMALL, cache=False))
    b = open_dataset("thumos14-sim", "test", sim=dict(SMALL, videos=None))
    c = open_dataset("thumos14-sim", "test", seed=1, sim=SMALL)
    for i in range(3):
        name = a.videos[i].name
        fa, fb = a.features(i), b.features(name)  # same video, whatever the subset size
        assert all(np.array_equal(fa[s], fb[s]) for s in ("rgb", "flow"))
        assert np.array_equal(fa["rgb"], a.features(i)["rgb"])  # regenerated identically
        assert not np.array_equal(fa["rgb"], c.features(i)["rgb"])
    assert not np.array_equal(fa["rgb"], fa["flow"])


def test_cache_returns_copies():
    ds = open_dataset("thumos14-sim", "test", sim=SMALL)
    ds.features(0)["rgb"][:] = -1
    assert ds.features(0)["rgb"].min() >= 0


def test_i3d_like_statistics():
    ds = open_dataset("thumos14-sim", "train", sim={"videos": 20})
    x = np.concatenate([ds.features(i)["rgb"] for i in range(len(ds))])
    assert x.min() >= 0  # averages of ReLU outputs
    zeros = (x < 1e-3).mean()
    assert 0.3 < zeros < 0.9  # sparse, but not empty
    assert np.isfinite(x).all() and x.mean() > 0


def test_joint_streams():
    two = open_dataset("thumos14-sim", "test", sim=SMALL)
    joint = open_dataset("thumos14-sim", "test", streams="joint", sim=SMALL)
    assert joint.feature_dims == {"joint": 32}
    f = two.features(2)
    assert np.array_equal(joint.features(2)["joint"], np.hstack([f["rgb"], f["flow"]]))


def auc(positive, negative):
    """Probability that a positive scores above a negative (Mann-Whitney)."""
    scores = np.concatenate([positive, negative])
    ranks = scores.argsort().argsort() + 1.0
    return (ranks[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative))


def test_discriminative_structure():
    """Action snippets carry the class pattern: strongly in a few, weakly in most; background carries context."""
    ds = open_dataset("thumos14-sim", "test", sim={"videos": 40})
    generator = ds.simulator
    strong, weak, background, context_margin = [], [], [], []
    for i, video in enumerate(ds.videos):
        c = ds.classes.index(video.labels[0])
        strength = generator.action_strength(video)[:, c]
        x = ds.features(i)["flow"]
        score = x @ generator.patterns["flow"]["action"][c]
        inside = video.snippet_mask(ds.classes)[:, c]
        strong.extend(score[strength >= SimConfig().strong_level * 0.7])
        weak.extend(score[inside & (strength > 0) & (strength < SimConfig().strong_level * 0.7)])
        background.extend(score[~video.snippet_mask(ds.classes).any(axis=1)])
    strong_auc, weak_auc = auc(np.array(strong), np.array(background)), auc(np.array(weak), np.array(background))
    assert strong_auc > 0.9  # a few snippets are highly discriminative
    assert 0.55 < weak_auc < strong_auc - 0.1  # most are only weakly so
    # RGB background carries class context: background of class-c videos scores higher on c's context
    for i, video in enumerate(ds.videos):
        c = ds.classes.index(video.labels[0])
        x = ds.features(i)["rgb"][~video.snippet_mask(ds.classes).any(axis=1)]
        if len(x):
            own = x @ generator.patterns["rgb"]["context"][c]
            other = x @ generator.patterns["rgb"]["context"][(c + 7) % 20]
            context_margin.append(own.mean() - other.mean())
    assert np.mean(np.array(context_margin) > 0) > 0.85


def test_sim_config_overrides():
    ds = open_dataset("thumos14-sim", "test", sim={"feature_dim": 8, "class_dims": 2, "context_dims": 2,
                                                   "actionness_dims": 2, "videos": 2, "noise": 0.1})
    assert ds.feature_dims == {"rgb": 8, "flow": 8} and len(ds) == 2
    assert SimConfig.from_overrides({"noise": 0.1}).noise == (0.1, 0.1)
    with pytest.raises(ValueError, match=r"unknown sim option\(s\) \['dim'\]; known options: feature_dim"):
        open_dataset("thumos14-sim", sim={"dim": 3})
    with pytest.raises(ValueError, match="class_dims=80 exceeds feature_dim=64"):
        open_dataset("thumos14-sim", sim={"class_dims": 80})
    with pytest.raises(ValueError, match="feature_dim must be a positive integer"):
        SimConfig(feature_dim=0)
    with pytest.raises(ValueError, match="strong_fraction"):
        SimConfig(strong_fraction=0.0)
    with pytest.raises(ValueError, match="thumos14-sim has no on-disk layout"):
        open_dataset("thumos14-sim", layout="bas")


@pytest.mark.parametrize("layout", ["wtalc", "bas", "acm"])
def test_make_sim_round_trip(tmp_path, layout, capsys):
    out = tmp_path / layout
    assert make_sim_cli(["--layout", layout, "--out", str(out), "--videos", "3", "--feature-dim", "8",
                         "--seed", "5"]) == 0
    assert "wrote thumos14-sim (3 train, 3 test videos" in capsys.readouterr().out
    assert not list(out.rglob(".*.tmp"))  # atomic writes leave no temporary file
    sim = {"videos": 3, "feature_dim": 8}
    for subset in ("train", "test"):
        disk = open_dataset("thumos14", subset, data_root=out)
        mem = open_dataset("thumos14-sim", subset, seed=5, sim=sim)
        assert [v.name for v in disk.videos] == [v.name for v in mem.videos]
        for a, b in zip(disk.videos, mem.videos):
            assert (a.annotations, a.labels, a.num_snippets) == (b.annotations, b.labels, b.num_snippets)
            assert a.duration == pytest.approx(b.duration)
        for i in range(len(disk)):
            for stream in ("rgb", "flow"):
                assert np.array_equal(disk.features(i)[stream], mem.features(i)[stream])
        assert disk.ambiguous == mem.ambiguous
        np.testing.assert_array_equal(disk.label_matrix(), mem.label_matrix())


def test_make_sim_errors(tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    assert make_sim_cli(["--layout", "acm", "--out", str(tmp_path / "full")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wsl-video make-sim: error: ") and "full: folder is not empty" in err
    assert len(err.strip().splitlines()) == 1
    assert make_sim_cli(["--layout", "acm", "--out", str(tmp_path / "o"), "--feature-dim", "2",
                         "--videos", "1"]) == 2
    assert "exceeds feature_dim=2" in capsys.readouterr().err


def test_make_sim_arguments():
    parser = argparse.ArgumentParser()
    make_sim.add_arguments(parser)
    args = parser.parse_args(["--layout", "bas", "--out", "x"])
    assert (args.seed, args.feature_dim, args.videos, args.test_videos) == (0, None, None, 212)
    assert isinstance(make_sim.HELP, str) and "\n" not in make_sim.HELP


def test_learnability_benchmark_smoke():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "thumos14_sim_learnability.py"
    spec = importlib.util.spec_from_file_location("thumos14_sim_learnability", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    summary = module.main(["--aggregators", "maa", "--iterations", "3", "--batch", "4", "--train-videos", "6",
                           "--test-videos", "2", "--sim", '{"feature_dim": 16}'])
    result = summary["maa"][0]
    assert 0 <= result["avg_mAP"] <= 100 and len(result["mAP@IoU"]) == 7
    # the benchmark's AP: one detection matching the only ground truth is perfect, a miss scores 0
    assert module.average_precision([("v", 1.0, 2.0, 0.9)], {"v": [(1.0, 2.0)]}, 0.5) == 1.0
    assert module.average_precision([("v", 5.0, 6.0, 0.9)], {"v": [(1.0, 2.0)]}, 0.5) == 0.0


def test_make_sim_through_wsl_video_cli(tmp_path):
    import importlib.util

    from wsl_video import cli

    missing = [module for module in cli.COMMANDS.values() if importlib.util.find_spec(module) is None]
    if missing:
        pytest.skip(f"wsl-video command modules not found: {', '.join(missing)}")
    out = tmp_path / "sim"
    assert cli.main(["make-sim", "--layout", "bas", "--out", str(out), "--videos", "1", "--feature-dim", "8"]) == 0
    assert len(open_dataset("thumos14", "test", data_root=out)) == 1


def test_shifted_preset_options():
    from wsl_video.data.sim import PRESETS

    shifted = SimConfig.from_overrides({"preset": "shifted"})
    assert shifted == SimConfig.from_overrides(PRESETS["shifted"]) and shifted != SimConfig()
    assert shifted.noise == (0.6, 0.6) and shifted.distractor_rate == 1.0 and shifted.cooccurrence == 0.5
    assert SimConfig.from_overrides({"preset": "shifted", "noise": 0.2, "videos": 3}).noise == (0.2, 0.2)  # given wins
    with pytest.raises(ValueError, match=r"^unknown sim preset 'shifty'; known presets: shifted$"):
        SimConfig.from_overrides({"preset": "shifty"})
    with pytest.raises(ValueError, match="cooccurrence must be in"):
        SimConfig(cooccurrence=1.5)
    with pytest.raises(ValueError, match="distractor_rate must be non-negative"):
        SimConfig(distractor_rate=-1.0)


def test_distractors_and_cooccurrence():
    """Distractor bursts lie only outside actions; co-occurrence adds exactly one other class's scene."""
    ds = open_dataset("thumos14-sim", "train", sim={"distractor_rate": 5.0, "distractor_level": 0.8,
                                                    "cooccurrence": 1.0, "videos": 6})
    generator = ds.simulator
    plain = open_dataset("thumos14-sim", "train", sim={"videos": 6}).simulator
    bursts = 0
    for video in ds.videos:
        distractors = generator.distractor_strength(video)
        inside = generator.action_strength(video).max(axis=1) > 0
        assert set(np.unique(distractors)) <= {0.0, 0.8}
        assert not distractors[inside].any()  # never on top of an action
        bursts += int((distractors > 0).any(axis=1).sum())
        assert not plain.distractor_strength(video).any()  # the default: none
        scene = generator.scene_classes(video)
        labels = {ds.classes.index(name) for name in video.labels}
        assert set(np.flatnonzero(scene)) > labels and scene.sum() == len(labels) + 1
        assert set(np.flatnonzero(plain.scene_classes(video))) == labels
    total = sum(video.num_snippets for video in ds.videos)
    assert 0.02 * total < bursts < 0.5 * total  # about 5 bursts of 2-8 snippets per 100, minus the actions
    # the shifted preset keeps I3D-like features: non-negative, many zeros, but denser than the default
    shifted = open_dataset("thumos14-sim", "train", sim={"preset": "shifted", "videos": 6})
    default = open_dataset("thumos14-sim", "train", sim={"videos": 6})
    x = np.concatenate([shifted.features(i)["rgb"] for i in range(6)])
    y = np.concatenate([default.features(i)["rgb"] for i in range(6)])
    assert x.min() >= 0 and 0.3 < (x < 1e-3).mean() < (y < 1e-3).mean() and x.mean() > y.mean()
