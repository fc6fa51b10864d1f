import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wsl.metrics import detection_map
from wsl_video import cli
from wsl_video.data.annotations import load_ground_truth, read_ambiguous
from wsl_video.detections import load_detections, write_detections

# The real THUMOS14 annotations, as shipped with the package.
THUMOS_DIR = Path(__file__).resolve().parents[1] / "wsl_video" / "resources" / "thumos14"
THUMOS_GT = THUMOS_DIR / "gt.json"
THUMOS_AMBIGUOUS = THUMOS_DIR / "Ambiguous_test.txt"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def main(monkeypatch):
    """``wsl_video.cli.main`` with only the command under test registered."""
    monkeypatch.setattr(cli, "COMMANDS", {"evaluate": "wsl_video.commands.evaluate"})
    return cli.main


def write_json(path, obj):
    path.write_text(json.dumps(obj))
    return str(path)


GROUND_TRUTH = {
    "version": "toy",
    "database": {
        "v1": {
            "subset": "validation",
            "duration": 60.0,
            "annotations": [
                {"segment": [0.0, 10.0], "label": "run"},
                {"segment": ["20.0", "30.0"], "label": "jump"},
            ],
        },
        "v2": {
            "subset": "validation",
            "duration": 40.0,
            "annotations": [{"segment": [5.0, 15.0], "label": "run"}],
        },
        "v3": {
            "subset": "training",
            "duration": 40.0,
            "annotations": [{"segment": [5.0, 15.0], "label": "swim"}],
        },
    },
}
RESULTS = {
    "v1": [
        {"label": "run", "segment": [0.5, 10.0], "score": 0.9},
        {"label": "jump", "segment": [22.0, 30.0], "score": 0.6},
        {"label": "run", "segment": [40.0, 50.0], "score": 0.7},
    ],
    "v2": [{"label": "run", "segment": [4.0, 12.0], "score": 0.8}],
}
VIDEO_SCORES = {"v1": {"run": 0.9, "jump": 0.7}, "v2": {"run": 0.8, "jump": 0.1}}


class TestDetectionFiles:
    def test_round_trip(self, tmp_path):
        results = {
            "v1": [{"label": "run", "segment": np.array([1.0, 2.5]), "score": np.float32(0.25)}],
            "v2": [],
        }
        path = tmp_path / "out" / "detections.json"
        write_detections(path, results, video_scores={"v1": {"run": np.float64(0.5)}})
        data = json.loads(path.read_text())
        assert data["version"] == "VERSION 1.3" and data["external_data"] == {"used": False, "details": ""}
        loaded, scores = load_detections(path)
        assert loaded == {"v1": [{"label": "run", "segment": [1.0, 2.5], "score": 0.25}], "v2": []}
        assert scores == {"v1": {"run": 0.5}}
        assert [p.name for p in path.parent.iterdir()] == ["detections.json"]  # no temporary left behind
        write_detections(path, {}, external_data={"used": True, "details": "I3D on Kinetics"})
        assert load_detections(path) == ({}, None)

    def test_write_exception(self, tmp_path):
        with pytest.raises(ValueError, match="video v1"):
            write_detections(tmp_path / "d.json", {"v1": [{"label": "a", "segment": [2.0, 1.0], "score": 1}]})
        assert not (tmp_path / "d.json").exists()

    def test_ground_truth(self, tmp_path):
        gt = load_ground_truth(write_json(tmp_path / "gt.json", GROUND_TRUTH))
        assert gt["database"]["v1"]["annotations"][1] == {"segment": [20.0, 30.0], "label": "jump"}
        assert gt["database"]["v2"]["subset"] == "validation"

    def test_ambiguous(self, tmp_path):
        path = tmp_path / "Ambiguous_test.txt"
        path.write_text("video_test_1  0.0 1.4\n\nvideo_test_1  95.7 97.2\nvideo_test_2 3 4\n")
        assert read_ambiguous(path) == {
            "video_test_1": [(0.0, 1.4), (95.7, 97.2)],
            "video_test_2": [(3.0, 4.0)],
        }
        path.write_text("video_test_1  0.0\n")
        with pytest.raises(ValueError, match="line 1"):
            read_ambiguous(path)
        path.write_text("video_test_1 0 1\n\nvideo_test_1 5 x\n")  # line numbers count blank lines
        with pytest.raises(ValueError) as error:
            read_ambiguous(path)
        assert str(error.value) == f"{path}: line 3: expected a number, got 'x'"
        path.write_text("video_test_1 5 4\n")
        with pytest.raises(ValueError, match=r"Ambiguous_test.txt: line 1: segment end 4.0 is before its start 5.0"):
            read_ambiguous(path)

    @pytest.mark.skipif(not THUMOS_AMBIGUOUS.is_file(), reason=f"THUMOS14 annotations not found: {THUMOS_AMBIGUOUS}")
    def test_thumos_ambiguous(self):
        ambiguous = read_ambiguous(THUMOS_AMBIGUOUS)
        assert sum(len(v) for v in ambiguous.values()) == 99
        assert ambiguous["video_test_0000278"][0] == (0.0, 1.4)

    def test_load_exception(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="missing.json"):
            load_detections(tmp_path / "missing.json")
        bad = tmp_path / "bad.json"
        bad.write_text("{not json")
        with pytest.raises(ValueError, match="bad.json.*invalid JSON"):
            load_detections(bad)
        with pytest.raises(ValueError, match="gt.json.*database"):
            load_ground_truth(write_json(tmp_path / "gt.json", {"results": {}}))
        with pytest.raises(ValueError, match="p.json.*video v9"):
            load_detections(write_json(tmp_path / "p.json", {"results": {"v9": [{"label": "a", "segment": [1]}]}}))
        with pytest.raises(ValueError, match="g.json.*video v1.*number"):
            load_ground_truth(
                write_json(
                    tmp_path / "g.json",
                    {"database": {"v1": {"annotations": [{"segment": ["x", 1], "label": "a"}]}}},
                )
            )


class TestEvaluateCommand:
    def test_smoke(self, main, tmp_path, capsys):
        gt = write_json(tmp_path / "gt.json", GROUND_TRUTH)
        pred = tmp_path / "pred.json"
        write_detections(pred, RESULTS, video_scores=VIDEO_SCORES)
        out = tmp_path / "metrics.json"
        status = main(
            [
                "evaluate",
                "--ground-truth",
                gt,
                "--predictions",
                str(pred),
                "--output",
                str(out),
                "--per-class",
            ]
        )
        assert status == 0
        printed = capsys.readouterr().out
        metrics = json.loads(out.read_text())
        # Non-THUMOS names: ActivityNet thresholds; no "test" subset: validation.
        np.testing.assert_allclose(metrics["tiou_thresholds"], np.linspace(0.5, 0.95, 10))
        assert metrics["subset"] == "validation"
        expected = detection_map(GROUND_TRUTH, {"results": RESULTS}, np.linspace(0.5, 0.95, 10), subset="validation")
        np.testing.assert_allclose(metrics["mAP"], expected["mAP"])
        assert metrics["average_mAP"] == pytest.approx(expected["average_mAP"])
        assert set(metrics["per_class_ap"]) == {"run", "jump"}
        # run: v1 (score 0.9) and v2 (0.8) positive, ranked first -> 1; jump: v1 (0.7) before v2 (0.1) -> 1.
        assert metrics["classification_mAP"] == pytest.approx(1.0)
        # run at 0.5: TP (0.95), TP (v2: 7/11), FP -> AP 1; jump 0.8 tIoU -> AP 1 up to 0.8.
        assert metrics["mAP"][0] == pytest.approx(1.0)
        assert "mAP (%)" in printed and "100.00" in printed and "classification mAP: 100.00" in printed

    def test_options(self, main, tmp_path):
        gt = write_json(tmp_path / "gt.json", GROUND_TRUTH)
        pred = write_json(tmp_path / "pred.json", {"results": RESULTS})
        amb = tmp_path / "amb.txt"
        amb.write_text("v1 45.0 46.0\n")
        out = tmp_path / "m.json"
        args = ["evaluate", "--ground-truth", gt, "--predictions", pred, "--output", str(out)]
        assert main(args + ["--tiou-thresholds", "0.1:0.1:0.7", "--ambiguous", str(amb), "--subset", "validation"]) == 0
        metrics = json.loads(out.read_text())
        assert metrics["tiou_thresholds"] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
        assert "classification_mAP" not in metrics
        # the false positive [40, 50] overlaps the ambiguous segment: run has AP 1 until tIoU 7/11
        assert metrics["per_class_ap"]["run"][:6] == pytest.approx([1.0] * 6)
        assert metrics["average_mAP_0.1_0.7"] == pytest.approx(metrics["average_mAP"])
        assert main(args + ["--tiou-thresholds", "0.3,0.5"]) == 0
        assert json.loads(out.read_text())["tiou_thresholds"] == [0.3, 0.5]

    @pytest.mark.skipif(not THUMOS_GT.is_file(), reason=f"THUMOS14 annotations not found: {THUMOS_GT}")
    def test_thumos14(self, main, tmp_path):
        gt = json.loads(THUMOS_GT.read_text())
        # Perfect detections of the test subset, plus one false positive per video that overlaps an
        # ambiguous segment where there is one.
        ambiguous = read_ambiguous(THUMOS_AMBIGUOUS) if THUMOS_AMBIGUOUS.is_file() else {}
        results = {}
        for video, entry in gt["database"].items():
            if entry["subset"] != "test":
                continue
            results[video] = [
                {"label": a["label"], "segment": a["segment"], "score": 1.0} for a in entry["annotations"]
            ]
            if video in ambiguous and entry["annotations"]:
                start, end = ambiguous[video][0]
                results[video].append(
                    {"label": entry["annotations"][0]["label"], "segment": [start, end], "score": 2.0}
                )
        pred = tmp_path / "pred.json"
        write_detections(pred, results)
        out = tmp_path / "m.json"
        args = [
            "evaluate",
            "--ground-truth",
            str(THUMOS_GT),
            "--predictions",
            str(pred),
            "--output",
            str(out),
        ]
        assert main(args + ["--ambiguous", str(THUMOS_AMBIGUOUS)]) == 0
        metrics = json.loads(out.read_text())
        assert metrics["subset"] == "test" and metrics["num_classes"] == 20
        np.testing.assert_allclose(metrics["tiou_thresholds"], np.linspace(0.1, 0.9, 9))
        np.testing.assert_allclose(metrics["mAP"], np.ones(9))
        assert metrics["average_mAP_0.1_0.7"] == pytest.approx(1.0)
        if ambiguous:
            assert main(args) == 0  # without the ambiguous filter the top-scoring false positives count
            assert json.loads(out.read_text())["average_mAP"] < 1.0

    def test_bad_input(self, main, tmp_path, capsys):
        gt = write_json(tmp_path / "gt.json", GROUND_TRUTH)
        pred = write_json(tmp_path / "pred.json", {"results": RESULTS})
        bad_json = tmp_path / "broken.json"
        bad_json.write_text('{"results": ')
        cases = [
            (["--ground-truth", gt, "--predictions", str(tmp_path / "none.json")], "none.json"),
            (["--ground-truth", gt, "--predictions", str(bad_json)], "broken.json"),
            (
                ["--ground-truth", gt, "--predictions", write_json(tmp_path / "nores.json", {"x": 1})],
                "nores.json",
            ),
            (
                ["--ground-truth", write_json(tmp_path / "nodb.json", {"x": 1}), "--predictions", pred],
                "nodb.json",
            ),
            (
                [
                    "--ground-truth",
                    gt,
                    "--predictions",
                    write_json(
                        tmp_path / "lab.json",
                        {"results": {"v1": [{"label": "fly", "segment": [0, 1], "score": 1}]}},
                    ),
                ],
                "'fly'",
            ),
            (
                [
                    "--ground-truth",
                    gt,
                    "--predictions",
                    write_json(
                        tmp_path / "seg.json", {"results": {"v2": [{"label": "run", "segment": [3, 1], "score": 1}]}}
                    ),
                ],
                "seg.json: prediction in video v2: segment end",
            ),
            (
                [
                    "--ground-truth",
                    gt,
                    "--predictions",
                    write_json(tmp_path / "key.json", {"results": {"v1": [{"label": "run", "segment": [0, 1]}]}}),
                ],
                "key.json: prediction in video v1 needs",
            ),
            (["--ground-truth", gt, "--predictions", pred, "--subset", "test"], "no subset 'test'"),
            (
                ["--ground-truth", gt, "--predictions", pred, "--tiou-thresholds", "0.5,abc"],
                "--tiou-thresholds",
            ),
            (
                ["--ground-truth", gt, "--predictions", pred, "--ambiguous", str(tmp_path / "amb.txt")],
                "amb.txt",
            ),
        ]
        for args, needle in cases:
            assert main(["evaluate", *args]) == 2, args
            err = capsys.readouterr().err.strip()
            assert err.startswith("wsl-video evaluate: error:") and needle in err, err
            assert "\n" not in err and "Traceback" not in err

    def test_no_torch(self, tmp_path):
        """The command runs without importing torch (fast start-up)."""
        gt = write_json(tmp_path / "gt.json", GROUND_TRUTH)
        pred = write_json(tmp_path / "pred.json", {"results": RESULTS})
        code = (
            "import sys\n"
            "from wsl.utils.cli import run_cli\n"
            "status = run_cli('wsl-video', '', {'evaluate': 'wsl_video.commands.evaluate'},\n"
            f"                 ['evaluate', '--ground-truth', {gt!r}, '--predictions', {pred!r}])\n"
            "assert status == 0\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        completed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
        assert completed.returncode == 0, completed.stderr


class TestDefaults:
    def test_parse_thresholds(self):
        from wsl_video.commands.evaluate import parse_thresholds

        np.testing.assert_allclose(parse_thresholds("0.5:0.05:0.95"), np.linspace(0.5, 0.95, 10))
        assert parse_thresholds("0.3, 0.5,0.7") == [0.3, 0.5, 0.7]
        for bad in ("", "0.5:0:1", "0:0.1", "0.0,0.5", "1.5", "a,b"):
            with pytest.raises(ValueError, match="--tiou-thresholds"):
                parse_thresholds(bad)

    def test_dataset_defaults(self):
        from wsl_video.commands.evaluate import default_subset, is_thumos14

        assert not is_thumos14(GROUND_TRUTH) and default_subset(GROUND_TRUTH) == "validation"
        thumos = {"version": "", "database": {"video_test_0000004": {"subset": "test", "annotations": []}}}
        assert is_thumos14(thumos) and default_subset(thumos) == "test"
        assert is_thumos14({"version": "TH14", "database": {}})
        assert default_subset({"database": {"a": {"annotations": []}}}) is None
