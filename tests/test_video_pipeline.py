import dataclasses

import numpy as np
import pytest
import torch
import yaml

from wsl_video.config import RunConfig, config_to_dict, load_config, save_config
from wsl_video.data.opening import open_data
from wsl_video.detections import load_detections
from wsl_video.inference import shifted_uniform_snippets
from wsl_video.model import weak_label_loss
from wsl_video.run import build_model, load_run
from wsl_video.training import train

SIM = {"videos": 8, "feature_dim": 16}


def tiny_config(aggregator="maa", iterations=6, batch_size=4):
    config = RunConfig()
    config.data.dataset = "thumos14-sim"
    config.data.sim = dict(SIM)
    config.model.aggregator = aggregator
    config.train.iterations = iterations
    config.train.batch_size = batch_size
    config.train.device = "cpu"
    config.train.checkpoint_every = 3
    config.train.log_every = 3
    return config


def test_config_round_trip(tmp_path):
    config = tiny_config("weighted_sum").resolved()
    config.inference.nms = "soft"
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config
    # a partial file on top of the defaults
    (tmp_path / "partial.yaml").write_text(yaml.safe_dump({"train": {"iterations": 7}, "model": None}))
    partial = load_config(tmp_path / "partial.yaml")
    assert partial.train.iterations == 7
    assert dataclasses.replace(partial.train, iterations=RunConfig().train.iterations) == RunConfig().train
    on_base = load_config(tmp_path / "partial.yaml", base=config)
    assert config_to_dict(on_base) == {**config_to_dict(config), "train": {**config_to_dict(config)["train"],
                                                                           "iterations": 7}}


def test_config_resolved_defaults():
    thumos = RunConfig().resolved()
    assert thumos.inference.cas_thresholds == [0.2]
    assert thumos.inference.tiou_thresholds == pytest.approx([0.1 * i for i in range(1, 10)])
    assert thumos.data.test_videos == 212
    assert thumos.train.sparsity_weight == 0.0
    activitynet = RunConfig()
    activitynet.data.dataset = "activitynet"
    activitynet.model.aggregator = "weighted_sum"
    activitynet = activitynet.resolved()
    assert activitynet.inference.cas_thresholds == [0.2, 0.15, 0.1, 0.05]
    assert activitynet.inference.tiou_thresholds == pytest.approx([0.5 + 0.05 * i for i in range(10)])
    assert activitynet.train.sparsity_weight == 1e-4
    assert activitynet.data.test_videos is None


def test_config_exception(tmp_path):
    (tmp_path / "bad.yaml").write_text("train:\n  iterationz: 3\n")
    with pytest.raises(ValueError, match="train.iterationz"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "section.yaml").write_text("optimiser:\n  lr: 3\n")
    with pytest.raises(ValueError, match="optimiser"):
        load_config(tmp_path / "section.yaml")
    (tmp_path / "broken.yaml").write_text("train: [1, 2\n")
    with pytest.raises(ValueError, match="broken.yaml"):
        load_config(tmp_path / "broken.yaml")
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_config(tmp_path / "missing.yaml")
    config = RunConfig()
    config.train.iterations = 0
    with pytest.raises(ValueError, match="train.iterations"):
        config.resolved()
    config = RunConfig()
    config.inference.video_scores = "everything"
    with pytest.raises(ValueError, match="video_scores"):
        config.resolved()


def _training_loss(model, dataset, num_segments=20):
    """Loss on one uniform T-snippet sample of every training video (independent of training's sampling)."""
    batch = {name: [] for name in dataset.streams}
    for i in range(len(dataset)):
        features = dataset.features(i)
        index = shifted_uniform_snippets(len(next(iter(features.values()))), num_segments, 1)[0]
        for name in dataset.streams:
            batch[name].append(features[name][index])
    batch = {name: torch.from_numpy(np.stack(arrays)) for name, arrays in batch.items()}
    labels = torch.as_tensor(dataset.label_matrix(), dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        return weak_label_loss(model(batch), labels).item()


def test_training_decreases_loss(tmp_path):
    config = tiny_config(iterations=40, batch_size=8)
    config.train.lr = 1e-2  # the paper's 5e-4 needs far more than 40 iterations
    dataset = open_data(config.resolved(), "train")
    torch.manual_seed(config.train.seed)
    initial = build_model(config.resolved(), dict(dataset.feature_dims), len(dataset.classes))
    before = _training_loss(initial, dataset)
    assert train(config, tmp_path / "run", evaluate=False, progress=False, train_set=dataset) == {}
    _, trained, state = load_run(tmp_path / "run")
    assert state["iteration"] == 40
    # the run starts from the same initialisation as `initial`
    assert _training_loss(trained, dataset) < 0.8 * before
    log = (tmp_path / "run" / "train.log").read_text()
    assert "iteration 40/40" in log
    sim = ", ".join(f"{key}={value}" for key, value in sorted(SIM.items()))
    assert f"on thumos14-sim ({sim}) (" in log  # the simulator's options named


@pytest.mark.parametrize("aggregator", ["maa", "dropout"])
def test_resume_equivalence(tmp_path, aggregator):
    """N iterations + resume to 2N gives exactly the weights of 2N uninterrupted iterations."""
    config = tiny_config(aggregator, iterations=4)
    dataset = open_data(config.resolved(), "train")
    train(config, tmp_path / "resumed", evaluate=False, progress=False, train_set=dataset)
    longer = tiny_config(aggregator, iterations=8)
    train(longer, tmp_path / "resumed", resume=True, evaluate=False, progress=False, train_set=dataset)
    train(longer, tmp_path / "straight", evaluate=False, progress=False, train_set=dataset)
    resumed = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    straight = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    assert resumed["iteration"] == straight["iteration"] == 8
    for key, value in straight["model"].items():
        assert torch.equal(resumed["model"][key], value), key
    for a, b in zip(resumed["optimizer"]["state"].values(), straight["optimizer"]["state"].values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"])
    # a different seed does give different weights (the comparison above can fail)
    other = tiny_config(aggregator, iterations=8)
    other.train.seed = 1
    train(other, tmp_path / "other", evaluate=False, progress=False, train_set=dataset)
    other_state = torch.load(tmp_path / "other" / "checkpoint.pt", weights_only=True)
    assert any(not torch.equal(other_state["model"][k], v) for k, v in straight["model"].items())
    assert "resumed at iteration 4" in (tmp_path / "resumed" / "train.log").read_text()


def test_resume_exception(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        train(tiny_config(), tmp_path / "empty", resume=True, progress=False)


def test_end_to_end(tmp_path):
    config = tiny_config(iterations=12)
    metrics = train(config, tmp_path / "run", progress=False)
    assert len(metrics["mAP"]) == 9
    assert 0.0 <= metrics["average_mAP_0.1_0.7"] <= 1.0 and 0.0 <= metrics["cls_mAP"] <= 1.0
    test_set = open_data(config.resolved(), "test")
    results, video_scores = load_detections(tmp_path / "run" / "detections.json")
    assert set(results) == {video.name for video in test_set.videos}
    assert set(video_scores) == set(results)
    for video in test_set.videos:
        assert results[video.name], "every video keeps at least its top class"
        assert len(results[video.name]) <= config.inference.max_detections
        for detection in results[video.name]:
            start, end = detection["segment"]
            assert detection["label"] in test_set.classes
            assert 0.0 <= start < end <= video.duration + 1e-6
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["model"]["aggregator"] == "maa" and saved["data"]["sim"] == SIM


def test_summarize_runs_and_table():
    from wsl_video.plot import format_metrics_table, summarize_runs

    runs = [{"tiou_thresholds": [0.1, 0.5], "mAP": [0.5, 0.1], "average_mAP": 0.3, "cls_mAP": 0.9},
            {"tiou_thresholds": [0.1, 0.5], "mAP": [0.7, 0.3], "average_mAP": 0.5, "cls_mAP": 0.8}]
    summary = summarize_runs(runs)
    assert summary["seeds"] == 2
    assert summary["mAP"] == pytest.approx([0.6, 0.2])
    assert summary["mAP_std"] == pytest.approx([0.1 * np.sqrt(2)] * 2)
    assert summary["cls_mAP_std"] == pytest.approx(0.05 * np.sqrt(2))
    table = format_metrics_table({"MAAN": summary, "single": runs[0]}).splitlines()
    assert table[0] == "| Aggregator | 0.1 | 0.5 | avg | Cls mAP |"
    assert table[2] == "| MAAN | 60.0 ± 14.1 | 20.0 ± 14.1 | 40.0 ± 14.1 | 85.0 ± 7.1 |"
    assert table[3] == "| single | 50.0 | 10.0 | 30.0 | 90.0 |"


def test_split_held_out():
    from wsl_video.data.held_out import split_held_out

    dataset = open_data(tiny_config().resolved(), "train")
    fit, held_out = split_held_out(dataset, 3, seed=1)
    fit_names, held_names = [v.name for v in fit.videos], [v.name for v in held_out.videos]
    assert len(held_names) == 3 and len(fit_names) == len(dataset) - 3
    assert not set(fit_names) & set(held_names)
    assert sorted(fit_names + held_names) == sorted(v.name for v in dataset.videos)
    assert fit_names == [v.name for v in dataset.videos if v.name in set(fit_names)]  # order kept
    again = split_held_out(dataset, 3, seed=1)[1]
    assert [v.name for v in again.videos] == held_names
    assert {tuple(v.name for v in split_held_out(dataset, 3, seed=s)[1].videos) for s in range(6)} != {
        tuple(held_names)}
    # the views read the parent's features and labels, and score only their own videos
    for view in (fit, held_out):
        assert view.streams == dataset.streams and view.feature_dims == dataset.feature_dims
        for i, video in enumerate(view.videos):
            for name, array in view.features(i).items():
                np.testing.assert_array_equal(array, dataset.features(video.name)[name])
            np.testing.assert_array_equal(view.label_matrix()[i], dataset.label_matrix()[dataset.index(video.name)])
    assert set(held_out.ground_truth()["database"]) == set(held_names)
    assert all(v.annotations for v in held_out.videos)
    for bad, message in ((0, "positive integer"), (len(dataset), "cannot hold out")):
        with pytest.raises(ValueError, match=message):
            split_held_out(dataset, bad)


def test_dataset_view():
    """A view holds the chosen videos in the given order, with the parent's features, labels and settings."""
    dataset = open_data(tiny_config().resolved(), "train")
    indices = [4, 0, 2]
    view = dataset.view(indices, "picked")
    assert view.subset == "picked" and dataset.view([1]).subset == dataset.subset
    assert [v.name for v in view.videos] == [dataset.videos[i].name for i in indices]
    assert view.classes == dataset.classes and view.streams == dataset.streams
    assert view.feature_dims == dataset.feature_dims and view.extractor == dataset.extractor
    np.testing.assert_array_equal(view.label_matrix(), dataset.label_matrix()[indices])
    for position, index in enumerate(indices):
        for name, array in view.features(position).items():
            np.testing.assert_array_equal(array, dataset.features(index)[name])
    view.preload()  # the preloaded features serve the parent too, and read the same
    for name, array in dataset.features(4).items():
        np.testing.assert_array_equal(array, view.features(0)[name])
    with pytest.raises(IndexError, match="no video at index 99"):
        dataset.view([99])
    with pytest.raises(ValueError, match="empty"):
        dataset.view([])
    with pytest.raises(ValueError, match="duplicate"):
        dataset.view([1, 1])
