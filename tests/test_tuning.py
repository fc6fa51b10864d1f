"""The tuning core (``wsl.tuning``): held-out splits, search spaces, the seeded sampler and the study loop.

The study loop is exercised with a toy task whose score is a known function of its settings (no training),
so every property is checked against a hand-computed optimum; ``test_video_tune.py`` and
``test_image_tune.py`` run the real tasks.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from wsl.tuning.space import Key, SearchSpace, float_value, int_value, str_value
from wsl.tuning.split import check_fit_classes, holdout_by_names, read_name_list, stratified_holdout
from wsl.tuning.study import Evaluation, TuneOptions, TuneTask, run_study

optuna = pytest.importorskip("optuna")


# ---------------------------------------------------------------------------- split
def test_stratified_holdout_deterministic_and_proportional():
    labels = [["a"]] * 50 + [["b"]] * 30 + [["c"]] * 20
    held = stratified_holdout(labels, 10, seed=3)
    assert np.array_equal(held, stratified_holdout(labels, 10, seed=3))
    assert not np.array_equal(held, stratified_holdout(labels, 10, seed=4))
    assert len(held) == 10 and len(set(held.tolist())) == 10 and list(held) == sorted(held)
    assert Counter(labels[i][0] for i in held) == {"a": 5, "b": 3, "c": 2}  # exactly proportional
    # largest remainders: 7 of (50, 30, 20) -> shares 3.5, 2.1, 1.4 -> 4, 2, 1
    assert Counter(labels[i][0] for i in stratified_holdout(labels, 7, seed=0)) == {"a": 4, "b": 2, "c": 1}


def test_stratified_holdout_multilabel_and_eligible():
    # videos with several actions count in their rarest class; every class keeps training samples
    labels = [["a", "rare"]] * 2 + [["a"]] * 10 + [["b"]] * 8 + [[]] * 2
    eligible = [True] * 20 + [False] * 2
    for seed in range(10):
        held = stratified_holdout(labels, 5, seed=seed, eligible=eligible)
        assert all(eligible[i] for i in held)
        kept = Counter(label for i, item in enumerate(labels) if i not in set(held) for label in item)
        assert kept["rare"] >= 1 and kept["a"] >= 1 and kept["b"] >= 1


def test_stratified_holdout_exception():
    labels = [["a"]] * 3 + [["b"]] * 3
    with pytest.raises(ValueError, match="cannot hold out 6 of the 6 training samples"):
        stratified_holdout(labels, 6)
    with pytest.raises(ValueError, match="positive integer"):
        stratified_holdout(labels, 0)
    with pytest.raises(ValueError, match="only 2 of the 6"):
        stratified_holdout(labels, 3, eligible=[True, True] + [False] * 4)
    with pytest.raises(ValueError, match="class a without training"):
        stratified_holdout([["a"]] + [["b"]] * 5, 5)
    with pytest.raises(ValueError, match="class x without training videos"):
        check_fit_classes([["x"], ["y"], ["y"]], [0], noun="video")


def test_holdout_by_names(tmp_path):
    names = ["v1", "v2", "v3", "v4"]
    path = tmp_path / "held.txt"
    path.write_text("# held-out videos\nv3\n\nv1  # first\nv3\n")
    assert read_name_list(path) == ["v3", "v1"]
    assert holdout_by_names(names, read_name_list(path)).tolist() == [0, 2]
    with pytest.raises(ValueError, match="v9 is not a sample of the training subset"):
        holdout_by_names(names, ["v9"])
    with pytest.raises(ValueError, match="all 4 training samples"):
        holdout_by_names(names, names)
    with pytest.raises(ValueError, match="class b without training"):
        holdout_by_names(names, ["v4"], labels=[["a"], ["a"], ["a"], ["b"]])
    with pytest.raises(FileNotFoundError, match="nothere"):
        read_name_list(tmp_path / "nothere.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ValueError, match="names no sample"):
        read_name_list(tmp_path / "empty.txt")


# ---------------------------------------------------------------------------- space
KEYS = {
    "x": Key("train", float_value, "a float"),
    "k": Key("train", int_value, "an integer", integer=True),
    "mode": Key("train", str_value, "a name", numeric=False),
    "n": Key("checkpoint", int_value, "checkpoints", integer=True),
    "c": Key("inference", float_value, "an inference setting"),
    "t": Key("inference", lambda v: [float_value(x) for x in (v if isinstance(v, list) else [v])], "a list"),
}


def test_space_parsing():
    space = SearchSpace.from_specs(KEYS, {"x": {"low": 1e-3, "high": 1.0, "log": True}, "k": {"low": 1, "high": 9,
                                                                                              "step": 2},
                                          "n": {"choices": [30, 10, 20]}, "c": {"low": 0.1, "high": 0.3, "step": 0.1},
                                          "mode": "a"}, {"mode": {"choices": ["a", "b"]}, "t": [0.5, 0.25]})
    assert space.searched() == ["x", "k", "n", "c", "mode"]
    assert space.searched("train") == ["x", "k", "mode"]
    assert space.checkpoints(default=7) == [10, 20, 30]  # sorted
    assert space.settings["c"].options == [0.1, 0.2, 0.3]  # a stepped range is a list of values
    assert space.grid() == [{"c": c, "t": (0.5, 0.25)} for c in (0.1, 0.2, 0.3)]
    assert space.fixed() == {"t": (0.5, 0.25)}
    assert space.to_spec()["n"] == {"choices": [10, 20, 30]}
    assert "log-uniform number in [0.001, 1]" in space.describe()[0]
    assert SearchSpace.from_specs(KEYS, {"x": 0.5}).checkpoints(default=7) == [7]
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        values = space.suggest(trial)
        assert 1e-3 <= values["x"] <= 1.0 and values["k"] in (1, 3, 5, 7, 9) and values["mode"] in ("a", "b")
        assert set(values) == {"x", "k", "mode"}
        study.tell(trial, 0.0)
    # list-valued choices go to Optuna by index and come back as values
    listed = SearchSpace.from_specs({"t": Key("train", KEYS["t"].coerce, "a list")}, {"t": {"choices": [[1, 2], 3]}})
    trial = study.ask()
    value = listed.suggest(trial)["t"]
    assert value in ((1.0, 2.0), (3.0,)) and listed.decode(trial.params)["t"] == value
    assert trial.params["t"] in (0, 1)


@pytest.mark.parametrize("spec, message", [
    ({"y": 1}, "unknown search-space key 'y'"),
    ({"x": {"low": 2, "high": 1}}, "must be below"),
    ({"x": {"low": 0, "high": 1, "log": True}}, "needs 'low' > 0"),
    ({"x": {"low": 0.1, "high": 1, "log": True, "step": 0.1}}, "'log' or 'step'"),
    ({"x": {"choices": [1], "low": 0}}, "not both"),
    ({"x": {"choices": []}}, "non-empty"),
    ({"x": {"choices": [1, 1]}}, "twice"),
    ({"x": {"high": 1}}, "both 'low' and 'high'"),
    ({"x": {"low": 0.1, "hi": 1}}, "unknown field"),
    ({"x": "fast"}, "expected a number"),
    ({"k": {"low": 1, "high": 2.5}}, "expected an integer"),
    ({"mode": {"low": 1, "high": 2}}, "is not a number"),
    ({"c": {"low": 0.1, "high": 0.5}}, "needs a list"),
    ({"n": {"low": 10, "high": 50}}, "read off checkpoints"),
])
def test_space_exception(spec, message):
    with pytest.raises(ValueError, match=message):
        SearchSpace.from_specs(KEYS, spec, sources=["space.yaml"])


def test_space_from_file(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("x: {low: 1.0e-4, high: 1.0e-2, log: true}\nn: 5\n")
    space = SearchSpace.from_file(KEYS, {"x": 0.1, "n": {"choices": [1, 2]}}, path)
    assert space.settings["x"].low == 1e-4 and space.checkpoints(default=1) == [5]
    path.write_text("learning_rate: 0.1\n")
    with pytest.raises(ValueError, match=f"{path}: unknown search-space key 'learning_rate'"):
        SearchSpace.from_file(KEYS, {}, path)


# ---------------------------------------------------------------------------- sampler
def test_trial_seeded_sampler():
    from wsl.tuning.sampler import TrialSeededTPESampler, trial_seed

    def draws(seed):
        study = optuna.create_study(direction="maximize", sampler=TrialSeededTPESampler(seed, n_startup_trials=3))
        study.optimize(lambda t: -(t.suggest_float("x", -3, 3) - 1) ** 2, n_trials=8)
        return [t.params["x"] for t in study.trials]

    first = draws(0)
    assert first == draws(0)  # reproducible
    assert first != draws(1)
    assert len(set(first)) == len(first)
    assert trial_seed(0, 1) != trial_seed(0, 2) and trial_seed(0, 1) == trial_seed(0, 1)


# ---------------------------------------------------------------------------- study loop (toy task)
TOY_KEYS = {
    "x": Key("train", float_value, "optimum at 0.01"),
    "n": Key("checkpoint", int_value, "steps", integer=True),
    "c": Key("inference", float_value, "free setting, best 0.3"),
}
TOY_SPACE = {"x": {"low": 1e-4, "high": 1.0, "log": True}, "n": {"choices": [1, 2, 3]},
             "c": {"choices": [0.1, 0.3, 0.5]}}


def toy_score(x: float, n: int, c: float) -> float:
    return 1.0 - (math.log10(x) + 2.0) ** 2 / 16 - abs(n - 2) / 10 - abs(c - 0.3)


class ToyTask(TuneTask):
    command = "toy tune"
    metric = "toy score"
    metric_key = "toy_score"
    study_name = "toy"

    def __init__(self, space=None, tag="a"):
        self.space = SearchSpace.from_specs(TOY_KEYS, TOY_SPACE, space)
        self.tag = tag

    def protocol(self):
        return {"tag": self.tag, "space": self.space.to_spec()}

    def describe(self):
        return f"toy task {self.tag}"

    def base_settings(self):
        return {"x": 1.0}, [3], [{"c": 0.5}]

    def evaluate(self, params, checkpoints, grid, work_dir, report=None):
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / "scratch.txt").write_text("trial files are removed after the trial")
        profile = []
        for n in checkpoints:
            for combo in grid:
                profile.append([{"n": n, **combo}, toy_score(params["x"], n, combo["c"])])
            if report is not None:
                report(n, max(score for _, score in profile[-len(grid):]), profile)
        settings, score = max(profile, key=lambda entry: entry[1])
        return Evaluation(score, settings, profile, [score])

    def pruner_warmup(self):
        return 2

    def best_config_text(self, settings, header):
        import yaml

        return "".join(f"# {line}\n" for line in header) + yaml.safe_dump(dict(settings))

    def worker(self):
        return ToyTask, {"tag": self.tag}


def _best_yaml(out):
    from wsl.utils.io import read_yaml

    return read_yaml(out / "best.yaml")


def test_study_smoke(tmp_path, capsys):
    out = tmp_path / "study"
    summary = run_study(ToyTask(), TuneOptions(out=out, trials=6, baseline=True))
    assert sorted(p.name for p in out.iterdir()) == ["best.yaml", "study.db", "study.db.lock", "study.png",
                                                     "study.yaml", "trials", "trials.csv"]
    assert list((out / "trials").iterdir()) == []  # work folders are removed
    study = optuna.load_study(study_name="toy", storage=f"sqlite:///{out / 'study.db'}")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len([t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]) == 6
    best = max(complete, key=lambda t: t.value)
    # the read-off settings are the profile's best: n = 2 and c = 0.3 whatever x is
    assert summary["best_score"] == pytest.approx(best.value) == pytest.approx(toy_score(best.params["x"], 2, 0.3))
    assert _best_yaml(out) == {"x": best.params["x"], "n": 2, "c": 0.3}
    assert summary["baseline"]["score"] == pytest.approx(toy_score(1.0, 3, 0.5))
    text = (out / "best.yaml").read_text()
    assert f"trial {best.number} of study 'toy'" in text and "toy score" in text and "base settings" in text
    rows = (out / "trials.csv").read_text().splitlines()
    assert rows[0] == "number,state,toy_score,x,n,c,seconds,note" and len(rows) == 7
    printed = capsys.readouterr().out
    assert "0/6 trials done" in printed and "6/6 trials done, best" in printed and "left" in printed


def test_study_continues_and_guards_its_folder(tmp_path):
    out = tmp_path / "study"
    run_study(ToyTask(), TuneOptions(out=out, trials=3, echo=None))
    # a second run on the same storage continues the study
    summary = run_study(ToyTask(), TuneOptions(out=out, trials=5, echo=None))
    assert summary["continued"] and summary["finished"] == 5
    assert run_study(ToyTask(), TuneOptions(out=out, trials=5, echo=None))["finished"] == 5  # nothing left to do
    # the same study name set up differently is refused, naming the difference
    with pytest.raises(ValueError, match="another setup .*tag"):
        run_study(ToyTask(tag="b"), TuneOptions(out=out, trials=5, echo=None))
    # another storage in this folder: refused unless --overwrite, which replaces the outputs
    other = f"sqlite:///{tmp_path / 'other.db'}"
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(ValueError, match="holds the outputs of study 'toy'.*--overwrite"):
        run_study(ToyTask(), TuneOptions(out=out, trials=2, storage=other, echo=None))
    assert sorted(p.name for p in out.iterdir()) == before and not (tmp_path / "other.db").exists()
    summary = run_study(ToyTask(tag="b"), TuneOptions(out=out, trials=2, storage=other, overwrite=True, echo=None))
    assert summary["finished"] == 2 and not (out / "study.db").exists() and (tmp_path / "other.db").is_file()
    # files that are not a study's outputs are never touched
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="notes.txt"):
        run_study(ToyTask(), TuneOptions(out=out, trials=2, overwrite=True, echo=None))


@pytest.mark.parametrize("storage, message", [
    ("sqlite:///{tmp}/missing/folder/study.db", "folder .*missing/folder not found"),
    ("not a url", "not a database URL"),
    ("sqlite://", "in-memory"),
    ("nosuchdialect://host/db", "cannot open the study storage"),
])
def test_study_storage_exception(tmp_path, storage, message):
    out = tmp_path / "study"
    with pytest.raises(ValueError, match=message):
        run_study(ToyTask(), TuneOptions(out=out, trials=2, storage=storage.format(tmp=tmp_path), echo=None))
    assert not out.exists()


def test_study_options_exception(tmp_path):
    for options, message in ((dict(trials=0), "--trials"), (dict(timeout=-1), "--timeout"), (dict(jobs=0), "--jobs")):
        with pytest.raises(ValueError, match=message):
            run_study(ToyTask(), TuneOptions(out=tmp_path / "s", echo=None, **options))
    assert not (tmp_path / "s").exists()


def test_study_jobs(tmp_path):
    """--jobs 2: a second process joins the study; the study has its trials, each once."""
    out = tmp_path / "study"
    summary = run_study(ToyTask(), TuneOptions(out=out, trials=8, jobs=2, echo=None))
    trials = optuna.load_study(study_name="toy", storage=f"sqlite:///{out / 'study.db'}").get_trials()
    assert summary["finished"] == 8 and sorted(t.number for t in trials) == list(range(8))
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)


def test_study_recovers_a_dead_process(tmp_path):
    """A trial left running by a process that died is failed, its settings run again: the count is right."""
    out = tmp_path / "study"
    run_study(ToyTask(), TuneOptions(out=out, trials=2, echo=None))
    study = optuna.load_study(study_name="toy", storage=f"sqlite:///{out / 'study.db'}")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    trial = study.ask({"x": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)})
    trial.set_user_attr("host", __import__("socket").gethostname())
    trial.set_user_attr("pid", int(dead.stdout))
    (out / "trials" / str(trial.number)).mkdir(parents=True)  # its work folder, left behind
    lost = trial.params["x"]
    run_study(ToyTask(), TuneOptions(out=out, trials=4, echo=None))
    trials = study.get_trials()
    assert trials[trial.number].state.name == "FAIL"
    retry = [t for t in trials if t.user_attrs.get("retry_of") == trial.number]
    assert len(retry) == 1 and retry[0].params["x"] == lost and retry[0].state.name in ("COMPLETE", "PRUNED")
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 4
    assert list((out / "trials").iterdir()) == []
    rows = (out / "trials.csv").read_text().splitlines()
    assert f"interrupted, retried as trial {retry[0].number}" in rows[trial.number + 1]


def test_study_timeout_and_small_study_picture(tmp_path, capsys):
    out = tmp_path / "study"
    summary = run_study(ToyTask(), TuneOptions(out=out, trials=50, timeout=1e-6))
    assert summary["finished"] == 0 and summary["importances"] is None
    assert not (out / "best.yaml").exists() and (out / "study.png").is_file() and (out / "trials.csv").is_file()
    assert "timeout" in capsys.readouterr().out
    summary = run_study(ToyTask(), TuneOptions(out=out, trials=1, echo=None))
    assert summary["finished"] == 1 and summary["importances"] is None  # too few for importance: no error


def test_study_importance():
    from wsl.tuning.report import setting_importances

    task = ToyTask()
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(12):
        trial = study.ask()
        params = task.space.suggest(trial)
        profile = [[{"n": n, "c": c}, toy_score(params["x"], n, c)] for n in (1, 2, 3) for c in (0.1, 0.3, 0.5)]
        trial.set_user_attr("profile", profile)
        study.tell(trial, max(score for _, score in profile))
    importances, reason = setting_importances(study.trials, task.space)
    assert reason == "" and set(importances) == {"x", "n", "c"}
    assert sum(importances.values()) == pytest.approx(1.0)


# ---------------------------------------------------------------------------- public Optuna API only
def _private_optuna_uses(source: str) -> list:
    """``(line, text)`` of each private Optuna name a module uses: a private module or name imported from
    optuna, a private attribute of an optuna name, or (in a module that imports optuna) a private attribute
    of any object but ``self``/``cls`` (a study's or trial's internals)."""
    import ast

    tree = ast.parse(source)
    found, optuna_names, imports_optuna = [], set(), False
    private = lambda name: name.startswith("_") and not (name.startswith("__") and name.endswith("__"))  # noqa: E731
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "optuna":
                    imports_optuna = True
                    optuna_names.add((alias.asname or alias.name).split(".")[0])
                    if any(private(part) for part in alias.name.split(".")):
                        found.append((node.lineno, f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "optuna":
            imports_optuna = True
            for alias in node.names:
                optuna_names.add(alias.asname or alias.name)
                if any(private(part) for part in node.module.split(".")) or private(alias.name):
                    found.append((node.lineno, f"from {node.module} import {alias.name}"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            root = base.id if isinstance(base, ast.Name) else None
            if root in optuna_names or (imports_optuna and not (isinstance(node.value, ast.Name)
                                                                and node.value.id in ("self", "cls"))):
                found.append((node.lineno, ast.unparse(node)))
    return found


def test_private_optuna_detector():
    bad = ("import optuna\nfrom optuna.storages._cached_storage import _CachedStorage\n"
           "def f(study, trial):\n    study._storage.set_trial_state_values(trial._trial_id, None)\n"
           "    return optuna._imports\n")
    texts = [text for _, text in _private_optuna_uses(bad)]
    assert "from optuna.storages._cached_storage import _CachedStorage" in texts
    assert {"study._storage", "trial._trial_id", "optuna._imports"} <= set(texts)
    good = "import optuna\nclass A:\n    def f(self):\n        return self._inner, optuna.storages.RDBStorage\n"
    assert _private_optuna_uses(good) == []
    assert _private_optuna_uses("def f(x):\n    return x._private\n") == []  # no optuna in this module


def test_public_optuna_api_only():
    """No module of the project reaches into Optuna's private modules, names or object internals."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    used = {f"{path.relative_to(root)}:{line}: {text}"
            for package in ("wsl", "wsl_video", "wsl_image") for path in sorted((root / package).rglob("*.py"))
            for line, text in _private_optuna_uses(path.read_text(encoding="utf-8"))}
    assert not used, sorted(used)


# ---------------------------------------------------------------------------- options and the driver
def test_tune_options_from_the_command_line(tmp_path):
    import argparse

    from wsl.tuning.cli import add_tune_arguments, tune_options

    parser = argparse.ArgumentParser()
    add_tune_arguments(parser, "video", "default: a fifth")
    args = parser.parse_args(["--out", "o", "--held-out-list", "h.txt", "--split-seed", "3", "--seeds", "1", "2",
                              "--trials", "7", "--timeout", "60", "--storage", "sqlite:///s.db", "--study-name", "n",
                              "--space", "s.yaml", "--jobs", "2", "--baseline", "--no-prune", "--sampler-seed", "5",
                              "--overwrite", "--quiet"])
    assert tune_options(args) == TuneOptions(
        out="o", held_out=None, held_out_list="h.txt", split_seed=3, seeds=[1, 2], space_file="s.yaml", trials=7,
        timeout=60.0, storage="sqlite:///s.db", study_name="n", sampler_seed=5, prune=False, jobs=2, overwrite=True,
        baseline=True, echo=None, progress=False)
    defaults = tune_options(parser.parse_args(["--out", "o"]))
    assert defaults == TuneOptions(out="o", progress=True)  # the flags' defaults are the options' defaults


class SplitToyTask(ToyTask):
    """A toy task built by the driver from a config and the options' split, seeds and space."""

    def __init__(self, config, *, held_out, held_out_list, split_seed, seeds, space_file):
        super().__init__(tag=config)
        self.split = (held_out, held_out_list, split_seed, list(seeds), space_file)

    def protocol(self):
        return super().protocol() | {"split": list(self.split)}

    def worker(self):
        raise NotImplementedError


def test_tune_driver(tmp_path):
    from wsl.tuning import tune

    out = tmp_path / "study"
    summary = tune(SplitToyTask, "c", TuneOptions(out=out, trials=2, held_out=4, split_seed=1, seeds=[2, 3],
                                                  echo=None))
    study = optuna.load_study(study_name="toy", storage=f"sqlite:///{out / 'study.db'}")
    assert summary["finished"] == 2 and study.user_attrs["protocol"]["tag"] == "c"
    assert study.user_attrs["protocol"]["split"] == [4, None, 1, [2, 3], None]
    # the output folder with fields as keywords, or fields replacing those of the options: the same study
    assert tune(SplitToyTask, "c", out, trials=3, held_out=4, split_seed=1, seeds=[2, 3], echo=None)["finished"] == 3
    options = TuneOptions(out=out, trials=3, held_out=4, split_seed=1, seeds=[2, 3], echo=None)
    assert tune(SplitToyTask, "c", options, trials=4)["finished"] == 4 and options.trials == 3
