"""``wsl-image`` train / evaluate / localize / demo through the command line, incl. bad input."""

from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
import pytest
import torch

from wsl_image.cli import main
from wsl_image.sim import make_cub_sim

torch.set_num_threads(1)

TINY = [
    "--backbone",
    "test_resnet",
    "--image-size",
    "32",
    "--batch-size",
    "8",
    "--workers",
    "0",
    "--device",
    "cpu",
    "--quiet",
]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-sim")
    make_cub_sim(
        out, seed=2, num_classes=2, train_per_class=3, test_per_class=2, val_per_class=1, image_size=48, clutter=1
    )
    return out


@pytest.fixture(scope="module")
def run_dir(sim, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-run") / "run"
    status = main(
        ["train", "--data-root", str(sim / "CUB_200_2011"), "--out", str(out), "--epochs", "1", "--grid", "none", *TINY]
    )
    assert status == 0
    return out


def _error(capsys, argv, *fragments):
    status = main(argv)
    captured = capsys.readouterr()
    assert status == 2, captured.err
    lines = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_train_config_file_and_flags(sim, tmp_path, run_dir):
    config = tmp_path / "base.yaml"
    config.write_text(f"data_root: {sim / 'CUB_200_2011'}\naggregator: mean\nepochs: 1\ngrid: 7\nlr: 1e-2\n")
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(out), "--grid", "4", *TINY]) == 0
    written = (out / "config.yaml").read_text()
    assert "aggregator: mean" in written and "grid: 4" in written and "image_size: 32" in written
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["aggregator"] == "mean" and metrics["grid"] == 4 and metrics["cam_score"] == "linear"
    assert json.loads((run_dir / "metrics.json").read_text())["grid"] is None


def test_train_resume_continues(sim, tmp_path):
    out = tmp_path / "run"
    common = ["--data-root", str(sim / "CUB_200_2011"), "--out", str(out), *TINY]
    assert main(["train", *common, "--epochs", "1"]) == 0
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--quiet"]) == 0
    history = json.loads((out / "history.json").read_text())
    assert [record["epoch"] for record in history] == [1, 2]
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 2


def test_evaluate(run_dir, capsys):
    assert main(["evaluate", "--run", str(run_dir), "--quiet"]) == 0
    assert "top1_loc" in capsys.readouterr().out
    evaluated = json.loads((run_dir / "eval_test.json").read_text())
    trained = json.loads((run_dir / "metrics.json").read_text())
    for key in ("top1_loc", "gt_known_loc", "max_box_acc", "max_box_acc_v2", "top1_cls"):
        assert evaluated[key] == pytest.approx(trained[key])
    assert evaluated["num_images"] == 4
    out = run_dir.parent / "elsewhere" / "metrics.json"  # --out: the metrics where the user asks
    assert main(["evaluate", "--run", str(run_dir), "--quiet", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == evaluated


def test_localize(run_dir, sim, tmp_path, capsys):
    image = np.zeros((50, 70, 3), np.uint8)
    image[10:30, 20:50] = (200, 40, 40)
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), image)
    jpeg = next((sim / "CUB_200_2011" / "images").glob("*/*.jpg"))
    out = tmp_path / "loc"
    assert main(["localize", "--run", str(run_dir), str(path), str(jpeg), "--out", str(out), "--topk", "2"]) == 0
    results = json.loads((out / "boxes.json").read_text())
    assert [r["image"] for r in results] == [str(path), str(jpeg)]
    first = results[0]
    assert (first["width"], first["height"]) == (70, 50)
    assert len(first["predictions"]) == 2
    probabilities = [p["probability"] for p in first["predictions"]]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-6
    for x0, y0, x1, y1 in first["predictions"][0]["boxes"]:
        assert 0 <= x0 <= x1 <= 69 and 0 <= y0 <= y1 <= 49
    overlay = cv2.imread(first["overlay"])  # enlarged 5x to at least 224 px, a legend band above
    assert overlay.shape[1] == 70 * 5 and overlay.shape[0] > 50 * 5
    # the printed lines name the classes (from the CUB classes.txt the run was trained on), not indices
    from wsl_image.data import load_cub

    names = load_cub(sim / "CUB_200_2011").class_names
    lines = capsys.readouterr().out.splitlines()[:2]
    for line, result in zip(lines, results):
        best = result["predictions"][0]
        assert best["class_name"] == names[best["class"]]
        assert line.startswith(f"{result['image']}: {best['class_name']} ") and "class " not in line, line


def test_demo_small(sim, tmp_path, capsys):
    out = tmp_path / "demo"
    argv = [
        "demo",
        "--out",
        str(out),
        "--sim-root",
        str(sim),
        "--aggregators",
        "maa",
        "mean",
        "--backbone",
        "test_resnet",
        "--image-size",
        "32",
        "--epochs",
        "1",
        "--overlays",
        "2",
        "--device",
        "cpu",
        "--quiet",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| method |" in printed and "MAAN" in printed and "CAM (GAP)" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"units", "maa", "mean"}
    assert summary["units"].startswith("fractions in [0, 1]")  # as the metrics files; the table is in percent
    for name in ("maa", "mean"):
        metrics = summary[name]
        written = json.loads((out / name / "metrics.json").read_text())
        for key in ("top1_loc", "top5_loc", "gt_known_loc", "max_box_acc", "max_box_acc_v2", "top1_cls"):
            assert 0.0 <= metrics[key] <= 1.0 and metrics[key] == pytest.approx(written[key])
        assert f"| {100 * metrics['max_box_acc_v2']:.2f} |" in printed
    assert (out / "overlays" / "maa" / "grid.png").is_file()
    assert (out / "overlays" / "comparison.png").is_file()
    assert len(list((out / "overlays" / "mean").glob("*.png"))) == 3  # 2 images + grid


def test_exception(sim, run_dir, tmp_path, capsys):
    root = str(sim / "CUB_200_2011")
    _error(capsys, ["train", "--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r"), *TINY], "nowhere")
    _error(capsys, ["train", "--data-root", root, "--out", str(tmp_path / "r"), "--aggregator", "nope", *TINY], "nope")
    _error(
        capsys,
        ["train", "--data-root", root, "--out", str(tmp_path / "r"), "--backbone", "no_such_net", "--quiet"],
        "no_such_net",
    )
    _error(capsys, ["train", "--out", str(tmp_path / "fresh"), "--resume"], "checkpoint.pt")
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rate: 0.1\n")
    _error(capsys, ["train", "--config", str(bad), "--out", str(tmp_path / "r")], "bad.yaml", "learning_rate")
    _error(capsys, ["train", "--config", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "r")], "missing.yaml")
    _error(capsys, ["train", "--data-root", root, "--out", str(tmp_path / "r"), "--epochs", "-1", *TINY], "epochs")
    _error(
        capsys,
        [
            "train",
            "--data-root",
            root,
            "--out",
            str(tmp_path / "r"),
            "--pretrained-path",
            str(tmp_path / "w.pth"),
            *TINY,
        ],
        "w.pth",
    )
    _error(capsys, ["evaluate", "--run", str(tmp_path / "no_run")], "no_run")
    _error(capsys, ["evaluate", "--run", str(tmp_path)], "config.yaml")
    _error(capsys, ["evaluate", "--run", str(run_dir), "--split", "val", "--quiet"], "val")
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    _error(capsys, ["localize", "--run", str(run_dir), str(text), "--out", str(tmp_path / "o")], "notes.txt")
    _error(
        capsys,
        ["localize", "--run", str(run_dir), str(tmp_path / "gone.jpg"), "--out", str(tmp_path / "o")],
        "gone.jpg",
    )
    _error(capsys, ["demo", "--sim-root", str(tmp_path / "nosim"), "--out", str(tmp_path / "d")], "nosim")
    _error(capsys, ["demo", "--aggregators", "nope", "--out", str(tmp_path / "d")], "nope")
    assert main(["train", "--out", str(tmp_path / "r"), "--grid", "5"]) == 2


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_localize_never_replaces_results_silently(run_dir, sim, tmp_path, capsys):
    images = sorted((sim / "CUB_200_2011" / "images").glob("*/*.jpg"))[:2]
    out = tmp_path / "loc"
    argv = ["localize", "--run", str(run_dir), str(images[0]), "--out", str(out)]
    assert main(argv) == 0
    before = _digest(out)
    assert set(before) == {"boxes.json", f"{images[0].stem}_overlay.png"}
    capsys.readouterr()
    # a second localize into the same folder: refused in one line, nothing touched
    assert main(["localize", "--run", str(run_dir), str(images[1]), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (f"wsl-image localize: error: {out / 'boxes.json'} exists (an earlier localize?): pass --overwrite "
                   "to replace it, or another --out\n")
    assert _digest(out) == before
    # --overwrite replaces the results, the earlier overlay included
    assert main(["localize", "--run", str(run_dir), str(images[1]), "--out", str(out), "--overwrite"]) == 0
    assert set(_digest(out)) == {"boxes.json", f"{images[1].stem}_overlay.png"}
    # a folder of unrelated files: refused, with or without --overwrite
    other = tmp_path / "notes"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    for extra in ([], ["--overwrite"]):
        capsys.readouterr()
        assert main(["localize", "--run", str(run_dir), str(images[0]), "--out", str(other), *extra]) == 2
        assert capsys.readouterr().err == (f"wsl-image localize: error: {other} is not empty and holds no boxes.json "
                                           "(not a localize's results): use an empty or new --out\n")
        assert _digest(other) == {"notes.txt": hashlib.sha256(b"mine").hexdigest()}


def test_train_quiet_prints_the_final_metrics(sim, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data-root", str(sim / "CUB_200_2011"), "--out", str(out), "--epochs", "1", "--grid", "none"]
    assert main(argv + TINY) == 0
    lines = capsys.readouterr().out.splitlines()
    metrics = json.loads((out / "metrics.json").read_text())
    from wsl_image.evaluate import format_metrics

    assert lines == [format_metrics(metrics)]
