import numpy as np
import pytest

from wsl.localization.temporal import detect_actions, nms_1d, segments_from_cas, soft_nms_1d, temporal_iou
from wsl.metrics.reference import nms_1d_reference, soft_nms_1d_reference, temporal_iou_reference


def random_segments(rng, n, grid=True):
    start = rng.integers(0, 20, n).astype(float) if grid else rng.uniform(0, 20, n)
    length = rng.integers(0, 6, n).astype(float) if grid else rng.uniform(0, 6, n)
    return np.stack([start, start + length], axis=1)


class TestTemporalIoU:
    def test_smoke(self):
        iou = temporal_iou(np.array([[0.0, 2.0], [5.0, 6.0]]), np.array([[1.0, 3.0], [0.0, 2.0], [2.0, 5.0]]))
        assert iou.shape == (2, 3)
        # [0,2] vs [1,3]: intersection 1, union 3; touching segments do not overlap.
        np.testing.assert_allclose(iou, [[1 / 3, 1.0, 0.0], [0.0, 0.0, 0.0]])

    @pytest.mark.parametrize("seed", range(5))
    def test_against_naive(self, seed):
        rng = np.random.default_rng(seed)
        a, b = random_segments(rng, 13, grid=seed % 2 == 0), random_segments(rng, 7, grid=seed % 2 == 0)
        np.testing.assert_allclose(temporal_iou(a, b), temporal_iou_reference(a, b), atol=1e-12)

    def test_degenerate(self):
        # Two identical points: zero union, defined as 0 rather than NaN.
        assert temporal_iou([[3.0, 3.0]], [[3.0, 3.0]])[0, 0] == 0.0
        assert temporal_iou(np.zeros((0, 2)), [[0.0, 1.0]]).shape == (0, 1)

    def test_symmetry(self):
        rng = np.random.default_rng(0)
        a, b = random_segments(rng, 9, grid=False), random_segments(rng, 4, grid=False)
        np.testing.assert_allclose(temporal_iou(a, b), temporal_iou(b, a).T)

    def test_exception(self):
        with pytest.raises(ValueError, match="shape"):
            temporal_iou(np.zeros((3, 3)), np.zeros((1, 2)))
        with pytest.raises(ValueError, match="NaN"):
            temporal_iou([[0.0, np.nan]], [[0.0, 1.0]])


class TestSegmentsFromCas:
    def test_smoke(self):
        cas = np.array([0.0, 0.5, 1.0, 0.9, 0.0, 0.3, 0.8, 0.0])
        # threshold 0.5 * max = 0.5: runs of snippets 1-3 and 6; a snippet spans 2 s.
        proposals = segments_from_cas(cas, [0.5], 2.0)
        np.testing.assert_allclose(proposals, [[2.0, 8.0, 0.8], [12.0, 14.0, 0.8]])

    def test_thresholds_and_duration(self):
        cas = np.array([0.0, 0.5, 1.0, 0.9, 0.0, 0.3, 0.8, 0.6])
        proposals = segments_from_cas(cas, [0.95, 0.25], 2.0, duration=15.0)
        expected = [
            [4.0, 6.0, 1.0],  # 0.95: snippet 2 only
            [2.0, 8.0, 0.8],  # 0.25: snippets 1-3
            [10.0, 15.0, (0.3 + 0.8 + 0.6) / 3],  # snippets 5-7, end 16 clipped to the 15 s duration
        ]
        np.testing.assert_allclose(proposals, expected)

    def test_past_the_end(self):
        # Features may cover a little more than the video: a run after the end is dropped.
        cas = np.array([1.0, 0.0, 0.0, 0.9])
        np.testing.assert_allclose(segments_from_cas(cas, [0.5], 1.0, duration=3.0), [[0.0, 1.0, 1.0]])

    def test_outer_inner(self):
        cas = np.array([0.1, 0.2, 1.0, 1.0, 1.0, 1.0, 0.4, 0.0, 0.0, 0.0])
        # run 2-5 (4 snippets): margin ceil(0.25 * 4) = 1 snippet each side -> outer = {1, 6}
        proposals = segments_from_cas(cas, [0.5], 1.0, scoring="outer_inner")
        np.testing.assert_allclose(proposals, [[2.0, 6.0, 1.0 - (0.2 + 0.4) / 2]])
        # run 1-8 of 9 snippets: margin 3, outer clipped to snippet 0 only
        cas = np.array([0.2, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
        proposals = segments_from_cas(cas, [0.5], 1.0, scoring="outer_inner")
        np.testing.assert_allclose(proposals, [[1.0, 9.0, 0.8]])
        # whole video: empty outer region counts as 0
        proposals = segments_from_cas(np.ones(4), [0.5], 1.0, scoring="outer_inner")
        np.testing.assert_allclose(proposals, [[0.0, 4.0, 1.0]])

    def test_against_naive(self):
        rng = np.random.default_rng(3)
        for _ in range(20):
            cas = np.round(rng.random(int(rng.integers(1, 30))), 1)
            thresholds = rng.random(3)
            got = segments_from_cas(cas, thresholds, 0.5, scoring="outer_inner")
            expected = []
            for thr in thresholds:
                above = [t for t in range(len(cas)) if cas[t] >= thr * cas.max()]
                runs = []
                for t in above:
                    if runs and runs[-1][-1] == t - 1:
                        runs[-1].append(t)
                    else:
                        runs.append([t])
                for run in runs:
                    margin = int(np.ceil(len(run) / 4))
                    outer = [t for t in range(run[0] - margin, run[-1] + margin + 1) if 0 <= t < len(cas)]
                    outer = [t for t in outer if t not in run]
                    outer_mean = np.mean(cas[outer]) if outer else 0.0
                    expected.append([run[0] * 0.5, (run[-1] + 1) * 0.5, np.mean(cas[run]) - outer_mean])
            if cas.max() <= 0:
                assert got.shape == (0, 3)
            else:
                np.testing.assert_allclose(got, np.reshape(expected, (-1, 3)), atol=1e-12)

    def test_empty(self):
        assert segments_from_cas(np.zeros(5), [0.5], 1.0).shape == (0, 3)
        assert segments_from_cas(np.zeros(0), [0.5], 1.0).shape == (0, 3)

    def test_exception(self):
        with pytest.raises(ValueError, match="1-D"):
            segments_from_cas(np.zeros((2, 2)), [0.5], 1.0)
        with pytest.raises(ValueError, match="scoring"):
            segments_from_cas(np.ones(3), [0.5], 1.0, scoring="max")
        with pytest.raises(ValueError, match="NaN"):
            segments_from_cas(np.array([0.1, np.nan]), [0.5], 1.0)
        with pytest.raises(ValueError, match="fractions"):
            segments_from_cas(np.ones(3), [1.5], 1.0)
        with pytest.raises(ValueError, match="seconds_per_snippet"):
            segments_from_cas(np.ones(3), [0.5], 0.0)


def random_proposals(rng, n):
    segments = random_segments(rng, n)
    scores = np.round(rng.random(n), 1)  # many ties
    return np.concatenate([segments, scores[:, None]], axis=1)


class TestNms:
    @pytest.mark.parametrize("seed", range(10))
    def test_against_naive(self, seed):
        rng = np.random.default_rng(seed)
        proposals = random_proposals(rng, int(rng.integers(0, 40)))
        threshold = float(rng.choice([0.0, 0.3, 0.5, 1.0]))
        got = nms_1d(proposals, threshold)
        np.testing.assert_allclose(got, np.reshape(nms_1d_reference(proposals, threshold), (-1, 3)))

    def test_smoke(self):
        proposals = np.array([[0.0, 10.0, 0.5], [1.0, 10.0, 0.9], [20.0, 30.0, 0.7], [0.0, 5.0, 0.6]])
        # [1,10] keeps; [0,10] (IoU 0.9) goes; [0,5] (IoU 4/10) stays at threshold 0.5.
        np.testing.assert_allclose(
            nms_1d(proposals, 0.5), [[1.0, 10.0, 0.9], [20.0, 30.0, 0.7], [0.0, 5.0, 0.6]]
        )

    def test_exception(self):
        with pytest.raises(ValueError, match="shape"):
            nms_1d(np.zeros((2, 2)), 0.5)
        with pytest.raises(ValueError, match="iou_threshold"):
            nms_1d(np.zeros((2, 3)), 1.5)


class TestSoftNms:
    @pytest.mark.parametrize("seed", range(10))
    def test_against_naive(self, seed):
        rng = np.random.default_rng(seed)
        proposals = random_proposals(rng, int(rng.integers(0, 40)))
        sigma = float(rng.choice([0.1, 0.5, 2.0]))
        got = soft_nms_1d(proposals, sigma=sigma, score_threshold=0.05)
        expected = np.reshape(soft_nms_1d_reference(proposals, sigma=sigma, score_threshold=0.05), (-1, 3))
        np.testing.assert_allclose(got, expected, atol=1e-12)
        assert (np.diff(got[:, 2]) <= 1e-12).all()

    def test_smoke(self):
        proposals = np.array([[0.0, 10.0, 0.9], [0.0, 5.0, 0.8], [20.0, 30.0, 0.3]])
        got = soft_nms_1d(proposals, sigma=0.5)
        # [0,5] overlaps the winner with IoU 0.5: 0.8 * exp(-0.25 / 0.5); [20,30] is untouched.
        np.testing.assert_allclose(got, [[0.0, 10.0, 0.9], [0.0, 5.0, 0.8 * np.exp(-0.5)], [20.0, 30.0, 0.3]])

    def test_exception(self):
        with pytest.raises(ValueError, match="sigma"):
            soft_nms_1d(np.zeros((1, 3)), sigma=0.0)


class TestDetectActions:
    def test_smoke(self):
        cas = np.zeros((10, 3))
        cas[2:5, 0] = [0.5, 1.0, 0.5]
        cas[6:9, 2] = [0.9, 0.9, 0.9]
        cas[:, 1] = 0.7  # not requested
        detections = detect_actions(cas, [0, 2], 1.0, thresholds=(0.4, 0.9), nms="hard", nms_iou=0.5)
        # class 2: thresholds 0.4 and 0.9 give the same run [6, 9] -> one after NMS;
        # class 0: [2, 5] (mean 2/3) and [3, 4] (IoU 1/3 with it, kept).
        assert detections == [
            (0, 3.0, 4.0, 1.0),
            (2, 6.0, 9.0, pytest.approx(0.9)),
            (0, 2.0, 5.0, pytest.approx(2 / 3)),
        ]
        assert all(isinstance(d[0], int) for d in detections)

    def test_max_detections_and_modes(self):
        rng = np.random.default_rng(0)
        cas = rng.random((50, 4))
        everything = detect_actions(
            cas, range(4), 0.5, thresholds=(0.3, 0.6), nms="none", max_detections=None
        )
        top = detect_actions(cas, range(4), 0.5, thresholds=(0.3, 0.6), nms="none", max_detections=5)
        assert top == everything[:5]
        scores = [d[3] for d in everything]
        assert scores == sorted(scores, reverse=True)
        hard = detect_actions(cas, range(4), 0.5, thresholds=(0.3, 0.6), nms="hard", max_detections=None)
        soft = detect_actions(cas, range(4), 0.5, thresholds=(0.3, 0.6), nms="soft", max_detections=None)
        assert len(hard) <= len(everything) and len(soft) <= len(everything)

    def test_exception(self):
        with pytest.raises(ValueError, match="out of range"):
            detect_actions(np.ones((4, 2)), [2], 1.0)
        with pytest.raises(ValueError, match="nms"):
            detect_actions(np.ones((4, 2)), [0], 1.0, nms="greedy")
        with pytest.raises(ValueError, match="2-D"):
            detect_actions(np.ones(4), [0], 1.0)
