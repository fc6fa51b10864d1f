"""Aggregator registry: names, aliases, overrides, and real entry-point plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import wsl
from wsl.aggregators import Aggregation, Aggregator, registry

REPO = Path(__file__).resolve().parents[1]
BUILTINS = ["dropout", "maa", "max", "mean", "norm", "softmax_norm", "topk_mean", "weighted_sum"]


def test_builtins_and_aliases_listed():
    names = wsl.list_aggregators()
    assert set(BUILTINS) <= set(names)
    assert names == sorted(names)
    assert {"stpn", "gap", "gmp"} <= set(wsl.list_aggregators(include_aliases=True))
    assert type(wsl.build_aggregator("stpn", channels=4)) is type(wsl.build_aggregator("weighted_sum", channels=4))
    assert type(wsl.build_aggregator("gmp")) is type(wsl.build_aggregator("max"))


def test_unknown_name_lists_available():
    with pytest.raises(ValueError, match="unknown aggregator 'nope'; available: .*maa.*weighted_sum"):
        wsl.build_aggregator("nope")


def test_register_and_override():
    class Half(Aggregator):
        def __init__(self, channels=None, scale=0.5):
            super().__init__()
            self.scale = scale

        def aggregate(self, x, mask):
            return Aggregation(self.scale * x.flatten(2).mean(2), None, None)

    try:
        wsl.register_aggregator("half_mean_test")(Half)
        assert "half_mean_test" in wsl.list_aggregators()
        out = wsl.build_aggregator("half_mean_test", channels=3, scale=0.25)(torch.ones(1, 3, 4))
        torch.testing.assert_close(out.pooled, torch.full((1, 3), 0.25))
        with pytest.raises(ValueError, match="already registered"):
            wsl.register_aggregator("half_mean_test")(Half)
        with pytest.raises(ValueError, match="already registered"):
            wsl.register_aggregator("maa")(Half)  # built-ins are protected too
        wsl.register_aggregator("half_mean_test", override=True)(Half)
    finally:
        registry._factories.pop("half_mean_test", None)


PLUGIN_MODULE = '''
import torch
from wsl.aggregators import Aggregation, Aggregator


class Doubler(Aggregator):
    """Twice the mean: a minimal third-party aggregator."""

    def __init__(self, channels=None, factor=2.0):
        super().__init__()
        self.factor = factor

    def aggregate(self, x, mask):
        return Aggregation(self.factor * x.flatten(2).mean(2), None, None)
'''

PROBE = '''
import json, sys, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import torch, wsl
    names = wsl.list_aggregators()
    imported_after_list = "wsl_demo_plugin" in sys.modules
    result = {"names": names, "imported_after_list": imported_after_list}
    if "doubler" in names:
        out = wsl.build_aggregator("doubler", channels=3)(torch.ones(1, 3, 4))
        result["doubler"] = out.pooled.tolist()
        result["imported_after_build"] = "wsl_demo_plugin" in sys.modules
        try:
            wsl.build_aggregator("broken")
        except ValueError as error:
            result["broken_error"] = str(error)
        result["names_after"] = wsl.list_aggregators()
        result["maa_is_builtin"] = type(wsl.build_aggregator("maa", channels=3)).__module__
result["warnings"] = [str(w.message) for w in caught]
print(json.dumps(result))
'''


@pytest.fixture()
def plugin_site(tmp_path):
    """A real installed distribution: a package plus its .dist-info with entry_points.txt."""
    (tmp_path / "wsl_demo_plugin").mkdir()
    (tmp_path / "wsl_demo_plugin" / "__init__.py").write_text(PLUGIN_MODULE)
    (tmp_path / "wsl_demo_broken").mkdir()
    (tmp_path / "wsl_demo_broken" / "__init__.py").write_text("raise ImportError('missing dependency xyz')\n")
    dist_info = tmp_path / "wsl_demo_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: wsl-demo-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [wsl.aggregators]
            doubler = wsl_demo_plugin:Doubler
            broken = wsl_demo_broken:Aggregator
            maa = wsl_demo_plugin:Doubler
            """
        )
    )
    (dist_info / "RECORD").write_text("")
    return tmp_path


def _probe(site: Path, **env) -> dict:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]), **env}
    completed = subprocess.run(
        [sys.executable, "-c", PROBE], env=environment, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_entry_point_plugin_end_to_end(plugin_site):
    result = _probe(plugin_site)
    assert "doubler" in result["names"] and "broken" in result["names"]
    assert result["imported_after_list"] is False  # listing does not import plugins
    assert result["doubler"] == [[2.0, 2.0, 2.0]]
    assert result["imported_after_build"] is True
    # a plugin that fails to import warns, names itself, and does not break the library
    assert "unknown aggregator 'broken'" in result["broken_error"]
    assert "broken" not in result["names_after"]
    assert any("'broken'" in w and "wsl-demo-plugin" in w and "failed to load" in w for w in result["warnings"])
    # a plugin may not shadow a built-in
    assert result["maa_is_builtin"] == "wsl.aggregators.maa"
    assert any("'maa'" in w and "shadow" in w for w in result["warnings"])


def test_plugin_autoloading_can_be_disabled(plugin_site):
    result = _probe(plugin_site, WSL_DISABLE_PLUGINS="1")
    assert "doubler" not in result["names"]
    assert set(BUILTINS) <= set(result["names"])
    assert result["warnings"] == []
