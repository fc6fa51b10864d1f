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
