"""``wsl-video localize``: video files -> features as the run's were extracted -> detections and plots.

End to end on synthetic PyAV videos: extract -> train --dataset custom -> localize, with randomly
initialised I3D weights saved in the PyTorch port's checkpoint format (He-initialised convolutions, so
that the features vary with the video instead of vanishing through the 20 layers).
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from video_synth import moving_pattern, texture, write_video

from wsl_video.cli import main
from wsl_video.detections import load_detections

FAST = ["--resize", "short24_crop16", "--snippet", "4", "--workers", "0", "--device", "cpu", "--batch-size", "4",
        "--quiet"]
TRAIN = ["--iterations", "40", "--batch-size", "4", "--num-segments", "4", "--device", "cpu", "--quiet"]
FPS = 25
# name: (subset, frames, [(first frame, last frame + 1, class)])
VIDEOS = {
    "slide_1": ("train", 60, [(16, 40, "slide")]),
    "slide_2": ("train", 72, [(32, 60, "slide")]),
    "rise_1": ("train", 60, [(8, 32, "rise")]),
    "rise_2": ("train", 64, [(28, 56, "rise")]),
    "both_1": ("train", 80, [(8, 28, "slide"), (48, 72, "rise")]),
    "test_slide": ("test", 64, [(24, 48, "slide")]),
    "test_rise": ("test", 68, [(12, 40, "rise")]),
}


def _weights(folder: Path) -> list:
    """rgb_imagenet.pt / flow_imagenet.pt-format checkpoints with random weights; the extract options."""
    from wsl_video.features import load_i3d

    folder.mkdir(parents=True, exist_ok=True)
    for seed, modality in enumerate(("rgb", "flow")):
        network = load_i3d(modality)
        torch.manual_seed(seed)
        for module in network.modules():
            if isinstance(module, torch.nn.Conv3d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        torch.save(network.state_dict(), folder / f"{modality}_imagenet.pt")
    return ["--rgb-weights", str(folder / "rgb_imagenet.pt"), "--flow-weights", str(folder / "flow_imagenet.pt")]


def _frames(count: int, actions, seed: int) -> np.ndarray:
    """A still background texture; each action a moving texture (slide: right, rise: up)."""
    still = np.repeat(texture(24, 32, seed=100 + seed)[None], count, axis=0)
    for first, last, label in actions:
        motion = {"slide": dict(dx=2), "rise": dict(dy=-2)}[label]
        still[first:last] = moving_pattern(last - first, 24, 32, seed=seed, **motion)
    return still


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Videos, their extracted features with annotations, and a run trained on them."""
    base = tmp_path_factory.mktemp("localize")
    (base / "videos").mkdir()
    videos = {}
    for seed, (name, (_, count, actions)) in enumerate(VIDEOS.items()):
        videos[name] = write_video(base / "videos" / f"{name}.mp4", _frames(count, actions, seed), FPS)
    data = base / "data"
    weights = _weights(base / "weights")
    assert main(["extract", *map(str, videos.values()), "--out", str(data), *weights, *FAST]) == 0
    database = {name: {"subset": subset, "duration": count / FPS,
                       "annotations": [{"label": label, "segment": [first / FPS, last / FPS]}
                                       for first, last, label in actions]}
                for name, (subset, count, actions) in VIDEOS.items()}
    (data / "annotations.json").write_text(json.dumps({"database": database}))
    run = base / "run"
    assert main(["train", "--dataset", "custom", "--data-root", str(data), "--out", str(run), *TRAIN]) == 0
    return {"base": base, "videos": videos, "data": data, "run": run}


def _test_videos(trained) -> list:
    return [str(path) for name, path in trained["videos"].items() if VIDEOS[name][0] == "test"]


def test_smoke(trained, tmp_path, capsys):
    """detections.json in the ActivityNet format, keyed by the file stems, one PNG per video."""
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["localize", *_test_videos(trained), "--run", str(trained["run"]), "--out", str(out),
                 "--workers", "0", "--quiet"]) == 0
    summary = capsys.readouterr().out
    assert "in 2 videos (0 failed)" in summary and str(out / "detections.json") in summary
    raw = json.loads((out / "detections.json").read_text())
    assert raw["version"] == "VERSION 1.3" and set(raw["results"]) == {"test_slide", "test_rise"}
    results, video_scores = load_detections(out / "detections.json")
    for name, rows in results.items():
        duration = VIDEOS[name][1] / FPS
        assert rows, f"no detection in {name}"
        for row in rows:
            assert row["label"] in {"slide", "rise"}
            start, end = row["segment"]
            assert 0 <= start < end <= duration + 1e-6
        assert set(video_scores[name]) == {"slide", "rise"}
    for name in ("test_slide", "test_rise"):
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.rglob("*.tmp"))


def test_same_detections_as_detect(trained, tmp_path):
    """localize extracts the features the run's data holds, so it finds exactly what detect finds there."""
    out = tmp_path / "out"
    assert main(["localize", *_test_videos(trained), "--run", str(trained["run"]), "--out", str(out),
                 "--workers", "0", "--no-plots", "--quiet"]) == 0
    assert not list(out.glob("*.png"))
    detected = tmp_path / "detect.json"
    assert main(["detect", "--run", str(trained["run"]), "--out", str(detected), "--quiet"]) == 0
    ours, theirs = json.loads((out / "detections.json").read_text()), json.loads(detected.read_text())
    assert set(ours["results"]) == set(theirs["results"])
    for name in ours["results"]:
        key = lambda row: (row["label"], row["segment"][0])  # noqa: E731
        a, b = sorted(ours["results"][name], key=key), sorted(theirs["results"][name], key=key)
        assert [r["label"] for r in a] == [r["label"] for r in b]
        np.testing.assert_allclose([r["segment"] for r in a], [r["segment"] for r in b], atol=1e-6)
        np.testing.assert_allclose([r["score"] for r in a], [r["score"] for r in b], rtol=1e-4, atol=1e-6)
        for label, p in theirs["video_scores"][name].items():
            assert ours["video_scores"][name][label] == pytest.approx(p, rel=1e-4, abs=1e-6)


def test_module(trained, tmp_path):
    """The Python API: settings from the run's record, a LocalizedVideo per file, a plot of its classes."""
    from wsl_video.localize import VideoLocalizer, localization_settings

    settings = localization_settings(trained["run"])
    assert (settings.snippet, settings.resize, settings.flow_method, settings.random_weights) == \
        (4, "short24_crop16", "tvl1", False)
    assert Path(settings.rgb_weights).name == "rgb_imagenet.pt"
    with VideoLocalizer(trained["run"], settings, device="cpu", batch_size=4) as localizer:
        video = localizer.localize(trained["videos"]["test_rise"])
        assert video.name == "test_rise" and video.seconds_per_snippet == pytest.approx(0.16)
        assert video.cas.shape == (68 // 4, 2) and set(video.scores) == {"slide", "rise"}
        assert [d[3] for d in video.detections] == sorted((d[3] for d in video.detections), reverse=True)
        plotted = localizer.plot(video, tmp_path / "rise.png")
    assert set(plotted) == {d[0] for d in video.detections} and (tmp_path / "rise.png").is_file()


def test_plot_draws_the_attention_a_co2net_run_cuts(trained, tmp_path, monkeypatch):
    """A CO2-Net run localizes by cutting its fused attention: the LocalizedVideo keeps it, and the plot
    draws it with the run's thresholds instead of fractions of the CAS."""
    from wsl_video import plot
    from wsl_video.localize import VideoLocalizer, localization_settings

    run = tmp_path / "co2net"
    assert main(["train", "--dataset", "custom", "--data-root", str(trained["data"]), "--out", str(run),
                 "--method", "co2net", "--iterations", "2", "--batch-size", "2", "--num-segments", "4",
                 "--device", "cpu", "--quiet"]) == 0
    drawn = []
    monkeypatch.setattr(plot, "plot_cas", lambda path, rows, *args, **kwargs: drawn.extend(rows))
    with VideoLocalizer(run, localization_settings(run), device="cpu", batch_size=4) as localizer:
        video = localizer.localize(trained["videos"]["test_rise"])
        localizer.plot(video, tmp_path / "rise.png")
    assert video.attention is not None and video.attention.shape == (video.cas.shape[0],)
    thresholds = localizer.config.inference.cas_thresholds
    assert drawn and len(thresholds) == 10
    for row in drawn:
        assert row.cut.name == "fused attention" and list(row.cut.levels) == pytest.approx(thresholds)
        np.testing.assert_allclose(row.cut.values, video.attention)


def test_never_overwrites(trained, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["localize", _test_videos(trained)[0], "--run", str(trained["run"]), "--out", str(out), "--workers", "0",
            "--quiet"]
    assert main(argv) == 0
    before = (out / "detections.json").read_bytes()
    capsys.readouterr()
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert "detections.json exists" in error and "--overwrite" in error and len(error.splitlines()) == 1
    assert (out / "detections.json").read_bytes() == before
    assert main([*argv, "--overwrite"]) == 0


def test_bad_videos_are_skipped(trained, tmp_path, capsys):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 100)
    out = tmp_path / "out"
    argv = ["localize", _test_videos(trained)[0], str(garbage), str(tmp_path / "missing.mp4"), "--run",
            str(trained["run"]), "--out", str(out), "--workers", "0", "--quiet"]
    capsys.readouterr()
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "(2 failed)" in captured.out
    assert "failed" in captured.err and "garbage.mp4" in captured.err and "Traceback" not in captured.err
    assert set(json.loads((out / "detections.json").read_text())["results"]) == {"test_slide"}
    assert main([*argv, "--overwrite", "--strict"]) == 1
    # nothing readable: nothing written, exit 1
    empty = tmp_path / "empty"
    assert main(["localize", str(garbage), "--run", str(trained["run"]), "--out", str(empty), "--quiet"]) == 1
    assert "nothing written" in capsys.readouterr().err and not (empty / "detections.json").exists()


def test_exception(trained, tmp_path, capsys):
    """One line naming the problem, exit status 2, nothing written."""
    video = _test_videos(trained)[0]
    out = tmp_path / "out"

    def error_of(*argv) -> str:
        capsys.readouterr()
        assert main(["localize", *argv, "--out", str(out), "--quiet"]) == 2
        message = capsys.readouterr().err.strip()
        assert len(message.splitlines()) == 1 and "Traceback" not in message
        assert not (out / "detections.json").exists()
        return message

    assert "no videos given" in error_of("--run", str(trained["run"]))
    assert "run directory not found" in error_of(video, "--run", str(tmp_path / "nope"))
    # options that contradict the run's record
    assert "fps 30.0 (the run's features: 25.0)" in error_of(video, "--run", str(trained["run"]), "--fps", "30")
    # a run trained on simulated features, and one of unknown origin
    sim = tmp_path / "sim"
    assert main(["make-sim", "--layout", "custom", "--videos", "4", "--feature-dim", "8", "--out", str(sim)]) == 0
    sim_run = tmp_path / "sim-run"
    assert main(["train", "--dataset", "custom", "--data-root", str(sim), "--out", str(sim_run), *TRAIN]) == 0
    assert "simulated features" in error_of(video, "--run", str(sim_run))
    unknown = tmp_path / "unknown-run"  # thumos14-sim: features of no recorded extractor
    assert main(["train", "--dataset", "thumos14-sim", "--sim", "videos=4", "--sim", "feature_dim=8", "--out",
                 str(unknown), *TRAIN]) == 0
    assert "unknown origin" in error_of(video, "--run", str(unknown))
    # explicit options for it: the I3D features (1024 per stream) are not the run's (8 per stream)
    message = error_of(video, "--run", str(unknown), "--random-weights", *FAST[:4])
    assert "rgb 8, flow 8" in message and "rgb 1024, flow 1024" in message


def test_weight_files(tmp_path, capsys):
    """A run on features from weight files: localize finds them by their recorded paths, takes their new
    place from --rgb-weights/--flow-weights, and refuses other files (by SHA-256)."""
    weights = tmp_path / "weights"
    files = _weights(weights)
    videos = []
    (tmp_path / "videos").mkdir()
    for seed, (name, (_, count, actions)) in enumerate(list(VIDEOS.items())[:4] + list(VIDEOS.items())[5:6]):
        videos.append(write_video(tmp_path / "videos" / f"{name}.mp4", _frames(count, actions, seed), FPS))
    data = tmp_path / "data"
    assert main(["extract", *map(str, videos), "--out", str(data), *files, *FAST]) == 0
    database = {path.stem: {"subset": VIDEOS[path.stem][0], "duration": VIDEOS[path.stem][1] / FPS,
                            "annotations": [{"label": label, "segment": [a / FPS, b / FPS]}
                                            for a, b, label in VIDEOS[path.stem][2]]} for path in videos}
    (data / "annotations.json").write_text(json.dumps({"database": database}))
    run = tmp_path / "run"
    assert main(["train", "--dataset", "custom", "--data-root", str(data), "--out", str(run), "--no-eval",
                 *TRAIN]) == 0
    test_video = str(videos[-1])
    out = tmp_path / "out"
    assert main(["localize", test_video, "--run", str(run), "--out", str(out), "--no-plots", "--quiet"]) == 0
    first = json.loads((out / "detections.json").read_text())

    moved = tmp_path / "moved"
    shutil.move(weights, moved)
    capsys.readouterr()
    assert main(["localize", test_video, "--run", str(run), "--out", str(tmp_path / "o2"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "rgb_imagenet.pt" in error and "--rgb-weights" in error
    assert main(["localize", test_video, "--run", str(run), "--out", str(tmp_path / "o3"), "--no-plots", "--quiet",
                 "--rgb-weights", str(moved / "rgb_imagenet.pt"),
                 "--flow-weights", str(moved / "flow_imagenet.pt")]) == 0
    assert json.loads((tmp_path / "o3" / "detections.json").read_text()) == first
    # the flow checkpoint given as the RGB one: another file
    capsys.readouterr()
    assert main(["localize", test_video, "--run", str(run), "--out", str(tmp_path / "o4"), "--quiet",
                 "--rgb-weights", str(moved / "flow_imagenet.pt"),
                 "--flow-weights", str(moved / "flow_imagenet.pt")]) == 2
    error = capsys.readouterr().err
    assert "not the ones the run's features were extracted with" in error


def test_joint_stream_run(trained, tmp_path):
    """A run on the concatenated RGB + flow vector gets the extracted streams concatenated the same way."""
    run = tmp_path / "joint"
    assert main(["train", "--dataset", "custom", "--data-root", str(trained["data"]), "--streams", "joint",
                 "--out", str(run), "--no-eval", *TRAIN]) == 0
    out = tmp_path / "out"
    assert main(["localize", *_test_videos(trained), "--run", str(run), "--out", str(out), "--workers", "0",
                 "--no-plots", "--quiet"]) == 0
    detected = tmp_path / "detect.json"
    assert main(["detect", "--run", str(run), "--out", str(detected), "--quiet"]) == 0
    ours, theirs = json.loads((out / "detections.json").read_text()), json.loads(detected.read_text())
    for name, scores in theirs["video_scores"].items():
        for label, p in scores.items():
            assert ours["video_scores"][name][label] == pytest.approx(p, rel=1e-4, abs=1e-6)


def test_weight_files_contradict_a_random_weights_run(tmp_path, capsys):
    """A run on features of untrained networks: a weight file for localize is an error, not ignored."""
    (tmp_path / "videos").mkdir()
    videos = [write_video(tmp_path / "videos" / f"{name}.mp4", _frames(count, actions, seed), FPS)
              for seed, (name, (_, count, actions)) in enumerate(VIDEOS.items())]
    data = tmp_path / "data"
    assert main(["extract", *map(str, videos), "--out", str(data), "--random-weights", *FAST]) == 0
    database = {path.stem: {"subset": VIDEOS[path.stem][0], "duration": VIDEOS[path.stem][1] / FPS,
                            "annotations": [{"label": label, "segment": [a / FPS, b / FPS]}
                                            for a, b, label in VIDEOS[path.stem][2]]} for path in videos}
    (data / "annotations.json").write_text(json.dumps({"database": database}))
    run = tmp_path / "run"
    assert main(["train", "--dataset", "custom", "--data-root", str(data), "--out", str(run), "--no-eval",
                 *TRAIN]) == 0
    weights = tmp_path / "rgb_imagenet.pt"
    weights.write_bytes(b"not used")
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["localize", str(videos[-1]), "--run", str(run), "--out", str(out), "--rgb-weights", str(weights),
                 "--quiet"]) == 2
    assert capsys.readouterr().err == (f"wsl-video localize: error: {run} was trained on features of randomly "
                                       "initialised networks (--random-weights): --rgb-weights contradicts it; "
                                       "leave it out\n")
    assert not out.exists()
    assert main(["localize", str(videos[-1]), "--run", str(run), "--out", str(out), "--no-plots", "--quiet"]) == 0
