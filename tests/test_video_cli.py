import json

import pytest
import yaml

from wsl.utils.io import atomic_write_json
from wsl_video.cli import main
from wsl_video.detections import load_detections, write_detections

TINY = ["--iterations", "12", "--batch-size", "4", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory):
    """thumos14-sim written to disk in the W-TALC layout, read back as THUMOS14."""
    root = tmp_path_factory.mktemp("thumos14")
    assert main(["make-sim", "--layout", "wtalc", "--videos", "8", "--feature-dim", "16", "--out", str(root)]) == 0
    return root


@pytest.fixture(scope="module")
def trained_run(sim_root, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "maa"
    argv = ["train", "--dataset", "thumos14", "--data-root", str(sim_root), "--layout", "wtalc", "--out", str(run)]
    assert main(argv + TINY) == 0
    return run


def test_train_detect_evaluate(trained_run, sim_root, tmp_path):
    for name in ("config.yaml", "train.log", "checkpoint.pt", "detections.json", "metrics.json"):
        assert (trained_run / name).is_file(), name
    metrics = json.loads((trained_run / "metrics.json").read_text())
    # detect again from the run directory: same detections as at the end of training
    output = tmp_path / "detections.json"
    assert main(["detect", "--run", str(trained_run), "--out", str(output), "--quiet"]) == 0
    assert load_detections(output) == load_detections(trained_run / "detections.json")
    # the evaluate command on those detections reproduces the run's metrics
    from wsl_video.config import load_config
    from wsl_video.data.opening import open_data

    test_set = open_data(load_config(trained_run / "config.yaml").resolved(), "test")
    ground_truth = test_set.ground_truth()
    atomic_write_json(tmp_path / "gt.json", ground_truth)
    # 8 test videos do not cover every class: keep detections of annotated classes, as the run does
    present = {a["label"] for entry in ground_truth["database"].values() for a in entry["annotations"]}
    results, video_scores = load_detections(output)
    results = {video: [d for d in rows if d["label"] in present] for video, rows in results.items()}
    video_scores = {video: {k: v for k, v in row.items() if k in present} for video, row in video_scores.items()}
    write_detections(tmp_path / "present.json", results, video_scores=video_scores)
    ambiguous = sim_root / "Thumos14reduced-Annotations" / "Ambiguous_test.txt"
    scores = tmp_path / "scores.json"
    argv = ["evaluate", "--ground-truth", str(tmp_path / "gt.json"), "--predictions", str(tmp_path / "present.json"),
            "--ambiguous", str(ambiguous), "--out", str(scores)]
    assert main(argv) == 0
    evaluated = json.loads(scores.read_text())
    assert evaluated["mAP"] == pytest.approx(metrics["mAP"])
    assert evaluated["classification_mAP"] == pytest.approx(metrics["cls_mAP"])


def test_plot(trained_run, tmp_path):
    png = tmp_path / "cas.png"
    results, _ = load_detections(trained_run / "detections.json")
    video = sorted(results)[0]
    assert main(["plot", "--run", str(trained_run), str(trained_run), "--video", video, "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_config_and_flags(sim_root, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"model": {"aggregator": "norm"}, "train": {"iterations": 3, "batch_size": 2}}))
    run = tmp_path / "run"
    argv = ["train", "--dataset", "thumos14-sim", "--sim", "videos=6", "--sim", "feature_dim=8", "--config",
            str(config), "--iterations", "4", "--out", str(run), "--no-eval", "--quiet", "--device", "cpu"]
    assert main(argv) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["aggregator"] == "norm"
    assert saved["train"]["iterations"] == 4 and saved["train"]["batch_size"] == 2
    assert saved["data"]["sim"] == {"videos": 6, "feature_dim": 8}
    assert not (run / "metrics.json").exists()
    # resume reads the run's own config; --iterations extends it
    assert main(["train", "--out", str(run), "--resume", "--iterations", "6", "--no-eval", "--quiet"]) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["aggregator"] == "norm" and saved["train"]["iterations"] == 6


def test_demo(tmp_path):
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--iterations", "3", "--batch-size", "2", "--aggregators", "maa",
            "weighted_sum", "--seeds", "0", "1", "--sim", "videos=6", "--sim", "feature_dim=8", "--plots", "1",
            "--device", "cpu", "--quiet"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"units", "maa", "weighted_sum"}
    assert summary["units"].startswith("fractions in [0, 1]")  # as the metrics files; the table is in percent
    for entry in (summary["maa"], summary["weighted_sum"]):
        assert all(0.0 <= value <= 1.0 for value in entry["mAP"])
        assert entry["seeds"] == 2 and len(entry["mAP"]) == len(entry["mAP_std"]) == 9
        assert set(entry["per_seed"]) == {"0", "1"}
    assert len(list((out / "plots").glob("*.png"))) == 1
    assert "MAAN" in (out / "table.md").read_text()
    assert (out / "runs" / "weighted_sum" / "seed1" / "metrics.json").is_file()


def test_demo_methods(tmp_path, capsys):
    """--methods: maan with its aggregators, every other method with its original pooling and with maa."""
    out = tmp_path / "demo"
    argv = ["demo", "--methods", "maan", "wtalc", "--aggregators", "maa", "--out", str(out), "--iterations", "3",
            "--seeds", "0", "--sim", "videos=6", "--sim", "feature_dim=8", "--plots", "1", "--device", "cpu",
            "--quiet"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"units", "maan/maa", "wtalc/topk_mean", "wtalc/maa"}
    assert summary["maan/maa"]["settings"]["source"] == "tuned"  # the packaged resources/demo/maa.yaml
    assert summary["wtalc/maa"]["settings"]["source"] == "tuned"  # resources/demo/wtalc/maa.yaml
    for key, (method, aggregator, batch) in {"maan/maa": ("maan", "maa", 16), "wtalc/topk_mean": (
            "wtalc", "topk_mean", 10), "wtalc/maa": ("wtalc", "maa", 10)}.items():
        config = yaml.safe_load((out / "runs" / key / "seed0" / "config.yaml").read_text())
        assert (config["model"]["method"], config["model"]["aggregator"]) == (method, aggregator)
        assert config["train"]["iterations"] == 3 and config["train"]["batch_size"] == batch
        assert config["data"]["streams"] == ("two" if method == "maan" else "joint")
        metrics = json.loads((out / "runs" / key / "seed0" / "metrics.json").read_text())
        assert summary[key]["cls_mAP"] == metrics["cls_mAP"]
    table = (out / "table.md").read_text().splitlines()
    assert table[0].startswith("| Method + pooling (settings) | 0.1 |") and len(table) == 5
    assert [line.split(" | ")[0] for line in table[2:]] == [
        "| maan + maa (original, tuned)", "| wtalc + topk_mean (original, tuned)",
        "| wtalc + maa (plugged in, tuned)"]
    assert len(list((out / "plots").glob("*.png"))) == 1


def test_demo_rows_aggregators_reach_every_method():
    """--aggregators: the poolings of the maan rows and, beside the original one, of every other method's."""
    from wsl_video.commands.demo import AGGREGATORS, demo_rows

    assert [row.aggregator for row in demo_rows(["maan"])] == list(AGGREGATORS)
    assert [row.key for row in demo_rows(["maan", "wtalc"])] == [
        *(f"maan/{name}" for name in AGGREGATORS), "wtalc/topk_mean", "wtalc/maa"]
    rows = demo_rows(["wtalc", "maan", "delu"], ["linear_softmax", "topk_mean", "maa"])
    assert [(row.key, row.original) for row in rows] == [
        ("wtalc/topk_mean", True), ("wtalc/linear_softmax", False), ("wtalc/maa", False),
        ("maan/linear_softmax", False), ("maan/topk_mean", False), ("maan/maa", True),
        ("delu/topk_mean", True), ("delu/linear_softmax", False), ("delu/maa", False)]
    assert [row.key for row in demo_rows(["maan"], ["autopool", "maa"])] == ["autopool", "maa"]


def test_demo_unknown_method(capsys, tmp_path):
    from wsl_video.methods import REGISTRY

    out = tmp_path / "demo"
    assert main(["demo", "--methods", "maan", "wtalcc", "--out", str(out)]) == 2
    available = ", ".join(REGISTRY.names(include_aliases=True))
    assert capsys.readouterr().err == (f"wsl-video demo: error: unknown method 'wtalcc'; did you mean 'wtalc'? "
                                       f"available: {available}\n")
    assert main(["demo", "--methods", "nothing", "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"wsl-video demo: error: unknown method 'nothing'; available: {available}\n"
    assert not out.exists()  # refused before anything is written


def _bad(capsys, argv, *expected):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"wsl-video {argv[0]}: error:"), err
    for text in expected:
        assert text in err, err


def test_exception(capsys, tmp_path, trained_run):
    out = ["--out", str(tmp_path / "run"), "--quiet"]
    _bad(capsys, ["train", "--dataset", "thumos14", "--data-root", str(tmp_path / "nowhere")] + out, "nowhere")
    _bad(capsys, ["train", "--dataset", "thumos14-sim", "--aggregator", "nope"] + out, "nope")
    (tmp_path / "bad.yaml").write_text("train:\n  iterationz: 3\n")
    _bad(capsys, ["train", "--config", str(tmp_path / "bad.yaml")] + out, "iterationz")
    _bad(capsys, ["train", "--config", str(tmp_path / "missing.yaml")] + out, "missing.yaml")
    _bad(capsys, ["train", "--dataset", "thumos14-sim", "--sim", "warp=9"] + out, "warp")
    _bad(capsys, ["train", "--dataset", "thumos14-sim", "--sim", "novalue"] + out, "novalue")
    _bad(capsys, ["train", "--dataset", "thumos14-sim", "--resume"] + out, "checkpoint")
    _bad(capsys, ["train", "--dataset", "thumos14-sim", "--iterations", "0"] + out, "iterations")
    _bad(capsys, ["detect", "--run", str(tmp_path / "norun"), "--out", str(tmp_path / "d.json")], "norun")
    _bad(capsys, ["plot", "--run", str(trained_run), "--video", "video_test_9999999", "--out",
                  str(tmp_path / "p.png")], "video_test_9999999")
    _bad(capsys, ["demo", "--aggregators", "nope", "--out", str(tmp_path / "demo")], "nope")


def test_bad_data_through_cli(capsys, tmp_path):
    """Missing features, stream lengths that disagree, unknown labels and corrupt JSON: one line, exit 2."""
    import shutil

    import numpy as np

    root = tmp_path / "bas"
    assert main(["make-sim", "--layout", "bas", "--videos", "4", "--feature-dim", "8", "--out", str(root)]) == 0
    capsys.readouterr()
    train = ["train", "--dataset", "thumos14", "--layout", "bas", "--no-eval", "--overwrite", "--out",
             str(tmp_path / "run")] + TINY

    def fresh_copy(name):
        copy = tmp_path / name
        shutil.copytree(root, copy)
        return copy

    missing = fresh_copy("missing")
    victim = sorted((missing / "features" / "train" / "flow").glob("*.npy"))[0]
    victim.unlink()
    _bad(capsys, train + ["--data-root", str(missing)], victim.stem)
    assert main(train + ["--data-root", str(missing), "--skip-missing"]) == 0
    err = capsys.readouterr().err
    assert "wsl-video: warning:" in err and "skipped 1 video" in err, err

    short = fresh_copy("short")
    victim = sorted((short / "features" / "train" / "flow").glob("*.npy"))[0]
    np.save(victim, np.load(victim)[:3])
    _bad(capsys, train + ["--data-root", str(short)], victim.stem)

    unknown = fresh_copy("unknown")
    gt = json.loads((unknown / "gt.json").read_text())
    video = sorted(name for name, entry in gt["database"].items() if entry["subset"] != "test")[0]  # a training video
    gt["database"][video]["annotations"][0]["label"] = "Juggling"
    (unknown / "gt.json").write_text(json.dumps(gt))
    _bad(capsys, train + ["--data-root", str(unknown)], "Juggling")

    corrupt = fresh_copy("corrupt")
    (corrupt / "gt.json").write_text('{"database": {')
    _bad(capsys, train + ["--data-root", str(corrupt)], "gt.json")


def test_quiet_still_prints_the_final_metrics(sim_root, tmp_path, capsys):
    from wsl_video.plot import format_metrics_table

    run = tmp_path / "run"
    argv = ["train", "--dataset", "thumos14", "--data-root", str(sim_root), "--layout", "wtalc", "--out", str(run)]
    assert main(argv + TINY) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert capsys.readouterr().out == format_metrics_table({"maa": metrics}) + "\n"
    assert main(["detect", "--run", str(run), "--out", str(tmp_path / "d.json"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.endswith(f"-> {tmp_path / 'd.json'}\n") and len(out.splitlines()) == 1
