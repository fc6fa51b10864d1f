"""Decoding: timestamp resampling (hand-computed, FFmpeg's fps filter), containers, sizes, chunks, bad files."""

from fractions import Fraction

import numpy as np
import pytest
from video_synth import (
    CLEAN_AND_JERK,
    DOG_WALK,
    index_frames,
    moving_pattern,
    read_index,
    truncated_copy,
    write_audio_only,
    write_video,
)

from wsl_video.features.decoding import FrameResampler, VideoDecoder, VideoError, resample_indices
from wsl_video.features.transforms import center_crop, parse_resize


def _ffmpeg_fps_filter(path, fps):
    """Frame indices FFmpeg's own ``fps`` filter outputs (default rounding), read back from the pixels."""
    import av

    out = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        graph = av.filter.Graph()
        source = graph.add_buffer(template=stream)
        fps_filter = graph.add("fps", str(fps))
        sink = graph.add("buffersink")
        source.link_to(fps_filter)
        fps_filter.link_to(sink)
        graph.configure()

        def drain():
            while True:
                try:
                    frame = graph.pull()
                except (av.error.BlockingIOError, av.error.EOFError):
                    return
                out.append(read_index(frame.to_ndarray(format="rgb24")))

        for frame in container.decode(stream):
            graph.push(frame)
            drain()
        graph.push(None)
        drain()
    return out


def _decoded_indices(path, fps, resize="resize32"):
    decoder = VideoDecoder(path, fps, resize)
    frames = np.concatenate(list(decoder.chunks(7)))
    return [read_index(f) for f in frames], decoder


# ---------------------------------------------------------------- the rule, by hand
def test_resample_19_62_fps_hand_computed():
    # frame i at i * 50/981 s; output k takes the last i with i * 50/981 < (k + 1/2) / 25, i.e. i < 0.7848 (k + 1/2)
    times = [i * Fraction(50, 981) for i in range(20)]
    indices = resample_indices(times, 20 * Fraction(50, 981), 25)
    assert indices[:11] == [0, 1, 1, 2, 3, 4, 5, 5, 6, 7, 8]
    assert len(indices) == 25  # 20 frames = 1.0194 s -> floor(25.48 + 0.5)


def test_resample_29_97_fps_hand_computed():
    # frame i at i * 1001/30000 s; i < 1.1988 (k + 1/2)
    times = [i * Fraction(1001, 30000) for i in range(30)]
    indices = resample_indices(times, 30 * Fraction(1001, 30000), 25)
    assert indices[:9] == [0, 1, 2, 4, 5, 6, 7, 8, 10]
    assert len(indices) == 25  # 1.001 s -> floor(25.025 + 0.5)


def test_resample_integer_rates():
    same = resample_indices([Fraction(i, 25) for i in range(10)], Fraction(10, 25), 25)
    assert same == list(range(10))
    down = resample_indices([Fraction(i, 50) for i in range(10)], Fraction(10, 50), 25)
    assert down == [0, 2, 4, 6, 8]
    up = resample_indices([Fraction(i, 10) for i in range(3)], Fraction(3, 10), 25)
    assert up == [0, 0, 0, 1, 1, 2, 2, 2]  # k + 1/2 < 2.5 (i + 1) ... 7.5 frames -> 8


def test_resample_count_rounds_half_up():
    times = [Fraction(0)]
    assert len(resample_indices(times, Fraction(125, 250), 25)) == 13  # 12.5 frames -> 13
    assert len(resample_indices(times, Fraction(1249, 2500), 25)) == 12  # 12.49 -> 12
    assert resample_indices([], Fraction(1), 25) == []


def test_resample_exception():
    with pytest.raises(ValueError, match="strictly increasing"):
        resample_indices([Fraction(0), Fraction(1), Fraction(1)], 2, 25)
    with pytest.raises(ValueError, match="frame rate"):
        resample_indices([Fraction(0)], 1, 0)


def test_streaming_resampler_matches_rule_on_variable_rates():
    rng = np.random.default_rng(0)
    for trial in range(200):
        gaps = rng.integers(1, 120, size=rng.integers(1, 40))
        times = [Fraction(0)] + [Fraction(int(t), 1000) for t in np.cumsum(gaps)]
        end = times[-1] + Fraction(int(rng.integers(1, 80)), 1000)
        fps = [25, Fraction(30000, 1001), 12.5, 60][trial % 4]
        resampler = FrameResampler(fps)
        out = []
        for i, t in enumerate(times):
            out += resampler.push(t, i)
        out += resampler.finish(end)
        assert out == resample_indices(times, end, fps)


# ---------------------------------------------------------------- decoding real files
@pytest.mark.parametrize(("suffix", "rate"), [(".mp4", Fraction(981, 50)), (".mkv", Fraction(30000, 1001)),
                                              (".mp4", Fraction(12)), (".mp4", Fraction(60))])
def test_decoder_equals_ffmpeg_fps_filter(tmp_path, suffix, rate):
    path = write_video(tmp_path / f"index{suffix}", index_frames(90), rate)
    decoded, decoder = _decoded_indices(path, 25)
    assert decoded == _ffmpeg_fps_filter(path, 25)
    assert decoder.info.frames == len(decoded)
    assert decoder.info.source_fps == pytest.approx(float(rate))


def test_decoder_hand_computed_19_62(tmp_path):
    path = write_video(tmp_path / "index.mp4", index_frames(20), Fraction(981, 50))
    decoded, decoder = _decoded_indices(path, 25)
    assert decoded[:11] == [0, 1, 1, 2, 3, 4, 5, 5, 6, 7, 8]
    assert decoder.info.duration == pytest.approx(20 / 19.62)
    assert decoder.info.frames == 25


def test_decoder_variable_frame_rate(tmp_path):
    rng = np.random.default_rng(1)
    pts = [0, *np.cumsum(rng.integers(10, 90, size=59)).tolist()]
    for suffix in (".mp4", ".mkv"):
        path = write_video(tmp_path / f"vfr{suffix}", index_frames(60), 30, pts=pts, time_base=Fraction(1, 1000))
        decoded, decoder = _decoded_indices(path, 25)
        assert decoded == _ffmpeg_fps_filter(path, 25)
        times = [Fraction(p, 1000) for p in pts]
        assert decoded == resample_indices(times, decoder.info.duration, 25)[:len(decoded)]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".avi", ".webm"])
def test_containers(tmp_path, suffix):
    path = write_video(tmp_path / f"clip{suffix}", moving_pattern(20, 48, 64, dx=1), 25)
    decoder = VideoDecoder(path, 25, "short24_crop16")
    frames = np.concatenate(list(decoder.chunks()))
    assert frames.shape == (20, 24, 32, 3) and frames.dtype == np.uint8
    assert decoder.info.frames == 20 and decoder.info.duration == pytest.approx(0.8)
    assert (decoder.info.width, decoder.info.height) == (64, 48)


@pytest.mark.parametrize(("mode", "size", "expected"), [
    ("short24_crop16", (37, 23), (39, 24)), ("short24_crop16", (23, 37), (24, 39)),
    ("resize20", (37, 23), (20, 20)), ("resize18x30_crop16", (37, 23), (30, 18)),
    ("short256_crop224", (320, 240), (341, 256)), ("short256_crop224", (480, 360), (341, 256)),
])
def test_resize_modes_odd_sizes(mode, size, expected):
    assert parse_resize(mode).frame_size(*size) == expected


def test_odd_frame_size_decodes(tmp_path):
    path = write_video(tmp_path / "odd.mkv", moving_pattern(10, 23, 37, dx=1), 25)
    spec = parse_resize("short24_crop16")
    frames = np.concatenate(list(VideoDecoder(path, 25, spec).chunks()))
    assert frames.shape == (10, 24, 39, 3)
    assert center_crop(frames, spec.crop).shape == (10, 16, 16, 3)


def test_resize_exception():
    for bad in ("short256", "crop224", "short200_crop224", "resize0", "resize10x20_crop30", ""):
        with pytest.raises(ValueError, match="resize mode"):
            parse_resize(bad)


def test_chunks_are_bounded_and_complete(tmp_path):
    path = write_video(tmp_path / "clip.mp4", index_frames(50), Fraction(30000, 1001))
    chunked = list(VideoDecoder(path, 25, "resize32").chunks(4))
    assert all(len(c) <= 4 for c in chunked)
    single = np.concatenate(list(VideoDecoder(path, 25, "resize32").chunks(1000)))
    assert np.array_equal(np.concatenate(chunked), single)


def test_limit_seconds(tmp_path):
    path = write_video(tmp_path / "clip.mp4", index_frames(50), 25)
    decoder = VideoDecoder(path, 25, "resize32", limit_seconds=0.5)
    frames = np.concatenate(list(decoder.chunks()))
    assert [read_index(f) for f in frames] == list(range(12)) + [12]  # 12.5 frames -> 13
    assert decoder.info.duration == 0.5


def test_exception_bad_files(tmp_path):
    cases = {
        "missing": (tmp_path / "missing.mp4", "file not found"),
        "garbage": (tmp_path / "garbage.mp4", "cannot be opened"),
        "audio": (write_audio_only(tmp_path / "audio.m4a"), "no video stream"),
    }
    cases["garbage"][0].write_bytes(b"not a video" * 100)
    for path, message in cases.values():
        with pytest.raises(VideoError, match=message):
            list(VideoDecoder(path).chunks())


def test_exception_truncated(tmp_path):
    source = write_video(tmp_path / "full.mp4", moving_pattern(100, 48, 64, dx=1), 25, lossless=False)
    path = truncated_copy(source, tmp_path / "cut.mp4", 0.4)
    with pytest.raises(VideoError, match="truncated|cannot be decoded|cannot be opened"):
        list(VideoDecoder(path, 25, "short24_crop16").chunks())


# ---------------------------------------------------------------- the two real clips
@pytest.mark.parametrize(("path", "fps", "frames", "duration"), [
    (CLEAN_AND_JERK, 19.62, 452, 355 / 19.62), (DOG_WALK, 30.0, 350, 14.0)])
def test_real_clips(path, fps, frames, duration):
    if not path.is_file():
        pytest.skip(f"real clip not found: {path}")
    decoder = VideoDecoder(path, 25, "short24_crop16")
    count = sum(len(c) for c in decoder.chunks(128))
    assert decoder.info.source_fps == pytest.approx(fps)
    assert decoder.info.duration == pytest.approx(duration)
    assert count == decoder.info.frames == frames
    assert decoder.estimate_frames() == pytest.approx(frames, abs=2)
