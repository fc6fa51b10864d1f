"""The benchmark scripts run (tiny sizes); they assert nothing about timings."""

import importlib.util
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_aggregators_benchmark_smoke():
    table = _load("aggregators").main(["--quick", "--repeats", "1", "--runs", "2"])
    for name in ("maa", "weighted_sum", "topk_mean", "algorithm 1 (paper)"):
        assert f"| {name} |" in table


def test_maa_truncation_benchmark_smoke():
    table = _load("maa_truncation").main(["--max-n", "200"])
    assert "| 32 | 36 |" in table and "float64" in table


def test_extraction_benchmark_smoke():
    table = _load("extraction").main(["--quick"])
    for stage in ("| decode + resample + scale |", "| TV-L1", "| RAFT small", "| I3D rgb", "| I3D flow",
                  "| whole excerpt"):
        assert stage in table
    assert "outside the networks" in table


def test_tune_transfer_benchmark_smoke(tmp_path):
    import json

    module = _load("tune_transfer")
    argv = ["--out", str(tmp_path), "--quick", "--videos", "24", "--per-class", "2", "--sim", "feature_dim=8",
            "--trials", "2", "--tune-seeds", "0", "--seeds", "0", "--aggregators", "weighted_sum"]
    assert module.main(argv) == 0
    results = json.loads((tmp_path / "results.json").read_text())["aggregators"]["weighted_sum"]
    assert {"held_out_default", "held_out_tuned", "test_default", "test_tuned"} <= set(results)
    assert not (tmp_path / "data-train-only" / "features" / "test").exists()
    assert (tmp_path / "data" / "features" / "test").is_dir()
    gt = json.loads((tmp_path / "data" / "gt.json").read_text())["database"]
    train = [entry for entry in gt.values() if entry["subset"] != "test"]
    classes = {a["label"] for entry in train for a in entry["annotations"]}
    assert len(train) <= 2 * len(classes) < 24  # two videos per class kept
    assert "| weighted_sum |" in (tmp_path / "table.md").read_text()


def test_image_demo_seeds_benchmark_smoke(tmp_path):
    from wsl_image.sim import make_cub_sim

    sim = tmp_path / "sim"
    make_cub_sim(sim, seed=1, num_classes=2, train_per_class=3, test_per_class=2, val_per_class=1, image_size=48,
                 clutter=1)
    argv = ["--out", str(tmp_path / "out"), "--seeds", "0", "1", "--sim", str(sim), "--demo-args", "--aggregators",
            "maa", "--image-size", "32", "--epochs", "1", "--overlays", "0", "--device", "cpu"]
    assert _load("image_demo_seeds").main(argv) == 0
    table = (tmp_path / "out" / "table.md").read_text().splitlines()
    assert table[2].startswith("| MAAN (maa) |") and " ± " in table[2] and "| 1 |" in table[2]


def test_video_recipes_benchmark_smoke():
    table = _load("video_recipes").main(["--quick"])
    for name in ("maan", "wtalc", "basnet"):
        assert f"| {name} |" in table
    assert "| maan | 20 |" in table and "| 1.00 |" in table
