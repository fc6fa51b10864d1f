"""Install what you use: the core imports no tool dependency; a missing one is named with its extra."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import wsl_image.cli as image_cli
import wsl_video.cli as video_cli
from wsl.utils.extras import MissingExtra, extra_for, require

ROOT = Path(__file__).resolve().parents[1]
TOOL_MODULES = ("timm", "optuna", "av", "cv2", "matplotlib", "torchvision", "yaml", "tqdm", "PIL")

CORE_SCRIPT = textwrap.dedent("""
    import sys
    import wsl
    import torch

    x = torch.rand(2, 16, 30)
    out = wsl.build_aggregator("maa", channels=16)(x)  # MAA through the top-level API
    assert out.pooled.shape == (2, 16) and out.attention.shape == (2, 30)
    weight = torch.randn(3, 16)
    assert wsl.class_activation(x, weight, attention=out.attention).shape == (2, 3, 30)
    assert wsl.linear_class_activation(x, weight).shape == (2, 3, 30)
    wsl.functional.marginalized_average(torch.rand(2, 4, 10), torch.rand(2, 10))
    from wsl.aggregators import list_aggregators
    for name in list_aggregators():
        wsl.build_aggregator(name, channels=16)(x)
    from wsl.metrics import classification_map, detection_map
    from wsl.localization import temporal
    gt = {"database": {"v": {"subset": "test", "annotations": [{"segment": [1.0, 4.0], "label": "a"}]}}}
    pred = {"results": {"v": [{"segment": [1.0, 4.5], "label": "a", "score": 0.9}]}}
    assert detection_map(gt, pred, [0.5])["mAP"][0] == 1.0
    classification_map([[0.9, 0.1], [0.2, 0.8]], [[1, 0], [0, 1]])
    import wsl.metrics.wsol, wsl.utils, wsl.cam, wsl.localization.boxes  # noqa: E401
    print(" ".join(name for name in sys.argv[1:] if sys.modules.get(name) is not None))
""")


def _run(script: str, *args: str, prelude: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", prelude + script, *args], capture_output=True, text=True,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "", "OMP_NUM_THREADS": "1"}, timeout=300)


def test_core_imports_no_tool_dependency():
    """MAA, CAM and the metrics through ``import wsl`` in a fresh interpreter leave every tool module unloaded
    (torch itself may load tqdm when it is installed: then it must be loaded by ``import torch`` alone)."""
    completed = _run(CORE_SCRIPT, *TOOL_MODULES)
    assert completed.returncode == 0, completed.stderr
    loaded = set(completed.stdout.split())
    by_torch = set(_run("import sys, torch, numpy; print(' '.join(set(sys.argv[1:]) & set(sys.modules)))",
                        *TOOL_MODULES).stdout.split())  # torch loads tqdm itself where it is installed
    assert loaded <= by_torch, f"the core imported {sorted(loaded - by_torch)}"
    assert not loaded & {"timm", "optuna", "av", "cv2", "matplotlib"}, loaded


def test_core_runs_with_tool_dependencies_uninstalled():
    """The same with every tool module made unimportable (as after ``pip install wsl`` alone)."""
    blocker = f"import sys\nsys.modules.update(dict.fromkeys({TOOL_MODULES!r}))  # import raises ModuleNotFoundError\n"
    completed = _run(CORE_SCRIPT, *TOOL_MODULES, prelude=blocker)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == []


def test_require(monkeypatch):
    import math

    assert require("math", "video", "x") is math
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(MissingExtra) as error:
        require("av", "video", "wsl_video.features.decoding")
    assert str(error.value) == ("wsl_video.features.decoding: needs the [video] extra (missing module 'av'): "
                                "pip install \"wsl[video]\"")
    assert isinstance(error.value, ImportError) and error.value.name == "av" and error.value.extra == "video"
    assert extra_for("optuna.samplers", "wsl-video") == "tune" and extra_for("cv2", "wsl-image") == "image"
    assert extra_for("yaml", "wsl-video") == "video" and extra_for("numpy", "wsl-video") is None


def test_box_metrics_name_the_extra(monkeypatch):
    import numpy as np

    from wsl.metrics import max_box_acc
    from wsl.utils import jit

    monkeypatch.setitem(sys.modules, "cv2", None)
    monkeypatch.setenv("WSL_NO_NUMBA", "1")  # the OpenCV path (the compiled sweep needs no contour search)
    jit._numba.cache_clear()
    try:
        with pytest.raises(MissingExtra, match=r"needs the \[image\] extra \(missing module 'cv2'\)"):
            max_box_acc([np.ones((8, 8))], [np.array([[0, 0, 7, 7]])])
    finally:
        monkeypatch.delenv("WSL_NO_NUMBA")
        jit._numba.cache_clear()


@pytest.mark.parametrize("cli, argv, module, message", [
    (video_cli, ["extract", "clip.mp4", "--out", "feats"], "av",
     "wsl-video extract: needs the [video] extra (missing module 'av'): pip install \"wsl[video]\""),
    (video_cli, ["plot", "--run", "r", "--video", "v", "--out", "p.png"], "matplotlib",
     "wsl-video plot: needs the [video] extra (missing module 'matplotlib'): pip install \"wsl[video]\""),
    (video_cli, ["tune", "--out", "t"], "optuna",
     "wsl-video tune: needs the [tune] extra (missing module 'optuna'): pip install \"wsl[tune]\""),
    (image_cli, ["train", "--out", "r"], "timm",
     "wsl-image train: needs the [image] extra (missing module 'timm'): pip install \"wsl[image]\""),
    (image_cli, ["tune", "--out", "t"], "optuna",
     "wsl-image tune: needs the [tune] extra (missing module 'optuna'): pip install \"wsl[tune]\""),
])
def test_command_names_the_extra(cli, argv, module, message, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == message and "Traceback" not in captured.err
    assert list(tmp_path.iterdir()) == []  # nothing was started


def test_missing_module_deep_in_a_command(monkeypatch, capsys, tmp_path):
    """An optional module missing where a command imports it lazily gets the same one line."""
    monkeypatch.setitem(sys.modules, "yaml", None)
    assert video_cli.main(["config"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "wsl-video config: needs the [video] extra (missing module 'yaml'): pip install \"wsl[video]\""
