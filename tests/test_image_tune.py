"""``wsl-image tune``: the held-out images, a study that never reads the test split, best.yaml through
``train --config``, bad input and the demo's settings."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from wsl_image.cli import main
from wsl_image.sim import make_cub_sim

optuna = pytest.importorskip("optuna")
torch.set_num_threads(1)

TINY = ["--backbone", "test_resnet", "--image-size", "32", "--batch-size", "4", "--optimizer", "adamw",
        "--workers", "0", "--device", "cpu", "--quiet"]
SPACE = {"epochs": {"choices": [1, 2]}, "lr": {"low": 1e-4, "high": 1e-2, "log": True}, "grid": {"choices": [4]}}


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("tune-cub")
    make_cub_sim(out, seed=3, num_classes=2, train_per_class=4, test_per_class=2, val_per_class=2, image_size=48,
                 clutter=1)
    return out


@pytest.fixture(scope="module")
def space_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tune-space") / "space.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    return path


def without_test(sim: Path, dest: Path) -> Path:
    """A copy of cub-sim without the test images, the test metadata and the test rows of the official files."""
    shutil.copytree(sim, dest)
    root = dest / "CUB_200_2011"
    test_ids = {line.split()[0] for line in (root / "train_test_split.txt").read_text().splitlines()
                if line.split()[1] == "0"}
    for line in (root / "images.txt").read_text().splitlines():
        image_id, name = line.split()
        if image_id in test_ids:
            (root / "images" / name).unlink()
    for name in ("images.txt", "image_class_labels.txt", "bounding_boxes.txt"):  # the split file keeps its rows
        lines = [line for line in (root / name).read_text().splitlines() if line.split()[0] not in test_ids]
        (root / name).write_text("\n".join(lines) + "\n")
    shutil.rmtree(dest / "metadata" / "CUB" / "test")
    return dest


def tune_argv(sim, out, space_file, *extra, metadata=True):
    argv = ["tune", "--data-root", str(sim / "CUB_200_2011"), "--out", str(out), "--space", str(space_file),
            "--trials", "2", *TINY, *extra]
    return argv + (["--metadata", str(sim / "metadata" / "CUB")] if metadata else [])


def read_trials(out: Path) -> list:
    with open(out / "trials.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_held_out_images(sim):
    from wsl_image.config import TrainConfig
    from wsl_image.data import load_wsol_metadata
    from wsl_image.tune import open_training_images

    metadata = sim / "metadata" / "CUB"
    config = TrainConfig(data_root=str(sim / "CUB_200_2011"), metadata=str(metadata))
    fit, held, how = open_training_images(config)  # the metadata's val split (CUBV2 protocol)
    val = load_wsol_metadata(metadata / "val", sim / "CUB_200_2011" / "images")
    assert held.image_ids == val.image_ids and len(fit) == 8 and "val split" in how
    fit, held, how = open_training_images(config, held_out=2, split_seed=5)
    assert len(held) == 2 and sorted(held.labels.tolist()) == [0, 1]  # one per class
    assert held.image_ids == open_training_images(config, held_out=2, split_seed=5)[1].image_ids
    everything = load_wsol_metadata(metadata, sim / "CUB_200_2011" / "images")
    assert not set(held.image_ids) & set(everything.split("test").image_ids)
    assert sorted(fit.image_ids + held.image_ids) == sorted(everything.split("train").image_ids)
    official = TrainConfig(data_root=str(sim / "CUB_200_2011"))
    fit, held, how = open_training_images(official)  # a tenth of the training split
    assert len(held) == 1 and len(fit) == 7 and "stratified" in how


def test_load_skips_the_test_rows(sim, tmp_path):
    """The official layout's train subset reads no field of a test row (here garbage) and no test image."""
    from wsl_image.data import load_cub

    root = without_test(sim, tmp_path / "copy") / "CUB_200_2011"
    full = load_cub(sim / "CUB_200_2011")
    test_ids = [key for key, train in zip(full.image_ids, full.is_train) if not train]
    with open(root / "bounding_boxes.txt", "a") as handle:
        handle.write("".join(f"{key} not a box\n" for key in test_ids))
    meta = load_cub(root, splits=("train",))
    assert meta.image_ids == [key for key, train in zip(full.image_ids, full.is_train) if train]
    assert np.array_equal(meta.labels, full.labels[full.is_train])
    with pytest.raises(ValueError, match="malformed line"):
        load_cub(root, splits=("train", "test"))


def test_tune_never_reads_the_test_split(sim, space_file, tmp_path):
    stripped = without_test(sim, tmp_path / "stripped")
    assert main(tune_argv(stripped, tmp_path / "a", space_file)) == 0
    assert main(tune_argv(sim, tmp_path / "b", space_file)) == 0
    drop = ("seconds",)
    rows_a, rows_b = read_trials(tmp_path / "a"), read_trials(tmp_path / "b")
    assert len(rows_a) == 2
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows_a] == \
           [{k: v for k, v in r.items() if k not in drop} for r in rows_b]
    # the official layout without metadata, test rows and images gone, works too
    assert main(tune_argv(stripped, tmp_path / "c", space_file, "--held-out", "2", metadata=False)) == 0
    assert "the test split is not read" in (tmp_path / "c" / "best.yaml").read_text()


def test_best_yaml_round_trips_through_train(sim, space_file, tmp_path, capsys):
    from wsl_image.config import TrainConfig, load_config

    out = tmp_path / "tune"
    argv = tune_argv(sim, out, space_file, "--aggregator", "weighted_sum", "--seeds", "0", "1")
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("best: ")  # --quiet: no progress, the result still printed
    values = yaml.safe_load((out / "best.yaml").read_text())
    config = load_config(out / "best.yaml")
    assert config.to_dict() == values == TrainConfig.from_dict(values).to_dict()
    assert values["aggregator"] == "weighted_sum" and values["epochs"] in (1, 2) and values["grid"] == 4
    assert 0.0 <= values["cam_threshold"] <= 1.0
    row = max((r for r in read_trials(out) if r["state"] == "complete"),
              key=lambda r: float(r["held_out_max_box_acc_v2"]))
    assert float(row["lr"]) == pytest.approx(values["lr"], rel=1e-5) and int(row["epochs"]) == values["epochs"]
    # trials.csv holds fractions, like the video tool's; best.yaml prints the same score in percent
    score = float(row["held_out_max_box_acc_v2"])
    assert 0.0 <= score <= 1.0 and f"held-out MaxBoxAccV2: {100 * score:.2f}%" in (out / "best.yaml").read_text()
    run = tmp_path / "run"
    assert main(["train", "--config", str(out / "best.yaml"), "--out", str(run), "--quiet"]) == 0
    written = yaml.safe_load((run / "config.yaml").read_text())
    assert written == {**values, "out": str(run), "num_classes": 2}
    # a study whose scores were stored in percent (no "scores" in its protocol) is not continued
    study = optuna.load_study(study_name="weighted_sum", storage=f"sqlite:///{out / 'study.db'}")
    study.set_user_attr("protocol", {k: v for k, v in study.user_attrs["protocol"].items() if k != "scores"})
    capsys.readouterr()
    _bad(capsys, argv, "was run with another setup (scores: '(absent)' there, 'fractions' here)")


def _bad(capsys, argv, *expected):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("wsl-image tune: error:"), err
    for text in expected:
        assert text in err, err


def test_exception(sim, space_file, tmp_path, capsys):
    out = tmp_path / "out"

    def argv(*extra, space=space_file):
        return tune_argv(sim, out, space, *extra)

    _bad(capsys, argv("--held-out", "8"), "cannot hold out 8 of the 8 training images")
    names = tmp_path / "held.txt"
    from wsl_image.data import load_wsol_metadata

    train = load_wsol_metadata(sim / "metadata" / "CUB", sim / "CUB_200_2011" / "images").split("train")
    names.write_text("\n".join(key for key, label in zip(train.image_ids, train.labels) if label == 1) + "\n")
    _bad(capsys, argv("--held-out-list", str(names)), "class 1 without training images")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("epoch: 3\n")
    _bad(capsys, argv(space=unknown), "unknown search-space key 'epoch'")
    threshold = tmp_path / "threshold.yaml"
    threshold.write_text("cam_threshold: {choices: [0.1, 0.2]}\n")
    _bad(capsys, argv(space=threshold), "cam_threshold is read off")
    grid = tmp_path / "grid.yaml"
    grid.write_text("grid: {choices: [4, -2]}\n")
    _bad(capsys, argv(space=grid), "grid")
    _bad(capsys, argv("--storage", "mysql://nobody@127.0.0.1:9/none"), "cannot open the study storage")
    _bad(capsys, argv("--aggregator", "nope"), "nope")
    _bad(capsys, tune_argv(tmp_path / "nowhere", out, space_file), "nowhere")
    assert not out.exists()


def test_demo_settings():
    import argparse

    from wsl_image.commands import demo
    from wsl_image.config import load_config

    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    defaults = parser.parse_args([])
    folder = demo.settings_folder()
    for name in demo.DEFAULT_AGGREGATORS:
        path = folder / f"{name}.yaml"
        assert path.is_file(), path
        assert path.read_text().startswith("# chosen by wsl-image tune: trial ")
        stored = load_config(path)
        assert stored.aggregator == name and stored.data_root == "" and stored.metadata is None
        config = demo.demo_config(name, defaults, data_root="/data", out="/runs/x")
        for key in ("epochs", "lr", "weight_decay", "head_lr_scale", "grid", "backbone", "image_size"):
            assert getattr(config, key) == getattr(stored, key), key
        assert config.epochs <= 30 and config.cam_threshold == demo.CLASSIC_CAM_THRESHOLD
    given = demo.demo_config("maa", parser.parse_args(["--epochs", "3", "--lr", "0.5", "--grid", "none"]))
    assert (given.epochs, given.lr, given.grid) == (3, 0.5, None)
    assert demo.demo_config("nope", defaults).epochs == demo.recipe().epochs  # no stored settings: the recipe


def test_demo_tune_small(sim, space_file, tmp_path, capsys):
    out, saved = tmp_path / "demo", tmp_path / "saved"
    argv = ["demo", "--tune", "--trials", "2", "--tune-space", str(space_file), "--aggregators", "maa", "--sim-root",
            str(sim), "--image-size", "32", "--overlays", "1", "--out", str(out), "--save-settings", str(saved),
            "--device", "cpu", "--quiet"]
    assert main(argv) == 0
    best = yaml.safe_load((out / "tune" / "maa" / "best.yaml").read_text())
    stored = yaml.safe_load((saved / "maa.yaml").read_text())
    assert stored == {**best, "data_root": "", "metadata": None, "out": "", "device": "auto"}
    run = yaml.safe_load((out / "maa" / "config.yaml").read_text())
    for key in ("epochs", "lr", "weight_decay", "grid", "head_lr_scale"):
        assert run[key] == best[key], key
    assert "| MAAN (maa" in capsys.readouterr().out


# ---------------------------------------------------------------- ILSVRC and OpenImages (train-fullsup split)


def wsol_sim(tmp_path: Path, name: str) -> Path:
    from wsl_image.wsol_sim import make_ilsvrc_sim, make_openimages_sim

    make = make_ilsvrc_sim if name == "ILSVRC" else make_openimages_sim
    make(tmp_path / "sim", seed=1, num_classes=2, train_per_class=3, val_per_class=2, test_per_class=1, image_size=48)
    return tmp_path / "sim"


def wsol_argv(sim: Path, name: str, out: Path, space_file, *extra):
    return ["tune", "--dataset", name, "--data-root", str(sim / name), "--metadata", str(sim / "metadata"),
            "--out", str(out), "--space", str(space_file), "--trials", "2", *TINY, *extra]


@pytest.mark.parametrize("name, method, metric", [("ILSVRC", "has", "max_box_acc_v2"),
                                                  ("OpenImages", "adl", "pxap")])
def test_wsol_datasets_tune_on_train_fullsup(tmp_path, space_file, name, method, metric):
    """Trials train on train and are scored on the val split by the benchmark's metric; the test split (metadata,
    images, masks) is never read: the study gives the same trials with it deleted, and best.yaml trains."""
    sim = wsol_sim(tmp_path, name)
    stripped = tmp_path / "stripped"
    shutil.copytree(sim, stripped)
    shutil.rmtree(stripped / "metadata" / name / "test")
    shutil.rmtree(stripped / name / ("val" if name == "ILSVRC" else "test"))  # the test images (and masks)
    extra = ("--method", method, "--aggregator", "mean")
    assert main(wsol_argv(stripped, name, tmp_path / "a", space_file, *extra)) == 0
    assert main(wsol_argv(sim, name, tmp_path / "b", space_file, *extra)) == 0
    rows_a, rows_b = read_trials(tmp_path / "a"), read_trials(tmp_path / "b")
    assert len(rows_a) == 2 and f"held_out_{metric}" in rows_a[0]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in rows_a] == \
           [{k: v for k, v in r.items() if k != "seconds"} for r in rows_b]
    option = {"has": "has_hide_prob", "adl": "adl_drop_rate"}[method]
    assert all(0.0 <= float(row[option]) <= 1.0 for row in rows_a)  # the method's own option is searched
    best = (tmp_path / "b" / "best.yaml").read_text()
    label = {"max_box_acc_v2": "MaxBoxAccV2", "pxap": "PxAP"}[metric]
    assert f"# held-out {label}: " in best and "the val split of" in best
    values = yaml.safe_load(best)
    assert values["dataset"] == name and values["method"] == method and values[option] is not None
    run = tmp_path / "run"
    assert main(["train", "--config", str(tmp_path / "b" / "best.yaml"), "--out", str(run), "--quiet"]) == 0
    assert ("pxap" if name == "OpenImages" else "max_box_acc_v2") in yaml.safe_load((run / "metrics.json").read_text())


def test_wsol_datasets_bad_input(tmp_path, space_file, capsys):
    sim = wsol_sim(tmp_path, "ILSVRC")
    out = tmp_path / "out"
    _bad(capsys, wsol_argv(sim, "ILSVRC", out, space_file, "--held-out", "2"),
         "--dataset ILSVRC: the held-out images are the train-fullsup split")
    test_split = str(sim / "metadata" / "ILSVRC" / "test")
    _bad(capsys, wsol_argv(sim, "ILSVRC", out, space_file, "--held-out-list", test_split),
         "the test split is for the final report only")
    _bad(capsys, ["tune", "--dataset", "ILSVRC", "--data-root", str(sim / "ILSVRC"), "--out", str(out), *TINY],
         "--metadata is required for --dataset ILSVRC")
    other = tmp_path / "other.yaml"
    other.write_text("adl_drop_rate: {low: 0.1, high: 0.9}\n")
    _bad(capsys, wsol_argv(sim, "ILSVRC", out, other, "--method", "cutmix"),
         "search-space key 'adl_drop_rate' is an option of method adl, not of cutmix (--method)")
    shutil.rmtree(sim / "metadata" / "ILSVRC" / "val")
    _bad(capsys, wsol_argv(sim, "ILSVRC", out, space_file),
         "the train-fullsup split that scores the settings is missing")
    assert not out.exists()
