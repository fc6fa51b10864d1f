"""The ``custom`` dataset (annotations.json + manifest.json + features/ as ``wsl-video extract`` writes them),
RGB-only features, and the extractor record a run keeps."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import yaml

from wsl_video.cli import main
from wsl_video.data import open_dataset
from wsl_video.data.manifest import read_manifest
from wsl_video.data.records import FeatureDataset, Video

DIM = {"rgb": 6, "flow": 4}
EXTRACTOR = {
    "backbone": "i3d",
    "streams": ["rgb", "flow"],
    "feature_dims": dict(DIM),
    "fps": 25.0,
    "snippet": 16,
    "resize": "short256_crop224",
    "flow": "tvl1",
    "weights": {"rgb": {"path": "/models/rgb_imagenet.pt", "sha256": "ab" * 32},
                "flow": {"path": "/models/flow_imagenet.pt", "sha256": "cd" * 32}},
    "notes": {"nested": [1, 2.5, None, "x"]},  # opaque to readers: kept as it is
}
# stem -> (subset, duration in annotations.json (None: none there), annotations, T, seconds per snippet)
VIDEOS = {
    "clip_jump": ("train", 10.0, [(1.0, 3.0, "jump")], 15, 0.64),
    "clip_mixed": ("train", None, [(0.5, 2.0, "run"), (4.0, 6.0, "jump")], 12, 16 / 30),
    "clip_bg": ("train", 5.0, [], 8, 0.64),
    "clip_run": ("test", 8.3, [(2.0, 5.0, "run")], 20, 0.4),  # 8.3 / 20 is not the snippet length
    "clip_swim": ("test", 6.4, [(0.0, 2.56, "swim"), (3.2, 4.48, "Ambiguous")], 10, 0.64),
}
UNANNOTATED = "clip_extra"  # features and a manifest record, no annotation entry: ignored


def features_of(name: str, stream: str, t: int) -> np.ndarray:
    seed = sorted(VIDEOS).index(name) if name in VIDEOS else 99
    rng = np.random.default_rng([seed, len(stream)])
    return rng.random((t, DIM[stream])).astype(np.float32)


def write_custom(root, streams=("rgb", "flow")):
    """A custom dataset folder in the exact on-disk format (written by hand, not by the library)."""
    extractor = dict(EXTRACTOR, streams=list(streams), feature_dims={s: DIM[s] for s in streams})
    if streams == ("rgb",):
        extractor.update(flow=None, weights={"rgb": None})
    database, videos = {}, {}
    for name, (subset, duration, segments, t, seconds) in VIDEOS.items():
        record = {"subset": subset, "annotations": [{"label": c, "segment": [s, e]} for s, e, c in segments]}
        if duration is not None:
            record["duration"] = duration
        database[name] = record
        videos[name] = {"source": f"/videos/{name}.mp4", "source_fps": 29.97, "duration": t * seconds,
                        "frames": t * 16, "num_snippets": t, "seconds_per_snippet": seconds}
    videos[UNANNOTATED] = dict(videos["clip_bg"], source=f"/videos/{UNANNOTATED}.mp4")
    for name in [*VIDEOS, UNANNOTATED]:
        for stream in streams:
            folder = root / "features" / stream
            folder.mkdir(parents=True, exist_ok=True)
            np.save(folder / f"{name}.npy", features_of(name, stream, videos[name]["num_snippets"]))
    (root / "annotations.json").write_text(json.dumps({"version": "my clips", "database": database}))
    manifest = {"format": "wsl-video-features", "version": 1, "extractor": extractor, "videos": videos}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture
def two_root(tmp_path):
    return write_custom(tmp_path / "two")


@pytest.fixture
def rgb_root(tmp_path):
    return write_custom(tmp_path / "rgb", streams=("rgb",))


def edit_json(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


# --------------------------------------------------------------------------------------------- reading
def test_smoke(two_root):
    train = open_dataset("custom", "train", data_root=two_root)
    test = open_dataset("custom", "test", data_root=two_root)
    # every label is a class, "Ambiguous" too (custom data has no Ambiguous segments); "swim" is test-only
    assert train.classes == ["Ambiguous", "jump", "run", "swim"] == test.classes
    assert [v.name for v in train.videos] == ["clip_jump", "clip_mixed", "clip_bg"]
    assert [v.name for v in test.videos] == ["clip_run", "clip_swim"]
    assert train.streams == ("rgb", "flow") and train.feature_dims == DIM
    assert train.name == "custom" and train.ambiguous == {} and test.ambiguous == {}
    assert train.extractor == EXTRACTOR and test.extractor == EXTRACTOR
    for ds in (train, test):
        for video in ds.videos:
            subset, duration, annotations, t, seconds = VIDEOS[video.name]
            assert video.num_snippets == t and video.seconds_per_snippet == seconds  # from the manifest
            assert video.annotations == sorted(annotations) and video.subset == subset
            # the duration of annotations.json, else the manifest's
            assert video.duration == pytest.approx(duration if duration is not None else t * seconds)
            feats = ds.features(video.name)
            for stream in ("rgb", "flow"):
                assert np.array_equal(feats[stream], features_of(video.name, stream, t))
    np.testing.assert_array_equal(train.label_matrix(), [[0, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]])
    gt = test.ground_truth()
    assert gt["version"] == "my clips"
    assert {v: e["subset"] for v, e in gt["database"].items()} == {"clip_run": "test", "clip_swim": "test"}
    json.dumps(gt)


def test_snippet_times_from_manifest(two_root):
    """A segment maps to snippets with each video's own seconds_per_snippet (hand-computed)."""
    test = open_dataset("custom", "test", data_root=two_root)
    run = test.video("clip_run")  # 0.4 s snippets: [2.0, 5.0] covers snippets 5..12
    assert np.flatnonzero(run.snippet_mask(test.classes)[:, test.classes.index("run")]).tolist() == list(range(5, 13))
    train = open_dataset("custom", "train", data_root=two_root)
    mixed = train.video("clip_mixed")  # 16/30 s snippets: [4.0, 6.0] covers snippets 7..11
    mask = mixed.snippet_mask(train.classes)[:, train.classes.index("jump")]
    assert np.flatnonzero(mask).tolist() == [7, 8, 9, 10, 11]


def test_joint_streams(two_root, rgb_root):
    ds = open_dataset("custom", "train", data_root=two_root, streams="joint")
    assert ds.streams == ("joint",) and ds.feature_dims == {"joint": 10}
    expected = np.hstack([features_of("clip_jump", "rgb", 15), features_of("clip_jump", "flow", 15)])
    assert np.array_equal(ds.features("clip_jump")["joint"], expected)
    ds = open_dataset("custom", "train", data_root=rgb_root, streams="joint")
    assert ds.feature_dims == {"joint": 6}
    assert np.array_equal(ds.features("clip_jump")["joint"], features_of("clip_jump", "rgb", 15))


def test_rgb_only(rgb_root):
    assert not (rgb_root / "features" / "flow").exists()
    ds = open_dataset("custom", "train", data_root=rgb_root)
    assert ds.streams == ("rgb",) and ds.feature_dims == {"rgb": 6} and ds.feature_dim == 6
    feats = ds.features(0)
    assert list(feats) == ["rgb"] and np.array_equal(feats["rgb"], features_of("clip_jump", "rgb", 15))
    assert ds.extractor["streams"] == ["rgb"] and ds.extractor["flow"] is None
    ds.preload()
    assert np.array_equal(ds.features(0)["rgb"], feats["rgb"])


def test_rgb_only_ignores_stray_flow(rgb_root):
    """The manifest decides the streams: a flow folder beside RGB-only features is not read."""
    folder = rgb_root / "features" / "flow"
    folder.mkdir()
    np.save(folder / "clip_jump.npy", np.zeros((3, 2), dtype=np.float32))
    assert open_dataset("custom", "train", data_root=rgb_root).streams == ("rgb",)


def test_feature_dataset_native_streams():
    video = Video("v", 1.0, (), [], 2, 0.5)
    ds = FeatureDataset("x", "train", ["a"], [video], lambda v: {"rgb": np.ones((2, 3))}, {"rgb": 3})
    assert ds.streams == ("rgb",) and ds.features(0)["rgb"].shape == (2, 3) and ds.extractor is None
    with pytest.raises(ValueError, match="native streams"):
        FeatureDataset("x", "train", ["a"], [video], lambda v: {"flow": np.ones((2, 3))}, {"flow": 3})


def test_read_manifest(two_root):
    manifest = read_manifest(two_root / "manifest.json")
    assert manifest.streams == ("rgb", "flow") and manifest.extractor == EXTRACTOR and len(manifest) == 6
    record = manifest.video("clip_mixed")
    assert (record.num_snippets, record.seconds_per_snippet) == (12, 16 / 30)
    edit_json(two_root / "manifest.json", lambda m: m["extractor"].update(streams=["flow", "rgb"]))
    assert read_manifest(two_root / "manifest.json").streams == ("rgb", "flow")  # order does not matter


def test_minimal_hand_written_manifest(two_root):
    """The keys the docs list for a hand-written manifest are enough (features made by another tool)."""
    manifest = json.loads((two_root / "manifest.json").read_text())
    minimal = {"format": "wsl-video-features", "version": 1,
               "extractor": {"streams": ["rgb", "flow"]},
               "videos": {name: {key: record[key] for key in ("num_snippets", "seconds_per_snippet")}
                          for name, record in manifest["videos"].items()}}
    (two_root / "manifest.json").write_text(json.dumps(minimal))
    ds = open_dataset("custom", "train", data_root=two_root)
    assert ds.feature_dims == DIM and ds.extractor == {"streams": ["rgb", "flow"]}
    assert ds.video("clip_mixed").duration is None  # neither file gives it


def test_layout_option(two_root):
    assert len(open_dataset("custom", "test", data_root=two_root, layout="custom")) == 2
    with pytest.raises(ValueError, match="layout"):
        open_dataset("custom", "test", data_root=two_root, layout="wtalc")
    with pytest.raises(ValueError, match="needs data_root"):
        open_dataset("custom", "test")


def test_skip_missing(two_root):
    (two_root / "features" / "flow" / "clip_bg.npy").unlink()
    with pytest.raises(FileNotFoundError, match="clip_bg"):
        open_dataset("custom", "train", data_root=two_root)
    with pytest.warns(UserWarning, match="skipped 1 video"):
        ds = open_dataset("custom", "train", data_root=two_root, skip_missing=True)
    assert [v.name for v in ds.videos] == ["clip_jump", "clip_mixed"]


# ------------------------------------------------------------------------------------ bad input, via the CLI
def _bad(capsys, argv, *expected):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"wsl-video {argv[0]}: error:"), err
    for text in expected:
        assert text in err, err
    return err


def _remove(root, *parts):
    root.joinpath(*parts).unlink()


def _set_subset(value):
    return lambda root: edit_json(root / "annotations.json",
                                  lambda a: a["database"]["clip_run"].update(subset=value))


def _set_video(**fields):
    return lambda root: edit_json(root / "manifest.json", lambda m: m["videos"]["clip_mixed"].update(fields))


def _drop_manifest_video(root):
    edit_json(root / "manifest.json", lambda m: m["videos"].pop("clip_mixed"))


def _save(path, array):
    np.save(path, array)


BAD = {
    "no annotations": (lambda r: _remove(r, "annotations.json"), ["annotations.json", "not found"]),
    "corrupt annotations": (lambda r: (r / "annotations.json").write_text("{\"database\": {"),
                            ["annotations.json", "corrupt JSON"]),
    "not activitynet style": (lambda r: (r / "annotations.json").write_text("[]"),
                              ["annotations.json", "'database'"]),
    "subset validation": (_set_subset("validation"), ["annotations.json", "clip_run", "'validation'",
                                                      "'train' or 'test'", "THUMOS14", "ActivityNet"]),
    "subset training": (_set_subset("training"), ["clip_run", "'training'", "write 'train' instead"]),
    "subset Test": (_set_subset("Test"), ["clip_run", "'Test'", "write 'test' instead"]),
    "subset number": (_set_subset(1), ["clip_run", "subset 1;"]),
    "no subset": (_set_subset(None), ["clip_run", "has no subset"]),
    "bad segment": (lambda r: edit_json(r / "annotations.json", lambda a: a["database"]["clip_jump"].update(
        annotations=[{"label": "jump", "segment": [3.0, 1.0]}])),
        ["annotations.json", "clip_jump", "segment end 1.0 is before its start 3.0"]),
    "no labels": (lambda r: edit_json(r / "annotations.json", lambda a: [
        e.update(annotations=[]) for e in a["database"].values()]), ["annotations.json", "no class"]),
    "no manifest": (lambda r: _remove(r, "manifest.json"), ["manifest.json", "not found"]),
    "corrupt manifest": (lambda r: (r / "manifest.json").write_text("{"), ["manifest.json", "corrupt JSON"]),
    "manifest format": (lambda r: edit_json(r / "manifest.json", lambda m: m.update(format="other")),
                        ["manifest.json", "format 'other'"]),
    "manifest version": (lambda r: edit_json(r / "manifest.json", lambda m: m.update(version=2)),
                         ["manifest.json", "version 2"]),
    "manifest streams": (lambda r: edit_json(r / "manifest.json", lambda m: m["extractor"].update(streams=["flow"])),
                         ["manifest.json", "extractor.streams"]),
    "manifest without extractor": (lambda r: edit_json(r / "manifest.json", lambda m: m.pop("extractor")),
                                   ["manifest.json", "'extractor'"]),
    "video missing from manifest": (_drop_manifest_video, ["manifest.json", "clip_mixed", "not in the manifest",
                                                           "features/rgb/clip_mixed.npy"]),
    "T mismatch": (_set_video(num_snippets=13), ["features/rgb/clip_mixed.npy", "clip_mixed", "12 snippets",
                                                 "num_snippets 13", "manifest.json"]),
    "bad seconds_per_snippet": (_set_video(seconds_per_snippet=0), ["manifest.json", "clip_mixed",
                                                                     "seconds_per_snippet"]),
    "bad num_snippets": (_set_video(num_snippets=12.5), ["manifest.json", "clip_mixed", "num_snippets"]),
    "stream length mismatch": (lambda r: _save(r / "features" / "flow" / "clip_mixed.npy",
                                               features_of("clip_mixed", "flow", 11)),
                               ["features/flow/clip_mixed.npy", "clip_mixed", "11 snippets", "num_snippets 12"]),
    "dims differ from manifest": (lambda r: _save(r / "features" / "rgb" / "clip_jump.npy",
                                                  np.zeros((15, 5), dtype=np.float32)),
                                  ["features/rgb/clip_jump.npy", "clip_jump", "5 dims", "feature_dims 6"]),
    "missing features": (lambda r: _remove(r, "features", "flow", "clip_bg.npy"),
                         ["features/flow/clip_bg.npy", "clip_bg", "not found", "--skip-missing"]),
    "corrupt features": (lambda r: (r / "features" / "rgb" / "clip_jump.npy").write_bytes(b"not npy"),
                         ["features/rgb/clip_jump.npy", "corrupt"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_exception_cli(case, two_root, tmp_path, capsys):
    """Each bad input: one line naming the file (and video), exit 2, no traceback, no run folder written."""
    damage, expected = BAD[case]
    damage(two_root)
    out = tmp_path / "run"
    _bad(capsys, ["train", "--dataset", "custom", "--data-root", str(two_root), "--out", str(out),
                  "--iterations", "2", "--device", "cpu", "--quiet"], *expected)
    assert not out.exists()


def test_exception_cli_folders(tmp_path, capsys):
    _bad(capsys, ["train", "--dataset", "custom", "--data-root", str(tmp_path / "nowhere"), "--out",
                  str(tmp_path / "run"), "--quiet"], "nowhere", "not found")
    _bad(capsys, ["train", "--dataset", "custom", "--out", str(tmp_path / "run"), "--quiet"], "data_root")


def test_exception_empty_subset(two_root, tmp_path, capsys):
    edit_json(two_root / "annotations.json", lambda a: [e.update(subset="train") for e in a["database"].values()])
    assert len(open_dataset("custom", "train", data_root=two_root)) == 5
    _bad(capsys, ["train", "--dataset", "custom", "--data-root", str(two_root), "--out", str(tmp_path / "run"),
                  "--iterations", "2", "--device", "cpu", "--quiet"], "annotations.json", "no video has subset 'test'")


def test_exception_seconds_per_snippet_config(two_root, tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data": {"seconds_per_snippet": 0.5}}))
    _bad(capsys, ["train", "--dataset", "custom", "--data-root", str(two_root), "--config", str(config), "--out",
                  str(tmp_path / "run"), "--quiet"], "seconds_per_snippet", "manifest.json")


def test_skip_missing_cli(two_root, tmp_path, capsys):
    _remove(two_root, "features", "rgb", "clip_bg.npy")
    out = tmp_path / "run"
    assert main(["train", "--dataset", "custom", "--data-root", str(two_root), "--skip-missing", "--out", str(out),
                 "--iterations", "2", "--batch-size", "2", "--device", "cpu", "--no-eval", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "wsl-video: warning:" in err and "skipped 1 video" in err and "clip_bg" in err, err
    assert "2 videos" in (out / "train.log").read_text()


def test_make_sim_rgb_only_needs_custom(tmp_path, capsys):
    _bad(capsys, ["make-sim", "--layout", "bas", "--rgb-only", "--out", str(tmp_path / "d")], "--rgb-only")


# ------------------------------------------------------------------------------------------ end to end
TINY = ["--iterations", "6", "--batch-size", "2", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def sim_custom(tmp_path_factory):
    """thumos14-sim written as a custom dataset by make-sim, two streams and RGB-only."""
    base = tmp_path_factory.mktemp("custom-sim")
    roots = {}
    for kind, extra in (("two", []), ("rgb", ["--rgb-only"])):
        roots[kind] = base / kind
        argv = ["make-sim", "--layout", "custom", "--videos", "4", "--feature-dim", "8", "--seed", "3",
                "--out", str(roots[kind]), *extra]
        assert main(argv) == 0
    return roots


@pytest.fixture(scope="module")
def custom_runs(sim_custom, tmp_path_factory):
    base = tmp_path_factory.mktemp("custom-runs")
    runs = {}
    for kind, root in sim_custom.items():
        runs[kind] = base / kind
        assert main(["train", "--dataset", "custom", "--data-root", str(root), "--out", str(runs[kind]), *TINY]) == 0
    return runs


def test_make_sim_custom_layout(sim_custom):
    """make-sim writes the manifest contract: simulated extractor record, per-video times, files per stream."""
    root = sim_custom["two"]
    manifest = json.loads((root / "manifest.json").read_text())
    extractor = manifest["extractor"]
    assert manifest["format"] == "wsl-video-features" and manifest["version"] == 1
    assert extractor["backbone"] == "thumos14-sim" and extractor["simulated"] is True and extractor["seed"] == 3
    assert extractor["streams"] == ["rgb", "flow"] and extractor["feature_dims"] == {"rgb": 8, "flow": 8}
    assert extractor["fps"] * 0.64 == extractor["snippet"] == 16
    annotations = json.loads((root / "annotations.json").read_text())["database"]
    assert len(annotations) == 8 and {e["subset"] for e in annotations.values()} == {"train", "test"}
    assert set(manifest["videos"]) == set(annotations)
    sim = open_dataset("thumos14-sim", "test", seed=3, sim={"videos": 4, "feature_dim": 8})
    custom = open_dataset("custom", "test", data_root=root)
    assert [v.name for v in custom.videos] == [v.name for v in sim.videos]
    for video in sim.videos:
        record = manifest["videos"][video.name]
        assert record["num_snippets"] == video.num_snippets and record["seconds_per_snippet"] == 0.64
        flow = np.load(root / "features" / "flow" / f"{video.name}.npy")
        assert np.array_equal(flow, sim.features(video.name)["flow"])
        assert custom.video(video.name).annotations == video.annotations
    rgb = json.loads((sim_custom["rgb"] / "manifest.json").read_text())["extractor"]
    assert rgb["streams"] == ["rgb"] and rgb["flow"] is None
    assert not (sim_custom["rgb"] / "features" / "flow").exists()


def test_train_detect_evaluate(sim_custom, custom_runs, tmp_path, capsys):
    """train -> detect -> evaluate on custom data; THUMOS14 defaults; evaluate on annotations.json agrees."""
    from wsl_video.config import THUMOS_TIOU, load_config

    run, root = custom_runs["two"], sim_custom["two"]
    config = load_config(run / "config.yaml")
    metrics = json.loads((run / "metrics.json").read_text())
    assert config.data.dataset == "custom" and config.inference.cas_thresholds == [0.2]
    assert metrics["tiou_thresholds"] == THUMOS_TIOU and "average_mAP_0.1_0.7" in metrics
    detections = tmp_path / "detections.json"
    assert main(["detect", "--run", str(run), "--output", str(detections), "--device", "cpu", "--quiet"]) == 0
    assert json.loads(detections.read_text()) == json.loads((run / "detections.json").read_text())
    output = tmp_path / "metrics.json"
    assert main(["evaluate", "--ground-truth", str(root / "annotations.json"), "--predictions", str(detections),
                 "--tiou-thresholds", "0.1:0.1:0.9", "--output", str(output)]) == 0
    capsys.readouterr()
    evaluated = json.loads(output.read_text())
    assert evaluated["subset"] == "test"
    np.testing.assert_allclose(evaluated["mAP"], metrics["mAP"], rtol=0, atol=1e-12)
    assert evaluated["classification_mAP"] == pytest.approx(metrics["cls_mAP"], abs=1e-12)
    png = tmp_path / "cas.png"
    video = next(iter(json.loads((run / "detections.json").read_text())["results"]))
    assert main(["plot", "--run", str(run), str(custom_runs["rgb"]), "--video", video, "--out", str(png)]) == 0
    assert png.stat().st_size > 0


def test_rgb_only_run(custom_runs, sim_custom):
    """An RGB-only run has one stream and one classifier; its CAS and scores are that stream's."""
    from wsl_video.run import load_run

    run = custom_runs["rgb"]
    config, model, state = load_run(run)
    assert state["feature_dims"] == {"rgb": 8} and model.stream_names == ("rgb",)
    assert model.stream_weights == [1.0]
    assert all(key.startswith("streams.rgb.") for key in state["model"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_videos"] == 4 and np.all(np.isfinite(metrics["mAP"]))
    ds = open_dataset("custom", "test", data_root=sim_custom["rgb"])
    features = {"rgb": torch.as_tensor(ds.features(0)["rgb"])[None]}
    with torch.no_grad():
        assert torch.equal(model.cas(features), model.streams["rgb"].cas(features["rgb"]))


def test_run_records_extractor(custom_runs, sim_custom):
    from wsl_video.run import run_extractor

    for kind, run in custom_runs.items():
        manifest = json.loads((sim_custom[kind] / "manifest.json").read_text())
        assert run_extractor(run) == manifest["extractor"]
        saved = yaml.safe_load((run / "config.yaml").read_text())
        assert saved["data"]["extractor"] == manifest["extractor"]  # readable in config.yaml
        state = torch.load(run / "checkpoint.pt", weights_only=True)
        assert state["config"]["data"]["extractor"] == manifest["extractor"]


def test_run_records_extractor_from_hand_made_manifest(two_root, tmp_path):
    """Opaque keys of the extractor record survive the YAML round trip unchanged."""
    from wsl_video.run import run_extractor

    run = tmp_path / "run"
    assert main(["train", "--dataset", "custom", "--data-root", str(two_root), "--out", str(run), *TINY]) == 0
    assert run_extractor(run) == EXTRACTOR
    record = run_extractor(run)
    record["fps"] = 1.0  # a copy: the caller may change it
    assert run_extractor(run) == EXTRACTOR


def test_unknown_origin(custom_runs, tmp_path):
    """thumos14-sim runs record no extractor (explicit null); an old config without the key loads as None;
    a config copied from a custom run does not carry its record over to other features."""
    from wsl_video.run import load_run, run_extractor

    sim_run = tmp_path / "sim"
    argv = ["train", "--dataset", "thumos14-sim", "--sim", "videos=4", "--sim", "feature_dim=8", "--out"]
    assert main([*argv, str(sim_run), "--no-eval", *TINY]) == 0
    assert run_extractor(sim_run) is None
    assert yaml.safe_load((sim_run / "config.yaml").read_text())["data"]["extractor"] is None
    old = tmp_path / "old"
    shutil.copytree(sim_run, old)
    saved = yaml.safe_load((old / "config.yaml").read_text())
    del saved["data"]["extractor"]
    (old / "config.yaml").write_text(yaml.safe_dump(saved))
    assert run_extractor(old) is None
    config, _, _ = load_run(old)
    assert config.data.extractor is None
    copied = tmp_path / "copied"
    custom_config = str(custom_runs["two"] / "config.yaml")
    assert main([*argv, str(copied), "--config", custom_config, "--no-eval", *TINY]) == 0
    assert run_extractor(copied) is None
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        run_extractor(tmp_path / "nothing")


def test_resume_refuses_other_extraction(sim_custom, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(sim_custom["two"], root)
    run = tmp_path / "run"
    base = ["train", "--dataset", "custom", "--data-root", str(root), "--out", str(run), "--no-eval"]
    assert main([*base, *TINY]) == 0
    assert main(["train", "--out", str(run), "--resume", "--iterations", "8", "--no-eval", "--quiet"]) == 0
    edit_json(root / "manifest.json", lambda m: m["extractor"].update(fps=30.0))
    _bad(capsys, ["train", "--out", str(run), "--resume", "--iterations", "10", "--no-eval", "--quiet"],
         "cannot resume", "fps")
    assert torch.load(run / "checkpoint.pt", weights_only=True)["iteration"] == 8


def test_copied_run_evaluates(custom_runs, sim_custom, tmp_path, capsys):
    """A run folder copied elsewhere detects with its recorded data root, and with --data-root when the
    data moved too; the detections are the same and the extractor record travels with the run."""
    from wsl_video.run import run_extractor

    run = tmp_path / "moved" / "run"
    shutil.copytree(custom_runs["two"], run)
    data = tmp_path / "moved" / "data"
    shutil.copytree(sim_custom["two"], data)
    expected = json.loads((custom_runs["two"] / "detections.json").read_text())
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["detect", "--run", str(run), "--output", str(first), "--device", "cpu", "--quiet"]) == 0
    assert main(["detect", "--run", str(run), "--data-root", str(data), "--output", str(second), "--device", "cpu",
                 "--quiet"]) == 0
    assert json.loads(first.read_text()) == expected == json.loads(second.read_text())
    assert run_extractor(run) == run_extractor(custom_runs["two"]) is not None
    output = tmp_path / "m.json"
    assert main(["evaluate", "--ground-truth", str(data / "annotations.json"), "--predictions", str(second),
                 "--tiou-thresholds", "0.1:0.1:0.9", "--output", str(output)]) == 0
    capsys.readouterr()
    metrics = json.loads((custom_runs["two"] / "metrics.json").read_text())
    np.testing.assert_allclose(json.loads(output.read_text())["mAP"], metrics["mAP"], rtol=0, atol=1e-12)


def test_detect_refuses_other_features(custom_runs, sim_custom, tmp_path, capsys):
    """detect on a data root with other feature sizes or another class list: one line, exit 2, no file."""
    other_dims = tmp_path / "dims"
    assert main(["make-sim", "--layout", "custom", "--videos", "4", "--feature-dim", "12", "--seed", "3",
                 "--out", str(other_dims)]) == 0
    capsys.readouterr()
    output = tmp_path / "detections.json"
    argv = ["detect", "--run", str(custom_runs["two"]), "--output", str(output), "--quiet", "--data-root"]
    assert main([*argv, str(other_dims)]) == 2
    error = capsys.readouterr().err.strip()
    assert "12 dims, the model was trained on 8" in error and len(error.splitlines()) == 1
    assert not output.exists()

    renamed = tmp_path / "renamed"
    shutil.copytree(sim_custom["two"], renamed)
    path = renamed / "annotations.json"
    text = path.read_text()
    label = json.loads(text)["database"]
    first = next(a["label"] for entry in label.values() for a in entry["annotations"])
    path.write_text(text.replace(f'"{first}"', '"SomethingElse"'))
    assert main([*argv, str(renamed)]) == 2
    error = capsys.readouterr().err.strip()
    assert "classes only one side has" in error and "SomethingElse" in error and len(error.splitlines()) == 1
    assert not output.exists()
