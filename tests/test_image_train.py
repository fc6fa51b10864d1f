"""Training: outputs, exact resume, 2-process DDP through torchrun, evaluation reduction."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from wsl_image.config import TrainConfig, load_config
from wsl_image.data.splits import build_splits
from wsl_image.evaluate import LocalizationMeter, ShardSampler, evaluate_run
from wsl_image.run import load_run
from wsl_image.sim import make_cub_sim
from wsl_image.training import train

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
METRIC_KEYS = ("top1_loc", "top5_loc", "gt_known_loc", "max_box_acc", "max_box_acc_v2", "top1_cls", "top5_cls")


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("cub-sim")
    make_cub_sim(
        out, seed=1, num_classes=3, train_per_class=4, test_per_class=3, val_per_class=1, image_size=48, clutter=2
    )
    return out


def _config(sim, out, **changes):
    values = dict(
        data_root=str(sim / "CUB_200_2011"),
        metadata=str(sim / "metadata" / "CUB"),
        out=str(out),
        backbone="test_resnet",
        image_size=32,
        grid=4,
        aggregator="maa",
        epochs=2,
        batch_size=4,
        workers=0,
        optimizer="sgd",
        lr=0.02,
        head_lr_scale=1.0,
        device="cpu",
    )
    values.update(changes)
    return TrainConfig(**values)


def test_train_outputs(sim, tmp_path):
    config = _config(sim, tmp_path / "run")
    metrics = train(config, progress=False, log=lambda message: None)
    run = tmp_path / "run"
    for name in ("config.yaml", "checkpoint.pt", "history.json", "metrics.json", "train.log"):
        assert (run / name).is_file(), name
    written = json.loads((run / "metrics.json").read_text())
    assert written["units"].startswith("fractions in [0, 1]")
    for key in METRIC_KEYS:
        assert 0.0 <= written[key] <= 1.0, key
        assert written[key] == pytest.approx(metrics[key])
    assert written["num_images"] == 9  # 3 classes x 3 test images
    assert written["cam_threshold"] == 0.2
    assert 0.0 <= written["val_cam_threshold"] < 1.0 and "val split" in written["threshold_note"]
    assert set(written["at_val_threshold"]) >= {"top1_loc", "gt_known_loc"}
    assert written["top1_loc"] <= written["gt_known_loc"] and written["top1_loc"] <= written["top5_loc"]
    assert len(written["history"]) == 2 and all(np.isfinite(r["loss"]) for r in written["history"])
    assert all(0.0 <= r["train_acc"] <= 1.0 for r in written["history"])
    saved = load_config(run / "config.yaml")
    assert saved.num_classes == 3 and saved.aggregator == "maa" and saved.grid == 4
    model, _ = load_run(run)
    assert model.class_names and len(model.class_names) == 3


def test_no_val_split_says_so(sim, tmp_path):
    config = _config(sim, tmp_path / "run", metadata=None, epochs=1, aggregator="mean")
    metrics = train(config, progress=False, log=lambda message: None)
    assert metrics["val_cam_threshold"] is None and metrics["at_val_threshold"] is None
    assert "no validation split" in metrics["threshold_note"]


def test_held_out_val_split(sim, tmp_path):
    config = _config(sim, tmp_path / "run", metadata=None, epochs=1, val_per_class=1)
    splits = build_splits(config)
    assert len(splits["val"]) == 3 and len(splits["train"]) == 9
    train_ids = set(splits["train"].meta.image_ids)
    assert not train_ids & set(splits["val"].meta.image_ids)
    metrics = train(config, progress=False, log=lambda message: None)
    assert metrics["val_cam_threshold"] is not None and "held out" in metrics["threshold_note"]
    with pytest.raises(ValueError, match="already has a val split"):
        build_splits(_config(sim, tmp_path / "other", val_per_class=1))


def test_resume_is_exact(sim, tmp_path):
    """3 epochs in one go == 1 epoch, interruption, ``resume`` for the rest (weights bit for bit)."""
    changes = dict(epochs=3, aggregator="weighted_sum", metadata=None)
    train(_config(sim, tmp_path / "straight", **changes), progress=False, log=lambda message: None)

    def interrupt(epoch, record, model):
        if epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(
            _config(sim, tmp_path / "resumed", **changes),
            progress=False,
            epoch_callback=interrupt,
            log=lambda message: None,
        )
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    train(_config(sim, tmp_path / "resumed", **changes), resume=True, progress=False, log=lambda message: None)
    straight = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert resumed["epoch"] == straight["epoch"] == 3
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    assert [r["loss"] for r in straight["history"]] == [r["loss"] for r in resumed["history"]]
    assert straight["optimizer"]["state"].keys() == resumed["optimizer"]["state"].keys()


def test_shard_sampler_covers_once():
    shards = [list(ShardSampler(10, rank, 3)) for rank in range(3)]
    assert sorted(sum(shards, [])) == list(range(10))
    assert [len(s) for s in shards] == [4, 3, 3]


def test_meter_counts_match_direct_metrics():
    """Counts accumulated over two batches give the metrics computed on all images at once."""
    from wsl.metrics import localization_accuracy, max_box_acc

    rng = np.random.default_rng(0)
    cams = rng.random((6, 16, 16)) ** 3
    boxes = [np.array([[2.0, 3.0, 10.0, 12.0]]) for _ in range(6)]
    scores = rng.normal(size=(6, 4))
    labels = rng.integers(0, 4, 6)
    meter = LocalizationMeter((0.2, 0.5))
    meter.update(cams[:4], boxes[:4], scores[:4], labels[:4])
    meter.update(cams[4:], boxes[4:], scores[4:], labels[4:])
    metrics = meter.compute()
    direct = localization_accuracy(cams, boxes, scores, labels, cam_threshold=0.5)
    for key, value in direct.items():
        assert metrics["at_threshold"]["0.5"][key] == pytest.approx(value)
    assert metrics["max_box_acc"] == pytest.approx(
        max_box_acc(cams, boxes, iou_thresholds=(0.5,), multi_contour=False)[0.5]
    )
    assert metrics["max_box_acc_v2"] == pytest.approx(max_box_acc(cams, boxes)["mean"])
    v2 = max_box_acc(cams, boxes)
    assert metrics["max_box_acc_v2_per_iou"] == pytest.approx({str(d): v2[d] for d in (0.3, 0.5, 0.7)})


def test_ddp_torchrun(sim, tmp_path):
    """2-process gloo DDP through torchrun: outputs written once, metrics summed over both shards."""
    run = tmp_path / "ddp"
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
        "-m",
        "wsl_image",
        "train",
        "--data-root",
        str(sim / "CUB_200_2011"),
        "--metadata",
        str(sim / "metadata" / "CUB"),
        "--out",
        str(run),
        "--backbone",
        "test_resnet",
        "--image-size",
        "32",
        "--grid",
        "4",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--quiet",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_images"] == 9  # both shards together: every test image exactly once
    for key in METRIC_KEYS:
        assert 0.0 <= metrics[key] <= 100.0
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert len(torch.load(run / "checkpoint.pt", weights_only=True)["rng"]) == 2  # one RNG state per rank
    # the reduced metrics equal a single-process evaluation of the saved model
    model, config = load_run(run)
    single = evaluate_run(model, config, build_splits(config), device=torch.device("cpu"), progress=False)
    for key in (*METRIC_KEYS, "val_cam_threshold"):
        assert single[key] == pytest.approx(metrics[key], abs=1e-9), key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_amp(sim, tmp_path):
    """Mixed-precision training on CUDA; the evaluation matches a float32 CPU evaluation closely."""
    config = _config(sim, tmp_path / "run", device="cuda", amp=True, epochs=1)
    metrics = train(config, progress=False, log=lambda message: None)
    assert np.isfinite(json.loads((tmp_path / "run" / "history.json").read_text())[0]["loss"])
    model, config = load_run(tmp_path / "run")
    cpu = evaluate_run(
        model, config.replace(amp=False), build_splits(config), device=torch.device("cpu"), progress=False
    )
    assert cpu["top1_cls"] == pytest.approx(metrics["top1_cls"], abs=1.0 / 9 + 1e-6)


def test_stored_box_accuracy_keeps_the_rounding_of_earlier_files():
    """metrics.json keeps the values earlier versions wrote (accuracy through percent): 2 of 12 images is stored
    as 0.16666666666666669, while ``wsl.metrics`` returns the plain fraction 2 / 12."""
    from wsl.metrics import BoxAccuracy
    from wsl_image.evaluate import _stored_box_accuracy

    metric = BoxAccuracy(iou_thresholds=(0.5,), multi_contour=False)
    metric.num_correct[0, 3], metric.num_images = 2, 12
    assert metric.compute()[0.5] == 2 / 12 == 0.16666666666666666
    assert _stored_box_accuracy(metric) == {0.5: 0.16666666666666669, "mean": 0.16666666666666669}
