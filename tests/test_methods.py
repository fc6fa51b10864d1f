"""Method registries of both tools, the generic registry under them, and aggregator lookup without building."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

import wsl
from wsl.aggregators import (
    Aggregation,
    Aggregator,
    AggregatorAdapter,
    aggregator_info,
    check_aggregator_options,
    get_aggregator,
    registry,
)
from wsl.registry import Registry
from wsl_image import cli as image_cli
from wsl_image.config import TrainConfig
from wsl_image.config import load_config as load_image_config
from wsl_image.methods import ImageMethod
from wsl_image.methods import get_method as get_image_method
from wsl_image.methods import list_methods as list_image_methods
from wsl_video import cli as video_cli
from wsl_video.config import RunConfig, load_config
from wsl_video.methods import VideoMethod, get_method, list_methods, register_method
from wsl_video.methods import registry as video_method_registry

REPO = Path(__file__).resolve().parents[1]
PLUGIN_EXAMPLE = REPO / "examples" / "method_plugin"


# ---------------------------------------------------------------- the generic registry


class TestRegistry:
    def _registry(self) -> Registry:
        registry = Registry("widget", "wsl.test-no-such-group")
        registry.register("alpha", aliases=("a",))(dict)
        registry.register("beta")(list)
        registry.finish_builtins()
        return registry

    def test_smoke(self):
        registry = self._registry()
        assert registry.names() == ["alpha", "beta"]
        assert registry.names(include_aliases=True) == ["a", "alpha", "beta"]
        assert registry.get("alpha") is dict and registry.get("a") is dict
        assert registry.canonical("a") == "alpha" and "a" in registry and "gamma" not in registry
        assert registry.origin("alpha") == "built-in"
        assert registry.describe()[0] == {"name": "alpha", "aliases": ["a"], "description": registry.describe()[0][
            "description"], "origin": "built-in"}

    def test_override(self):
        registry = self._registry()
        with pytest.raises(ValueError, match="widget name 'alpha' is already registered; pass override=True"):
            registry.register("alpha")(set)
        with pytest.raises(ValueError, match="widget name 'a' is already registered"):
            registry.register("other", aliases=("a",))(set)
        registry.register("alpha", override=True)(set)
        assert registry.get("alpha") is set and registry.get("a") is set  # the alias follows the name
        registry.register("delta")(tuple)
        assert registry.origin("delta") == "registered"  # after finish_builtins

    def test_exception(self):
        registry = self._registry()
        with pytest.raises(ValueError) as error:
            registry.get("alpah")
        assert str(error.value) == "unknown widget 'alpah'; did you mean 'alpha'? available: a, alpha, beta"
        with pytest.raises(ValueError) as error:
            registry.get("zzz")
        assert str(error.value) == "unknown widget 'zzz'; available: a, alpha, beta"
        with pytest.raises(ValueError, match="widget name must be a string, got int"):
            registry.get(3)
        with pytest.raises(ValueError, match="non-empty string"):
            registry.register("")

    def test_adapt_applies_to_registrations(self):
        registry = Registry("widget", "wsl.test-no-such-group", adapt=lambda obj: ("adapted", obj))
        assert registry.register("x")(dict) is dict  # the decorator gives the class back unchanged
        assert registry.get("x") == ("adapted", dict)

    def test_aggregator_registry_is_built_on_it(self):
        assert isinstance(registry.REGISTRY, Registry) and registry.REGISTRY.group == "wsl.aggregators"
        assert isinstance(video_method_registry.REGISTRY, Registry)
        assert video_method_registry.REGISTRY.group == "wsl_video.methods"

    def test_did_you_mean_for_aggregators(self):
        with pytest.raises(ValueError, match=r"^unknown aggregator 'weighted_summ'; did you mean 'weighted_sum'\? "
                                             r"available: "):
            get_aggregator("weighted_summ")


# ---------------------------------------------------------------- aggregator lookup without building


class Explosive(Aggregator):
    """An aggregator whose construction fails: the registry must never build it to answer a lookup."""

    uses_attention = True
    training_defaults = {"sparsity_weight": 0.5}

    def __init__(self, channels=None, depth: int = 2, *, width: float = 1.0):
        raise AssertionError("built")


class PlainModule(nn.Module):
    """A third-party pooling module that does not subclass Aggregator: mean and a softmax attention."""

    uses_attention = True

    def __init__(self, channels=None, temperature: float = 1.0):
        super().__init__()
        self.temperature = temperature
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x, mask=None):
        attention = torch.softmax(x.mean(1).flatten(1) / self.temperature, dim=1).reshape(x.shape[:1] + x.shape[2:])
        return self.scale * x.flatten(2).mean(2), attention, None


@pytest.fixture()
def extra_aggregators():
    wsl.register_aggregator("explosive_test", aliases=("boom_test",))(Explosive)
    wsl.register_aggregator("plain_module_test")(PlainModule)
    yield
    for name in ("explosive_test", "plain_module_test"):
        registry._factories.pop(name, None)
    registry.REGISTRY._aliases.pop("boom_test", None)


class TestAggregatorLookup:
    def test_smoke(self):
        from wsl.aggregators import MarginalizedAverage, WeightedSum

        assert get_aggregator("maa") is MarginalizedAverage
        assert get_aggregator("stpn") is WeightedSum
        info = aggregator_info("stpn")
        assert info.name == "weighted_sum" and info.uses_attention and info.aliases == ("stpn",)
        assert info.origin == "built-in" and info.description == WeightedSum.__doc__.strip().splitlines()[0]
        assert info.training_defaults == {"sparsity_weight": 1e-4}
        assert aggregator_info("gap").name == "mean" and not aggregator_info("gap").uses_attention
        assert aggregator_info("maa").training_defaults == {}

    def test_uses_attention_matches_built_aggregators(self):
        for name in wsl.list_aggregators():
            built = wsl.build_aggregator(name, channels=4)
            assert aggregator_info(name).uses_attention == built.uses_attention, name

    def test_never_builds(self, extra_aggregators):
        assert get_aggregator("boom_test") is Explosive
        info = aggregator_info("boom_test")
        assert (info.name, info.uses_attention, info.origin) == ("explosive_test", True, "registered")
        assert info.training_defaults == {"sparsity_weight": 0.5}
        check_aggregator_options("explosive_test", {"depth": 3, "width": 2.0})

    def test_exception(self, extra_aggregators):
        with pytest.raises(ValueError) as error:
            check_aggregator_options("explosive_test", {"dept": 3})
        assert str(error.value) == ("bad options for aggregator 'explosive_test': unexpected 'dept' "
                                    "(accepted: depth, width)")
        with pytest.raises(ValueError, match=r"unexpected 'rat' \(accepted: dropout, hidden, negative_slope, rate\)"):
            check_aggregator_options("dropout", {"rat": 0.5})  # **head_kwargs followed to the attention head
        with pytest.raises(ValueError, match="unexpected 'hidden'"):
            check_aggregator_options("mean", {"hidden": 8})
        with pytest.raises(ValueError, match="unknown aggregator 'nope'"):
            check_aggregator_options("nope", {})
        check_aggregator_options("softmax_norm", {"on": "logits", "hidden": 8})

    def test_train_checks_options_before_writing(self, tmp_path, capsys):
        out = tmp_path / "run"
        argv = ["train", "--dataset", "thumos14-sim", "--aggregator", "maa", "--out", str(out), "--quiet"]
        config = tmp_path / "c.yaml"
        config.write_text("model:\n  aggregator_kwargs: {hiden: 8}\n")
        assert video_cli.main([*argv, "--config", str(config)]) == 2
        err = capsys.readouterr().err.strip()
        assert err == ("wsl-video train: error: bad options for aggregator 'maa': unexpected 'hiden' "
                       "(accepted: dropout, exact, hidden, negative_slope)")
        assert not out.exists()


class TestAggregatorAdapter:
    def test_smoke(self, extra_aggregators):
        agg = wsl.build_aggregator("plain_module_test", channels=3, temperature=2.0)
        assert isinstance(agg, AggregatorAdapter) and isinstance(agg, Aggregator)
        assert agg.uses_attention and aggregator_info("plain_module_test").uses_attention
        x = torch.randn(2, 3, 5)
        out = agg(x)
        assert isinstance(out, Aggregation) and out.weights is None
        torch.testing.assert_close(out.pooled, x.mean(2))
        torch.testing.assert_close(out.attention.sum(1), torch.ones(2))
        torch.testing.assert_close(agg.attention_map(x), out.attention)
        assert [name for name, _ in agg.named_parameters()] == ["module.scale"]

    def test_exception(self, extra_aggregators):
        agg = wsl.build_aggregator("plain_module_test")
        with pytest.raises(ValueError, match="floating"):  # the Aggregator checks apply to wrapped modules too
            agg(torch.ones(2, 3, 4, dtype=torch.long))
        with pytest.raises(ValueError, match="unexpected 'temp'"):
            check_aggregator_options("plain_module_test", {"temp": 1.0})

    def test_in_video_model(self, extra_aggregators):
        from wsl_video.model import TemporalLocalizer

        model = TemporalLocalizer("plain_module_test", {"rgb": 4}, num_classes=3)
        assert model.uses_attention
        cas = model.cas({"rgb": torch.randn(2, 6, 4)})
        assert cas.shape == (2, 6, 3) and torch.isfinite(cas).all()


# ---------------------------------------------------------------- method registries


class TestMethodRegistry:
    def test_smoke(self):
        from wsl_image.methods.cam import CAM
        from wsl_video.methods.maan import MAAN

        assert "maan" in list_methods() and isinstance(get_method("maan"), MAAN)
        assert "cam" in list_image_methods() and isinstance(get_image_method("cam"), CAM)
        assert MAAN.takes_aggregator and not MAAN.needs_two_streams and CAM.takes_aggregator

    def test_aliases(self):
        class Tiny(VideoMethod):
            """A registered-in-code method."""

        try:
            assert register_method("tiny_test", aliases=("tt_test",))(Tiny) is Tiny
            assert type(get_method("tt_test")) is Tiny
            assert "tt_test" in list_methods(include_aliases=True) and "tt_test" not in list_methods()
            with pytest.raises(ValueError, match="method name 'maan' is already registered"):
                register_method("maan")(Tiny)
        finally:
            video_method_registry.REGISTRY._factories.pop("tiny_test", None)
            video_method_registry.REGISTRY._aliases.pop("tt_test", None)

    def test_exception(self):
        with pytest.raises(ValueError) as error:
            get_method("mann")
        assert str(error.value) == ("unknown method 'mann'; did you mean 'maan'? "
                                    "available: basnet, co2net, delu, maan, wtalc")
        with pytest.raises(TypeError, match="not a subclass of wsl_video.methods.VideoMethod"):
            register_method("bad_test")(dict)
        assert "bad_test" not in list_methods()
        with pytest.raises(TypeError, match="not a subclass of wsl_image.methods.ImageMethod"):
            from wsl_image.methods import register_method as register_image_method

            register_image_method("bad_test")(VideoMethod)

    def test_takes_aggregator(self):
        from wsl_video.run import check_aggregator

        class Fixed(VideoMethod):
            """Pools with its own fixed rule: the aggregator setting does not apply."""

            takes_aggregator = False

        config = RunConfig()
        config.model.aggregator = "nope"
        with pytest.raises(ValueError, match="unknown aggregator 'nope'"):
            check_aggregator(config)
        try:
            register_method("fixed_test")(Fixed)
            config.model.method = "fixed_test"
            check_aggregator(config)
        finally:
            video_method_registry.REGISTRY._factories.pop("fixed_test", None)

    def test_needs_two_streams(self):
        class TwoStream(VideoMethod):
            """Needs RGB and flow."""

            needs_two_streams = True

        config = RunConfig()
        config.data.streams, config.model.method = "joint", "two_test"
        with pytest.raises(ValueError, match="method 'two_test' needs separate RGB and flow streams"):
            TwoStream().resolve(config)


class TestMethodDefaults:
    @pytest.mark.parametrize("aggregator, expected", [("weighted_sum", 1e-4), ("stpn", 1e-4), ("maa", 0.0),
                                                      ("dropout", 0.0), ("mean", 0.0)])
    def test_sparsity_from_the_aggregator(self, aggregator, expected):
        config = RunConfig()
        config.model.aggregator = aggregator
        resolved = config.resolved()
        assert resolved.train.sparsity_weight == expected and type(resolved.train.sparsity_weight) is float
        config.train.sparsity_weight = 0.25
        assert config.resolved().train.sparsity_weight == 0.25  # a set value is kept

    def test_method_defaults_fill_unset_keys(self):
        class Sparse(VideoMethod):
            """Sparse by default."""

            defaults = {"train.sparsity_weight": 0.5, "inference.stream_weights": [0.3, 0.7]}

        config = RunConfig()
        config.inference.stream_weights = [0.5, 0.5]
        Sparse().resolve(config)
        assert config.train.sparsity_weight == 0.5 and config.inference.stream_weights == [0.5, 0.5]

    def test_image_method_defaults(self):
        class Evaluates(ImageMethod):
            """Evaluates with its own batch size."""

            defaults = {"eval_batch_size": 7}

        config = TrainConfig()
        assert Evaluates().resolve(config).eval_batch_size == 7 and config.eval_batch_size is None
        assert get_image_method("cam").resolve(config) is config

    def test_unknown_method_in_config(self):
        config = RunConfig()
        config.model.method = "nope"
        with pytest.raises(ValueError, match="unknown method 'nope'; available: basnet, co2net, delu, maan, wtalc"):
            config.resolved()


class TestConfigWithoutMethod:
    def test_video(self, tmp_path):
        path = tmp_path / "config.yaml"
        path.write_text("model:\n  aggregator: weighted_sum\n  aggregator_kwargs: {}\ntrain:\n  iterations: 3\n")
        config = load_config(path)
        assert config.model.method == "maan" and config.resolved().train.sparsity_weight == 1e-4

    def test_image(self, tmp_path):
        values = TrainConfig().to_dict()
        del values["method"]
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(values))
        assert load_image_config(path).method == "cam"

    def test_exception(self, tmp_path):
        path = tmp_path / "config.yaml"
        path.write_text("method: 3\n")
        with pytest.raises(ValueError, match="option method must be of type str, got 3"):
            load_image_config(path)
        path.write_text("model:\n  method: [maan]\n")
        with pytest.raises(ValueError, match=r"option model.method must be of type str, got \['maan'\]"):
            load_config(path).resolved()


# ---------------------------------------------------------------- commands


@pytest.mark.parametrize("prog, cli, argv, name, available", [
    ("wsl-video", video_cli, ["--dataset", "thumos14-sim"], "maan", "basnet, co2net, delu, maan, wtalc"),
    ("wsl-image", image_cli, ["--data-root", "nowhere"], "cam", "acol, adl, cam, cutmix, has, spg"),
])
def test_method_flag_exception(prog, cli, argv, name, available, capsys, tmp_path):
    out = tmp_path / "run"
    for method, hint in (("nope", "; "), (name[:-1], f"; did you mean '{name}'? ")):
        assert cli.main(["train", *argv, "--method", method, "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err == f"{prog} train: error: unknown method '{method}'{hint}available: {available}\n"
        assert not out.exists()


@pytest.mark.parametrize("cli, names, doc", [
    (video_cli, list_methods, "wsl_video.methods.maan:MAAN"),
    (image_cli, list_image_methods, "wsl_image.methods.cam:CAM"),
])
def test_methods_command(cli, names, doc, capsys):
    import importlib

    module, _, attribute = doc.partition(":")
    method = getattr(importlib.import_module(module), attribute)
    assert cli.main(["methods"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == names()
    line = next(line for line in lines if line.split()[0] == method.__module__.rsplit(".", 1)[-1])
    assert method.__doc__.strip().splitlines()[0] in line


# ---------------------------------------------------------------- entry-point plugins


PLUGIN_MODULE = '''
from wsl_video.methods import VideoMethod
from wsl_video.methods.maan import MAAN
from wsl_image.methods import ImageMethod


class Halved(MAAN):
    """MAAN with half its loss: a minimal third-party method."""

    def loss(self, outputs, labels, config):
        return 0.5 * super().loss(outputs, labels, config)


class NotAMethod:
    """Does not subclass VideoMethod."""


class ImageTiny(ImageMethod):
    """A third-party image method."""
'''

PROBE = '''
import json, sys, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    from wsl_video.methods import describe_methods, get_method, list_methods
    from wsl_image.methods import list_methods as image_methods
    result = {"names": list_methods(), "image_names": image_methods()}
    result["imported_after_list"] = "wsl_demo_methods" in sys.modules
    if "halved" in result["names"]:
        result["halved"] = type(get_method("halved")).__name__
        result["records"] = describe_methods()
        for name in ("broken", "not_a_method"):
            try:
                get_method(name)
            except ValueError as error:
                result[name] = str(error)
        result["names_after"] = list_methods()
        result["maan"] = type(get_method("maan")).__module__
result["warnings"] = [str(w.message) for w in caught]
print(json.dumps(result))
'''


def write_distribution(site: Path, name: str, entry_points: str, modules: dict[str, str]) -> None:
    """An installed distribution as pip leaves it: modules plus ``NAME-0.1.dist-info`` with entry_points.txt."""
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source)
    dist_info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(entry_points)
    (dist_info / "RECORD").write_text("")


def _run(site: Path, code_or_args, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]), "OMP_NUM_THREADS": "1",
                   **env}
    command = [sys.executable, "-c", code_or_args] if isinstance(code_or_args, str) else [sys.executable,
                                                                                           *code_or_args]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)


@pytest.fixture()
def method_site(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    write_distribution(site, "wsl-demo-methods", textwrap.dedent("""\
        [wsl_video.methods]
        halved = wsl_demo_methods:Halved
        broken = wsl_demo_broken_methods:Halved
        not_a_method = wsl_demo_methods:NotAMethod
        maan = wsl_demo_methods:Halved

        [wsl_image.methods]
        image_tiny = wsl_demo_methods:ImageTiny
        """), {"wsl_demo_methods": PLUGIN_MODULE,
               "wsl_demo_broken_methods": "raise ImportError('missing dependency xyz')\n"})
    return site


class TestMethodPlugins:
    def test_smoke(self, method_site):
        completed = _run(method_site, PROBE)
        assert completed.returncode == 0, completed.stderr
        result = json.loads(completed.stdout.strip().splitlines()[-1])
        assert result["names"] == ["basnet", "broken", "co2net", "delu", "halved", "maan", "not_a_method", "wtalc"]
        assert result["image_names"] == ["acol", "adl", "cam", "cutmix", "has", "image_tiny", "spg"]
        assert result["imported_after_list"] is False  # listing does not import plugins
        assert result["halved"] == "Halved"
        records = {record["name"]: record for record in result["records"]}
        assert records["halved"] == {"name": "halved", "aliases": [],
                                     "description": "MAAN with half its loss: a minimal third-party method.",
                                     "origin": "plugin from distribution 'wsl-demo-methods'"}
        assert records["maan"]["origin"] == "built-in" and set(records) == {"basnet", "co2net", "delu", "halved",
                                                                          "maan", "wtalc"}
        # broken plugins warn, name themselves and their distribution, and are dropped
        assert result["broken"].startswith(
            "unknown method 'broken'; available: basnet, co2net, delu, halved, maan, wtalc")
        assert result["not_a_method"].startswith("unknown method 'not_a_method'")
        assert result["names_after"] == ["basnet", "co2net", "delu", "halved", "maan", "wtalc"]
        warnings = result["warnings"]
        assert any("method 'broken'" in w and "wsl-demo-methods" in w and "missing dependency xyz" in w
                   for w in warnings), warnings
        assert any("method 'not_a_method'" in w and "not a subclass of wsl_video.methods.VideoMethod" in w
                   for w in warnings), warnings
        # no shadowing of a built-in
        assert result["maan"] == "wsl_video.methods.maan"
        assert any("method 'maan'" in w and "shadow" in w for w in warnings), warnings

    def test_disabled(self, method_site):
        completed = _run(method_site, PROBE, WSL_DISABLE_PLUGINS="1")
        assert completed.returncode == 0, completed.stderr
        result = json.loads(completed.stdout.strip().splitlines()[-1])
        assert result["names"] == ["basnet", "co2net", "delu", "maan", "wtalc"]
        assert result["image_names"] == ["acol", "adl", "cam", "cutmix", "has", "spg"] and result["warnings"] == []

    def test_methods_command_lists_plugins(self, method_site):
        completed = _run(method_site, ["-m", "wsl_video", "methods"])
        assert completed.returncode == 0, completed.stderr
        line = next(line for line in completed.stdout.splitlines() if line.startswith("halved"))
        assert "MAAN with half its loss" in line and "[plugin from distribution 'wsl-demo-methods']" in line
        assert completed.stderr.count("wsl-video: warning: wsl: plugin method") == 3  # shadowing, broken, not a method
        completed = _run(method_site, ["-m", "wsl_image", "methods"])
        assert completed.returncode == 0, completed.stderr
        assert any(line.startswith("image_tiny") and "A third-party image method." in line
                   for line in completed.stdout.splitlines())


def _entry_points(pyproject: Path) -> str:
    """The entry points of a pyproject.toml as the entry_points.txt pip writes (tables of ``name = "target"``)."""
    sections, current = {}, None
    for line in pyproject.read_text().splitlines():
        header = re.match(r'^\[project\.entry-points\."([^"]+)"\]$', line.strip())
        if header:
            current = sections.setdefault(header.group(1), [])
        elif line.startswith("["):
            current = None
        elif current is not None and "=" in line:
            name, _, target = line.partition("=")
            current.append(f"{name.strip()} = {target.strip().strip(chr(34))}")
    return "".join(f"[{group}]\n" + "\n".join(lines) + "\n\n" for group, lines in sections.items())


def _losses(run: Path) -> list[float]:
    return [float(value) for value in re.findall(r"loss ([0-9.]+)", (run / "train.log").read_text())]


def test_plugin_example_trains(tmp_path):
    """examples/method_plugin installed as a distribution: listed, and trained through `wsl-video train --method`."""
    site = tmp_path / "site"
    site.mkdir()
    entry_points = _entry_points(PLUGIN_EXAMPLE / "pyproject.toml")
    assert entry_points == "[wsl_video.methods]\nfocal_mil = wsl_focal_mil:FocalMIL\n\n"
    write_distribution(site, "wsl-focal-mil", entry_points,
                       {"wsl_focal_mil": (PLUGIN_EXAMPLE / "wsl_focal_mil.py").read_text()})
    listed = _run(site, ["-m", "wsl_video", "methods"])
    assert listed.returncode == 0, listed.stderr
    assert any(line.startswith("focal_mil") and "Focal MIL" in line and "wsl-focal-mil" in line
               for line in listed.stdout.splitlines()), listed.stdout
    (tmp_path / "log.yaml").write_text("train:\n  log_every: 1\n")
    common = ["-m", "wsl_video", "train", "--dataset", "thumos14-sim", "--sim", "videos=8", "--sim", "feature_dim=8",
              "--aggregator", "weighted_sum", "--iterations", "3", "--batch-size", "4", "--device", "cpu",
              "--config", str(tmp_path / "log.yaml"), "--quiet"]
    runs = {}
    for method in ("focal_mil", "maan"):
        runs[method] = tmp_path / method
        completed = _run(site, [*common, "--method", method, "--out", str(runs[method])])
        assert completed.returncode == 0, completed.stderr
        assert (runs[method] / "metrics.json").is_file() and (runs[method] / "detections.json").is_file()
    saved = yaml.safe_load((runs["focal_mil"] / "config.yaml").read_text())
    assert saved["model"]["method"] == "focal_mil"
    assert saved["train"]["sparsity_weight"] == 1e-3  # the plugin's default, not the aggregator's 1e-4
    assert yaml.safe_load((runs["maan"] / "config.yaml").read_text())["train"]["sparsity_weight"] == 1e-4
    # same seed, same first batch and initial weights: the focal loss is below the BCE it down-weights
    focal, maan = _losses(runs["focal_mil"]), _losses(runs["maan"])
    assert len(focal) == len(maan) == 3 and 0 < focal[0] < maan[0]
    # the run loads back through the plugin (detect rebuilds the model with the method)
    detected = _run(site, ["-m", "wsl_video", "detect", "--run", str(runs["focal_mil"]), "--output",
                           str(tmp_path / "d.json"), "--quiet"])
    assert detected.returncode == 0, detected.stderr


def test_tune_protocol_of_the_default_method_is_unchanged():
    """Studies recorded before methods existed have no method in their protocol: they still resume."""
    from wsl_video.tune import VideoTuneTask

    config = RunConfig()
    config.data.dataset, config.data.sim = "thumos14-sim", {"videos": 12, "feature_dim": 8}
    protocol = VideoTuneTask(config, held_out=3).protocol()
    assert "method" not in protocol["config"]["model"] and protocol["config"]["model"]["aggregator"] == "maa"
    try:
        register_method("copy_test")(type("Copy", (VideoMethod,), {"__doc__": "A copy."}))
        config.model.method = "copy_test"
        assert VideoTuneTask(config, held_out=3).protocol()["config"]["model"]["method"] == "copy_test"
    finally:
        video_method_registry.REGISTRY._factories.pop("copy_test", None)
