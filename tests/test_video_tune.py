"""``wsl-video tune``: the held-out split, a study that never reads the test subset, best.yaml through
``train --config``, two processes on one SQLite storage, resumption after a kill, bad input, the demo's
settings."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from wsl_video.cli import main

optuna = pytest.importorskip("optuna")

ROOT = Path(__file__).resolve().parents[1]
SPACE = {"iterations": {"choices": [4, 8]}, "batch_size": 4, "video_scores": {"choices": ["sampled"]},
         "cas_thresholds": {"choices": [0.2, 0.4]}}
QUICK = ["--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def bas_root(tmp_path_factory):
    """thumos14-sim written in the BaS-Net layout: 12 training and 12 test videos, 8-d features."""
    root = tmp_path_factory.mktemp("tune-data") / "bas"
    assert main(["make-sim", "--layout", "bas", "--videos", "12", "--feature-dim", "8", "--out", str(root)]) == 0
    return root


@pytest.fixture(scope="module")
def space_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tune-space") / "space.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    return path


def without_test(root: Path, dest: Path) -> Path:
    """A copy of a BaS-layout root with every test file and test annotation removed."""
    shutil.copytree(root, dest)
    shutil.rmtree(dest / "features" / "test")
    for name in ("split_test.txt", "Ambiguous_test.txt"):
        (dest / name).unlink(missing_ok=True)
    gt = json.loads((dest / "gt.json").read_text())
    gt["database"] = {name: entry for name, entry in gt["database"].items() if entry["subset"] != "test"}
    (dest / "gt.json").write_text(json.dumps(gt))
    return dest


def tune_argv(root, out, space_file, *extra):
    return ["tune", "--dataset", "thumos14", "--data-root", str(root), "--layout", "bas", "--held-out", "3",
            "--out", str(out), "--space", str(space_file), "--trials", "2", *QUICK, *extra]


def read_trials(out: Path) -> list:
    with open(out / "trials.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_split_deterministic_stratified_and_disjoint_from_test(bas_root):
    from wsl_video.config import RunConfig
    from wsl_video.data.held_out import split_held_out
    from wsl_video.data.opening import open_data

    config = RunConfig()
    config.data.dataset, config.data.data_root, config.data.layout = "thumos14", str(bas_root), "bas"
    train = open_data(config.resolved(), "train")
    fit, held = split_held_out(train, 4, seed=1)
    names = [v.name for v in held.videos]
    assert names == [v.name for v in split_held_out(train, 4, seed=1)[1].videos]
    assert {tuple(v.name for v in split_held_out(train, 4, seed=s)[1].videos) for s in range(6)} != {tuple(names)}
    assert sorted(names + [v.name for v in fit.videos]) == sorted(v.name for v in train.videos)
    test = open_data(config.resolved(), "test")
    assert not set(names) & {v.name for v in test.videos}
    assert all(v.annotations for v in held.videos)
    # every class of the training subset keeps training videos
    assert {c for v in train.videos for c in v.labels} == {c for v in fit.videos for c in v.labels}
    listed = split_held_out(train, names=names[:2])[1]
    assert [v.name for v in listed.videos] == [v.name for v in train.videos if v.name in names[:2]]
    with pytest.raises(ValueError, match="video_test_0000004 is not a video of the training subset"):
        split_held_out(train, names=["video_test_0000004"])


def test_tune_never_reads_the_test_subset(bas_root, space_file, tmp_path, monkeypatch, capsys):
    """Tune on a root whose test features and annotations are gone: same study as on the full root."""
    import wsl_video.data as data

    opened = []
    real = data.open_dataset

    def spy(dataset, subset="train", **kwargs):
        opened.append(subset)
        return real(dataset, subset, **kwargs)

    monkeypatch.setattr(data, "open_dataset", spy)
    stripped = without_test(bas_root, tmp_path / "stripped")
    assert main(tune_argv(stripped, tmp_path / "a", space_file)) == 0
    assert main(tune_argv(bas_root, tmp_path / "b", space_file)) == 0
    assert set(opened) == {"train"}
    rows_a, rows_b = read_trials(tmp_path / "a"), read_trials(tmp_path / "b")
    assert len(rows_a) == 2
    strip = ("seconds",)
    assert [{k: v for k, v in row.items() if k not in strip} for row in rows_a] == \
           [{k: v for k, v in row.items() if k not in strip} for row in rows_b]
    assert "the test subset is not read" in (tmp_path / "a" / "best.yaml").read_text()


def test_best_yaml_round_trips_through_train(bas_root, space_file, tmp_path):
    from wsl_video.config import config_to_dict, load_config

    out = tmp_path / "tune"
    assert main(tune_argv(bas_root, out, space_file, "--aggregator", "weighted_sum", "--seeds", "0", "1")) == 0
    best = out / "best.yaml"
    values = yaml.safe_load(best.read_text())
    config = load_config(best)
    assert config_to_dict(config) == values and config.resolved() == config  # complete and resolved
    assert values["model"]["aggregator"] == "weighted_sum" and values["data"]["data_root"] == str(bas_root)
    assert values["train"]["iterations"] in (4, 8) and values["train"]["batch_size"] == 4
    assert values["inference"]["cas_thresholds"] in ([0.2], [0.4])
    row = max((r for r in read_trials(out) if r["state"] == "complete"),
              key=lambda r: float(r["held_out_average_mAP_0.1_0.7"]))
    assert float(row["lr"]) == pytest.approx(values["train"]["lr"], rel=1e-5)
    assert int(row["iterations"]) == values["train"]["iterations"]
    run = tmp_path / "run"
    assert main(["train", "--config", str(best), "--out", str(run), "--no-eval", "--quiet"]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text()) == values
    assert "iteration {0}/{0}".format(values["train"]["iterations"]) in (run / "train.log").read_text()


@pytest.mark.parametrize("method", ["maan", "delu"])
def test_checkpoints_continue_one_run_exactly(method, tmp_path):
    """Scores read off a run at successive checkpoints equal those of runs trained straight to each length;
    for a method whose loss follows a schedule over the whole run (DELU's curriculum), only because the tuner
    trains each length from scratch."""
    from wsl_video.config import RunConfig
    from wsl_video.run import load_run
    from wsl_video.training import train
    from wsl_video.tune import VideoTuneTask, apply_settings

    config = RunConfig()
    config.data.dataset, config.data.sim = "thumos14-sim", {"videos": 12, "feature_dim": 8}
    config.model.method = method
    config.train.device, config.train.batch_size = "cpu", 4
    if method != "maan":
        config.train.num_segments = 16
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    task = VideoTuneTask(config, held_out=3, space_file=str(space))
    grid = task.space.grid()
    params = {"lr": 1e-3, "weight_decay": 1e-4, "sparsity_weight": 1e-3}
    evaluation = task.evaluate(params, [4, 8], grid, tmp_path / "trial")
    log = (tmp_path / "trial" / "seed0" / "train.log").read_text()
    assert ("resumed at iteration 4" in log) == (method == "maan")
    for iterations in (4, 8):
        straight = apply_settings(task.config, {**params, "iterations": iterations})
        train(straight, tmp_path / f"straight{iterations}", evaluate=False, progress=False, train_set=task.fit)
        _, model, _ = load_run(tmp_path / f"straight{iterations}")
        scores = task.score_grid(model, straight, grid)
        read_off = [score for settings, score in evaluation.profile if settings["iterations"] == iterations]
        assert read_off == scores
    import torch

    trial = torch.load(tmp_path / "trial" / "seed0" / "checkpoint.pt", weights_only=True)["model"]
    straight = torch.load(tmp_path / "straight8" / "checkpoint.pt", weights_only=True)["model"]
    assert trial.keys() == straight.keys()
    assert all(torch.equal(trial[key], straight[key]) for key in trial)  # the scored model is the 8-iteration run
    assert evaluation.score == max(score for _, score in evaluation.profile)


def _python():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    return [sys.executable, "-m", "wsl_video"], env


def _sim_argv(out, storage, trials):
    return ["tune", "--dataset", "thumos14-sim", "--sim", "videos=16", "--sim", "feature_dim=8", "--held-out", "4",
            "--out", str(out), "--storage", storage, "--trials", str(trials), "--device", "cpu"]


def test_two_processes_share_one_study(tmp_path):
    """Two processes on one SQLite storage finish the study together: no trial lost, none twice."""
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({**SPACE, "iterations": {"choices": [40, 80]}}))
    out, storage = tmp_path / "study", f"sqlite:///{tmp_path / 'shared.db'}"
    command, env = _python()
    argv = command + _sim_argv(out, storage, 8) + ["--space", str(space)]
    processes = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr
    study = optuna.load_study(study_name="maa", storage=storage)
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(8))
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    assert len({t.params["lr"] for t in trials}) == 8  # no setting drawn twice
    assert {t.user_attrs["pid"] for t in trials} == {p.pid for p in processes}  # both worked on it
    rows = read_trials(out)  # the process that stopped last wrote the whole study
    assert [int(r["number"]) for r in rows] == list(range(8)) and {r["state"] for r in rows} <= {"complete",
                                                                                                     "pruned"}
    assert "maa on thumos14-sim (feature_dim=8, videos=16): " in (out / "best.yaml").read_text()  # the sim named


def test_resume_after_kill(tmp_path):
    """Kill a study mid-trial; run it again: the interrupted trial runs again and the count and best are right."""
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({**SPACE, "iterations": {"choices": [150, 300]}}))
    out = tmp_path / "study"
    storage = f"sqlite:///{out / 'study.db'}"
    command, env = _python()
    # the study runs in slices of 0.1 s and is frozen (SIGSTOP) while polled, so however slow a poll is on a
    # loaded machine, the trial seen running is still running when it is killed
    argv = command + _sim_argv(out, storage, 6) + ["--space", str(space)]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killed, reader = None, None
    deadline = time.time() + 240
    try:
        while time.time() < deadline and process.poll() is None:
            time.sleep(0.1)
            if not (out / "study.db").is_file():
                continue
            process.send_signal(signal.SIGSTOP)
            try:
                reader = reader or optuna.storages.RDBStorage(  # never creates tables the study is writing
                    storage, engine_kwargs={"connect_args": {"timeout": 1}}, skip_table_creation=True)
                trials = optuna.load_study(study_name="maa", storage=reader).get_trials()
            except Exception:  # the study is being created, or was frozen while writing
                trials = []
            finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
            running = [t for t in trials if t.state.name == "RUNNING" and t.params]  # mid-trial: settings drawn
            if finished and running:
                process.send_signal(signal.SIGKILL)
                killed = running[0]
                break
            process.send_signal(signal.SIGCONT)
    finally:
        if killed is None and process.poll() is None:
            process.send_signal(signal.SIGCONT)
    stderr = process.communicate(timeout=120)[1]
    assert killed is not None, f"the study ended before it could be interrupted: {stderr[-2000:]}"
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    trials = optuna.load_study(study_name="maa", storage=storage).get_trials()
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 6
    killed = trials[killed.number]  # as stored when it died
    assert killed.state.name == "FAIL"
    retry = [t for t in trials if t.user_attrs.get("retry_of") == killed.number]
    # the retry runs the settings the killed trial had drawn (all of them, unless it died between two draws)
    assert len(retry) == 1 and killed.params and retry[0].params.items() >= killed.params.items()
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    best = max(complete, key=lambda t: t.value)
    text = (out / "best.yaml").read_text()
    assert f"trial {best.number} of study 'maa'" in text and "6 finished trials" in text
    assert f"{100 * best.value:.2f}%" in text
    rows = read_trials(out)
    assert sum(r["state"] in ("complete", "pruned") for r in rows) == 6
    assert f"retried as trial {retry[0].number}" in rows[killed.number]["note"]
    assert "continuing, " in result.stdout


def _bad(capsys, argv, *expected):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("wsl-video tune: error:"), err
    for text in expected:
        assert text in err, err


def test_exception(bas_root, space_file, tmp_path, capsys):
    out = tmp_path / "out"

    def argv(*extra, space=space_file):
        return tune_argv(bas_root, out, space, *extra)

    _bad(capsys, argv("--held-out", "12"), "cannot hold out 12 of the 12 training videos")
    _bad(capsys, argv("--held-out", "0"), "positive integer")
    # a held-out list that takes every video of a class
    from wsl_video.config import RunConfig
    from wsl_video.data.opening import open_data

    config = RunConfig()
    config.data.dataset, config.data.data_root, config.data.layout = "thumos14", str(bas_root), "bas"
    videos = open_data(config.resolved(), "train").videos
    label = videos[0].labels[0]
    listed = tmp_path / "held.txt"
    listed.write_text("\n".join(v.name for v in videos if label in v.labels) + "\n")
    _bad(capsys, [a for a in argv("--held-out-list", str(listed)) if a not in ("--held-out", "3")],
         f"class {label} without training videos")
    listed.write_text("video_validation_9999999\n")
    _bad(capsys, [a for a in argv("--held-out-list", str(listed)) if a not in ("--held-out", "3")],
         "video_validation_9999999 is not a video of the training subset")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}\n")
    _bad(capsys, argv(space=unknown), "unknown search-space key 'learning_rate'", str(unknown))
    l1 = tmp_path / "l1.yaml"
    l1.write_text("sparsity_weight: {low: 0.01, high: 1.0, log: true}\n")
    _bad(capsys, argv("--aggregator", "mean", space=l1), "'mean' has no attention", "sparsity_weight")
    _bad(capsys, argv("--storage", f"sqlite:///{tmp_path}/no/such/folder/s.db"), "cannot open the study storage")
    _bad(capsys, argv("--storage", "postgresql://nobody@127.0.0.1:9/none"), "cannot open the study storage")
    _bad(capsys, argv("--storage", "garbage"), "cannot open the study storage")
    _bad(capsys, argv("--trials", "0"), "--trials")
    _bad(capsys, argv("--aggregator", "nope"), "nope")
    bad_value = tmp_path / "bad_value.yaml"
    bad_value.write_text("cas_thresholds: {choices: [0.2, 1.5]}\n")
    _bad(capsys, argv(space=bad_value), "cas_thresholds", "(0, 1)")
    assert not out.exists()  # nothing written by any of them
    # a folder holding another study's outputs, or files of its own
    assert main(argv()) == 0
    capsys.readouterr()
    _bad(capsys, argv("--storage", f"sqlite:///{tmp_path / 'elsewhere.db'}"), "holds the outputs of study 'maa'")
    assert not (tmp_path / "elsewhere.db").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    _bad(capsys, tune_argv(bas_root, other, space_file), "notes.txt")


def test_progress_lines(bas_root, space_file, tmp_path, capsys):
    argv = [a for a in tune_argv(bas_root, tmp_path / "out", space_file, "--trials", "3") if a != "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "0/3 trials done" in printed and "1/3 trials done, best" in printed and "left" in printed
    assert "3/3 trials done" in printed and "iterations: one of 4, 8" in printed
    assert "train with them on every training sample: wsl-video train --config" in printed


@pytest.mark.parametrize("method", ["basnet", "co2net", "delu"])
def test_demo_space_contains_the_published_settings(method):
    """A method's demo space reaches its authors' learning rate, weight decay, video scores and CAS thresholds,
    with the iterations of every other row's space."""
    from wsl.tuning.space import SearchSpace
    from wsl_video.commands import demo
    from wsl_video.config import RunConfig
    from wsl_video.tune import DEFAULT_SPACE, VIDEO_KEYS

    path = demo.demo_space(method)
    assert path == demo.settings_folder() / method / "space.yaml"
    space = SearchSpace.from_file(VIDEO_KEYS, DEFAULT_SPACE, path).settings
    shared = SearchSpace.from_file(VIDEO_KEYS, DEFAULT_SPACE, demo.demo_space("maan")).settings
    config = RunConfig()
    config.data.dataset, config.model.method = "thumos14-sim", method
    config = config.resolved()
    for name in ("lr", "weight_decay"):
        value = getattr(config.train, name)
        assert space[name].low < value < space[name].high, (name, value)
    assert config.inference.video_scores in space["video_scores"].options
    assert [list(v) if isinstance(v, (list, tuple)) else [v] for v in space["cas_thresholds"].options].count(
        list(config.inference.cas_thresholds)) == 1
    assert space["iterations"].options == shared["iterations"].options
    assert demo.demo_space("wtalc") == demo.demo_space("maan") == demo.settings_folder() / "space.yaml"


def test_demo_settings():
    """The demo's defaults are the best.yaml files of wsl-video tune shipped with the package."""
    import argparse

    from wsl_video.commands import demo
    from wsl_video.config import load_config

    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    defaults = parser.parse_args([])
    folder = demo.settings_folder()
    for name in demo.AGGREGATORS:
        path = folder / f"{name}.yaml"
        assert path.is_file(), path
        assert path.read_text().startswith("# chosen by wsl-video tune: trial ")
        stored = load_config(path).resolved()
        assert stored.data.dataset == "thumos14-sim" and stored.model.aggregator == name
        config = demo.demo_config(name, 0, defaults)
        assert (config.train.iterations, config.train.lr, config.train.weight_decay, config.train.sparsity_weight,
                config.inference.video_scores, config.inference.cas_thresholds) == (
            stored.train.iterations, stored.train.lr, stored.train.weight_decay, stored.train.sparsity_weight,
            stored.inference.video_scores, stored.inference.cas_thresholds)
        assert demo.demo_settings(name, defaults)["iterations"] <= 3000  # the demo stays fast
    assert demo.demo_settings("mean", defaults) == demo.FALLBACK
    for name in ("topk_mean", "maa"):  # W-TALC's packaged rows: its own config with the tuned settings
        path = demo.settings_path(name, folder, "wtalc")
        text = path.read_text()
        assert text.startswith("# chosen by wsl-video tune: trial ") and "sqlite:////" not in text  # no absolute path
        stored = load_config(path).resolved()
        config = demo.demo_config(name, 0, defaults, "wtalc")
        assert (config.model.method, config.model.aggregator, config.data.streams) == ("wtalc", name, "joint")
        assert (config.train.iterations, config.train.lr, config.train.batch_size, config.inference.cas_thresholds) == (
            stored.train.iterations, stored.train.lr, stored.train.batch_size, stored.inference.cas_thresholds)
        assert demo.demo_settings(name, defaults, "wtalc")["source"] == "tuned"
        assert stored.train.device == "auto"
    assert demo.demo_settings("maa", defaults, "delu")["source"] == "defaults"  # none packaged: the defaults
    given = parser.parse_args(["--iterations", "7", "--sparsity-weight", "0.5", "--weight-decay", "0.1"])
    assert demo.demo_settings("maa", given) == {"iterations": 7, "weight_decay": 0.1, "sparsity": 0.5}
    space = yaml.safe_load((folder / "space.yaml").read_text())
    assert space == {"iterations": {"choices": [500, 1000, 2000, 3000]}}


def test_demo_tune_searches_each_method_in_its_space(tmp_path, monkeypatch):
    """``demo --tune`` hands each row's study its method's space (``--tune-space`` wins when given)."""
    import argparse

    import wsl_video.tune
    from wsl_video.commands import demo

    used = {}

    def fake_tune(config, out, *, space_file, **kwargs):
        used[(config.model.method, config.model.aggregator)] = Path(space_file)
        Path(out).mkdir(parents=True)
        (Path(out) / "best.yaml").write_text("{}\n")
        return {"best_score": 0.5}

    monkeypatch.setattr(wsl_video.tune, "tune", fake_tune)
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    rows = demo.demo_rows(["maan", "wtalc", "delu"], ["maa"])
    demo.tune_settings(parser.parse_args(["--out", str(tmp_path / "a"), "--quiet"]), rows)
    folder = demo.settings_folder()
    assert used == {("maan", "maa"): folder / "space.yaml", ("wtalc", "topk_mean"): folder / "space.yaml",
                    ("wtalc", "maa"): folder / "space.yaml", ("delu", "topk_mean"): folder / "delu" / "space.yaml",
                    ("delu", "maa"): folder / "delu" / "space.yaml"}
    own = tmp_path / "mine.yaml"
    demo.tune_settings(parser.parse_args(["--out", str(tmp_path / "b"), "--tune-space", str(own), "--quiet"]), rows)
    assert set(used.values()) == {own}


def test_demo_tune_small(space_file, tmp_path, capsys):
    out, saved = tmp_path / "demo", tmp_path / "saved"
    argv = ["demo", "--tune", "--trials", "2", "--tune-seeds", "0", "--tune-space", str(space_file), "--aggregators",
            "maa", "--sim", "videos=12", "--sim", "feature_dim=8", "--plots", "0", "--out", str(out),
            "--save-settings", str(saved), *QUICK]
    assert main(argv) == 0
    best = yaml.safe_load((out / "tune" / "maa" / "best.yaml").read_text())
    assert yaml.safe_load((saved / "maa.yaml").read_text()) == best
    run = yaml.safe_load((out / "runs" / "maa" / "seed0" / "config.yaml").read_text())
    assert run["train"]["iterations"] == best["train"]["iterations"] and run["train"]["lr"] == best["train"]["lr"]
    assert run["inference"] == best["inference"]
    assert (out / "tune" / "maa" / "study.png").is_file() and "| MAAN |" in capsys.readouterr().out
    assert main(["demo", "--save-settings", str(saved), "--out", str(out)]) == 2
