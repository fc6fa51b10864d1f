"""The example scripts run as a user runs them, and localize clearly better than chance."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    completed = subprocess.run([sys.executable, str(REPO / "examples" / script), *args], cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def _row(text: str, name: str) -> list[float]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {name}"))
    return [float(cell) for cell in re.findall(r"\|\s*([0-9.]+)\s*(?=\|)", line)]


def test_train_video():
    """The default invocation (the one the README shows): MAAN's detection mAP is far above chance."""
    out = _run("train_video.py")
    assert "Detection mAP (%)" in out
    model, chance = _row(out, "maa, 1000 iterations"), _row(out, "random CAS")
    assert len(model) == len(chance) == 10  # tIoU 0.1:0.9 and the 0.1:0.7 average
    assert all(0.0 <= value <= 100.0 for value in model + chance)
    assert model[-1] > chance[-1] + 10.0, out  # average mAP@0.1:0.7, percent
    assert model[0] > chance[0] + 20.0, out  # mAP@0.1


def test_train_image():
    """A short run of the image example: it trains, localizes and prints MaxBoxAccV2 beside the baselines."""
    out = _run("train_image.py", "--epochs", "2")
    assert "MaxBoxAccV2 (%)" in out and "epoch 2:" in out
    rows = [_row(out, name) for name in ("maa on test_resnet, 2 epochs", "centre Gaussian", "random 7x7 map")]
    for values in rows:
        assert len(values) == 4 and all(0.0 <= value <= 100.0 for value in values)
        assert min(values[:3]) <= values[3] <= max(values[:3])  # the mean over the three IoU thresholds
    assert re.search(r"top-1 classification accuracy: [0-9.]+%", out)
