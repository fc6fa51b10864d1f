import numpy as np
import pytest

from wsl_video.data import (
    sample_snippets,
    seconds_to_snippet,
    segment_to_snippets,
    snippet_to_seconds,
    uniform_snippets,
)


@pytest.mark.parametrize("num_snippets", [1, 3, 19, 20, 21, 57, 400])
@pytest.mark.parametrize("num_segments", [1, 7, 20])
def test_sample_snippets_one_per_segment(num_snippets, num_segments):
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = sample_snippets(num_snippets, num_segments, rng)
        assert idx.shape == (num_segments,) and idx.dtype == np.int64
        assert np.all(np.diff(idx) >= 0)
        assert idx.min() >= 0 and idx.max() < num_snippets
        # snippet k overlaps segment k = [k T / n, (k + 1) T / n) in snippet units
        k = np.arange(num_segments)
        lo = np.floor(k * num_snippets / num_segments)
        hi = np.ceil((k + 1) * num_snippets / num_segments) - 1
        assert np.all(idx >= lo) and np.all(idx <= hi)


def test_sample_snippets_covers_each_segment_uniformly():
    rng = np.random.default_rng(1)
    draws = np.stack([sample_snippets(60, 20, rng) for _ in range(3000)])  # 3 snippets per segment
    for k in range(20):
        counts = np.bincount(draws[:, k] - 3 * k, minlength=3)
        assert counts.shape == (3,)
        assert np.all(np.abs(counts / 3000 - 1 / 3) < 0.04)


def test_sample_snippets_short_video_repeats():
    rng = np.random.default_rng(2)
    idx = sample_snippets(4, 20, rng)
    assert set(idx.tolist()) == {0, 1, 2, 3}  # every snippet spans 5 segments: all appear, with repetition
    assert np.array_equal(np.bincount(idx), [5, 5, 5, 5])


def test_sample_snippets_deterministic_and_random():
    a = sample_snippets(500, 20, np.random.default_rng(3))
    b = sample_snippets(500, 20, np.random.default_rng(3))
    c = sample_snippets(500, 20, np.random.default_rng(4))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(sample_snippets(20, 20, np.random.default_rng(5)), np.arange(20))


def test_uniform_snippets():
    assert np.array_equal(uniform_snippets(20, 20), np.arange(20))
    assert np.array_equal(uniform_snippets(40, 20), np.arange(1, 40, 2))
    assert np.array_equal(uniform_snippets(1, 3), [0, 0, 0])
    idx = uniform_snippets(1001, 20)
    assert np.all(np.diff(idx) > 0) and idx.max() < 1001
    np.testing.assert_allclose(idx, (np.arange(20) + 0.5) * 1001 / 20, atol=1)


@pytest.mark.parametrize("fn", [lambda t, n: sample_snippets(t, n, np.random.default_rng(0)), uniform_snippets])
def test_exception(fn):
    with pytest.raises(ValueError, match="num_snippets"):
        fn(0, 20)
    with pytest.raises(ValueError, match="num_segments"):
        fn(10, 0)
    with pytest.raises(ValueError, match="num_segments"):
        fn(10, 2.5)


def test_seconds_round_trip():
    s = 16 / 25
    idx = np.arange(1000)
    assert np.array_equal(seconds_to_snippet(snippet_to_seconds(idx, s), s), idx)
    inside = snippet_to_seconds(idx, s) + 0.99 * s
    assert np.array_equal(seconds_to_snippet(inside, s), idx)
    assert snippet_to_seconds(10, s) == pytest.approx(6.4)
    assert seconds_to_snippet(6.4, s) == 10 and isinstance(seconds_to_snippet(6.4, s), int)
    assert seconds_to_snippet(-3.0, s) == 0
    assert seconds_to_snippet(1e6, s, num_snippets=50) == 49
    with pytest.raises(ValueError, match="seconds_per_snippet"):
        snippet_to_seconds(3, 0.0)


def test_segment_to_snippets_brute_force():
    rng = np.random.default_rng(0)
    s, t = 0.64, 50
    for _ in range(500):
        start, end = np.sort(rng.uniform(-5, 40, size=2))
        first, stop = segment_to_snippets(start, end, s, t)
        overlapping = [i for i in range(t) if min(end, (i + 1) * s) - max(start, i * s) > 1e-6]
        assert list(range(first, stop)) == overlapping
    assert segment_to_snippets(6.4, 12.8, s, t) == (10, 20)  # boundaries exactly on snippet edges
    assert segment_to_snippets(100.0, 120.0, s, t) == (t, t)
