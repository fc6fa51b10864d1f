"""The compiled contour sweep against OpenCV's contours, one threshold at a time (the reference protocol)."""

import cv2
import numpy as np
import pytest

from wsl.localization.boxes import quantize_map, threshold_cutoffs
from wsl.metrics import BoxAccuracy, box_iou, update_box_accuracies
from wsl.metrics.wsol import best_ious_per_threshold
from wsl.utils import jit

pytestmark = pytest.mark.skipif(not jit.numba_available(), reason="numba is not installed")


def _oracle(heatmap, thresholds, gt):
    """Best IoU of the largest contour's box and of any contour's box, per threshold, with cv2 as the benchmark."""
    height, width = heatmap.shape
    image = (heatmap * 255).astype(np.uint8)
    largest, every = [], []
    for threshold in thresholds:
        _, binary = cv2.threshold(image, int(threshold * np.max(image)), 255, cv2.THRESH_BINARY)
        contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
        boxes = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
        if not boxes:
            boxes = [[0, 0, 0, 0]]
            biggest = 0
        else:
            biggest = max(range(len(contours)), key=lambda i: cv2.contourArea(contours[i]))
        ious = box_iou(np.array(boxes), gt).max(axis=1)
        largest.append(ious[biggest])
        every.append(ious.max())
    return np.array(largest), np.array(every)


def _random_gt(rng, height, width):
    count = int(rng.integers(1, 4))
    x = np.sort(rng.integers(0, width, size=(count, 2)), axis=1)
    y = np.sort(rng.integers(0, height, size=(count, 2)), axis=1)
    return np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1).astype(np.float64)


def _maps(rng):
    """Holes, holes in islands in holes (nesting), thin lines, corner contacts, equal areas, plateaus, noise."""
    maps = []
    rings = np.zeros((30, 30))
    rings[2:28, 2:28] = 0.5
    rings[6:24, 6:24] = 0.0
    rings[10:20, 10:20] = 0.9
    rings[13:17, 13:17] = 0.2
    maps.append(rings)
    lines = np.zeros((24, 24))
    lines[3, 2:20] = 0.9
    lines[5:20, 4] = 0.6
    np.fill_diagonal(lines[8:, 8:], 0.8)
    lines[20, 20] = 1.0
    maps.append(lines)
    maps.append((np.indices((16, 16)).sum(axis=0) % 2) * rng.uniform(0.2, 1.0, (16, 16)))
    twins = np.zeros((20, 30))
    twins[4:10, 3:9] = 0.7
    twins[4:10, 20:26] = 0.7
    twins[15, 3] = twins[15, 10] = 1.0
    maps.append(twins)
    ring_pair = np.zeros((9, 17))  # two rings of equal area, each with a one-pixel hole
    ring_pair[1:4, 1:4] = ring_pair[1:4, 10:13] = 1.0
    ring_pair[2, 2] = ring_pair[2, 11] = 0.0
    maps.append(ring_pair)
    maps += [np.zeros((12, 12)), np.ones((12, 12)), np.ones((1, 7)), np.ones((6, 1)), rng.random((1, 1))]
    for _ in range(120):  # few levels: many components, holes, nested islands and area ties
        height, width = rng.integers(2, 22, size=2)
        levels = rng.integers(2, 6)
        maps.append(rng.integers(0, levels, size=(height, width)) / (levels - 1))
    for _ in range(20):
        small = rng.random((6, 6)).astype(np.float32)
        smooth = cv2.resize(small, (48, 40), interpolation=cv2.INTER_CUBIC).astype(np.float64)
        maps.append((smooth - smooth.min()) / (smooth.max() - smooth.min()))
    return maps


def test_smoke():
    heatmap = np.zeros((10, 12))
    heatmap[2:5, 3:8] = 1.0
    quantized = quantize_map(heatmap)
    gt = np.array([[3.0, 2.0, 8.0, 5.0]])
    largest, every, fallback = jit_sweep(quantized, np.array([0, 127]), gt)
    np.testing.assert_array_equal(largest, [1.0, 1.0])
    np.testing.assert_array_equal(every, [1.0, 1.0])
    assert not fallback.any()


def jit_sweep(quantized, cutoffs, gt):
    from wsl.localization.contour_sweep import sweep_level_ious

    return sweep_level_ious(quantized, cutoffs, gt)


def test_hole_boxes_and_nesting():
    ring = np.zeros((9, 9))
    ring[1:8, 1:8] = 1.0
    ring[3:6, 3:6] = 0.0  # a 3 x 3 hole: its contour's box is (2, 2, 7, 7) with the +1 convention
    quantized = quantize_map(ring)
    largest, every, fallback = jit_sweep(quantized, np.array([0]), np.array([[2.0, 2.0, 7.0, 7.0]]))
    assert every[0] == 1.0 and largest[0] < 1.0 and not fallback[0]
    island = ring.copy()
    island[4, 4] = 1.0  # a component inside the hole: never the largest, the ring alone is still decided
    largest, every, fallback = jit_sweep(quantize_map(island), np.array([0]), np.array([[4.0, 4.0, 5.0, 5.0]]))
    assert not fallback[0] and every[0] == 1.0 and largest[0] < 1.0


def test_nested_areas_leave_the_largest_to_opencv():
    """Two rings with the same outline; the left one's hole holds a 2 x 2 island: their contour areas tie,
    which the sweep cannot tell without pairing the island with its ring: OpenCV decides."""
    heatmap = np.zeros((10, 20))
    for left in (1, 11):
        heatmap[1:9, left : left + 8] = 1.0
        heatmap[2:8, left + 1 : left + 7] = 0.0
    heatmap[4:6, 4:6] = 1.0
    quantized = quantize_map(heatmap)
    gt = np.array([[1.0, 1.0, 9.0, 9.0]])
    _, every, fallback = jit_sweep(quantized, np.array([0]), gt)
    assert fallback[0] and every[0] == 1.0
    expected_largest, expected_every = _oracle(heatmap, [0.0], gt)
    np.testing.assert_array_equal(best_ious_per_threshold(heatmap, gt, [0.0], multi_contour=False),
                                  expected_largest)
    np.testing.assert_array_equal(best_ious_per_threshold(heatmap, gt, [0.0], multi_contour=True), expected_every)


def _nesting_depth(heatmap, threshold):
    """Deepest outer contour inside a hole (0: none), from OpenCV's hierarchy."""
    image = (heatmap * 255).astype(np.uint8)
    _, binary = cv2.threshold(image, int(threshold * np.max(image)), 255, cv2.THRESH_BINARY)
    _, hierarchy = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2:]
    if hierarchy is None:
        return 0
    parents = hierarchy[0][:, 3]
    depth = 0
    for index in range(len(parents)):
        level, node = 0, index
        while parents[node] >= 0:
            level, node = level + 1, parents[node]
        depth = max(depth, level)
    return depth // 2


def test_against_opencv_per_threshold():
    rng = np.random.default_rng(3)
    thresholds = np.concatenate([np.arange(0, 1, 0.01), [1.0]])
    nested = 0
    for heatmap in _maps(rng):
        nested += max(_nesting_depth(heatmap, t) for t in (0.0, 0.3, 0.6))
        gt = _random_gt(rng, *heatmap.shape)
        expected_largest, expected_every = _oracle(heatmap, thresholds, gt)
        quantized = quantize_map(heatmap)
        cutoffs, inverse = np.unique(threshold_cutoffs(quantized, thresholds), return_inverse=True)
        largest, every, fallback = jit_sweep(quantized, cutoffs, gt)
        kept = ~fallback[inverse]
        np.testing.assert_array_equal(largest[inverse][kept], expected_largest[kept])
        np.testing.assert_array_equal(every[inverse], expected_every)
        # the public function (OpenCV where the sweep falls back) gives every value
        np.testing.assert_array_equal(best_ious_per_threshold(heatmap, gt, thresholds, multi_contour=False),
                                      expected_largest)
        np.testing.assert_array_equal(best_ious_per_threshold(heatmap, gt, thresholds, multi_contour=True),
                                      expected_every)
    assert nested > 0  # components inside holes were met


def test_module(monkeypatch):
    """The metrics give the same counts with and without numba, on one thread or several."""
    rng = np.random.default_rng(5)
    cams = [m for m in _maps(rng) if m.shape[0] > 1 and m.shape[1] > 1][:60]
    gts = [_random_gt(rng, *cam.shape) for cam in cams]
    counts = {}
    for setting, threads in (("0", "1"), ("0", "2"), ("1", "2")):
        monkeypatch.setenv("WSL_NO_NUMBA", setting)
        monkeypatch.setenv("WSL_EVAL_THREADS", threads)
        jit._numba.cache_clear()
        largest, every = BoxAccuracy(multi_contour=False), BoxAccuracy(multi_contour=True)
        update_box_accuracies([largest, every], cams, gts)
        counts[setting, threads] = (largest.num_correct, every.num_correct)
    jit._numba.cache_clear()
    for key in (("0", "2"), ("1", "2")):
        np.testing.assert_array_equal(counts[key][0], counts["0", "1"][0])
        np.testing.assert_array_equal(counts[key][1], counts["0", "1"][1])


def test_exception(monkeypatch):
    monkeypatch.setenv("WSL_EVAL_THREADS", "zero")
    with pytest.raises(ValueError, match="WSL_EVAL_THREADS"):
        update_box_accuracies([BoxAccuracy()], [np.zeros((4, 4))] * 2, [np.array([[0, 0, 1, 1]])] * 2)
    monkeypatch.setenv("WSL_EVAL_THREADS", "2")
    with pytest.raises(ValueError, match="cam 1 contains NaN"):
        update_box_accuracies([BoxAccuracy()], [np.zeros((4, 4)), np.full((4, 4), np.nan)],
                              [np.array([[0, 0, 1, 1]])] * 2)
