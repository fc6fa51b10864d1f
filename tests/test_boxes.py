import cv2
import numpy as np
import pytest

from wsl.localization import boxes_from_map, boxes_from_map_thresholds


def _reference_boxes(heatmap, threshold, multi_contour):
    """Slow reference: cv2.threshold + findContours, one threshold at a time."""
    height, width = heatmap.shape
    image = (heatmap * 255).astype(np.uint8)
    _, binary = cv2.threshold(image, int(threshold * np.max(image)), 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
    if len(contours) == 0:
        return [[0, 0, 0, 0]]
    if not multi_contour:
        contours = [max(contours, key=cv2.contourArea)]
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
    return boxes


def _smooth_map(rng, size=64, cells=6):
    small = rng.random((cells, cells)).astype(np.float32)
    heatmap = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    heatmap = (heatmap - heatmap.min()) / (heatmap.max() - heatmap.min())
    return heatmap


def test_smoke_single_blob():
    heatmap = np.zeros((40, 50), np.float32)
    heatmap[10:20, 5:15] = 1.0  # rows 10..19, cols 5..14
    boxes = boxes_from_map(heatmap, 0.5)
    assert boxes.dtype == np.int64
    # boundingRect (x=5, y=10, w=10, h=10) -> (x, y, x + w, y + h)
    np.testing.assert_array_equal(boxes, [[5, 10, 15, 20]])


def test_blob_at_border_is_clipped():
    heatmap = np.zeros((30, 40), np.float32)
    heatmap[20:, 30:] = 1.0
    np.testing.assert_array_equal(boxes_from_map(heatmap, 0.2), [[30, 20, 39, 29]])
    heatmap = np.ones((30, 40), np.float32)
    np.testing.assert_array_equal(boxes_from_map(heatmap, 0.0), [[0, 0, 39, 29]])


def test_multiple_blobs():
    heatmap = np.zeros((60, 60), np.float32)
    heatmap[2:8, 2:8] = 1.0  # small, strongest
    heatmap[20:50, 25:55] = 0.8  # large
    np.testing.assert_array_equal(boxes_from_map(heatmap, 0.5), [[25, 20, 55, 50]])
    both = boxes_from_map(heatmap, 0.5, multi_contour=True)
    assert sorted(map(tuple, both.tolist())) == [(2, 2, 8, 8), (25, 20, 55, 50)]
    # above 0.8 of the maximum only the small blob survives
    np.testing.assert_array_equal(boxes_from_map(heatmap, 0.9), [[2, 2, 8, 8]])


def test_hole_contour_is_kept_in_multi_contour():
    heatmap = np.zeros((40, 40), np.float32)
    heatmap[5:35, 5:35] = 1.0
    heatmap[15:25, 15:25] = 0.0
    boxes = boxes_from_map(heatmap, 0.5, multi_contour=True)
    assert len(boxes) == 2  # RETR_TREE returns the hole as its own contour
    assert (5, 5, 35, 35) in map(tuple, boxes.tolist())
    np.testing.assert_array_equal(boxes_from_map(heatmap, 0.5), [[5, 5, 35, 35]])


def test_empty_map():
    heatmap = np.zeros((16, 16), np.float32)
    for threshold in (0.0, 0.5, 0.99):
        np.testing.assert_array_equal(boxes_from_map(heatmap, threshold), [[0, 0, 0, 0]])
        np.testing.assert_array_equal(boxes_from_map(heatmap, threshold, multi_contour=True), [[0, 0, 0, 0]])


def test_threshold_edges():
    heatmap = np.zeros((32, 32), np.float32)
    heatmap[:, :] = 0.1
    heatmap[8:16, 8:16] = 0.3  # quantised 76
    heatmap[10:12, 10:12] = 1.0  # quantised 255
    # threshold 0: every non-zero pixel is foreground
    np.testing.assert_array_equal(boxes_from_map(heatmap, 0.0), [[0, 0, 31, 31]])
    # cut-off int(0.3 * 255) = 76: pixels must be strictly above, so the 0.3 plateau is excluded
    np.testing.assert_array_equal(boxes_from_map(heatmap, 0.3), [[10, 10, 12, 12]])
    np.testing.assert_array_equal(boxes_from_map(heatmap, 0.29), [[8, 8, 16, 16]])
    # threshold 1: nothing is strictly above the maximum
    np.testing.assert_array_equal(boxes_from_map(heatmap, 1.0), [[0, 0, 0, 0]])


def test_relative_to_map_maximum():
    heatmap = np.zeros((20, 20), np.float32)
    heatmap[5:10, 5:10] = 0.5
    np.testing.assert_array_equal(boxes_from_map(heatmap, 0.9), [[5, 5, 10, 10]])


@pytest.mark.parametrize("multi_contour", [False, True])
def test_many_thresholds_match_reference(multi_contour):
    rng = np.random.default_rng(0)
    thresholds = np.arange(0, 1, 0.01)
    for _ in range(5):
        heatmap = _smooth_map(rng)
        fast = boxes_from_map_thresholds(heatmap, thresholds, multi_contour=multi_contour)
        assert len(fast) == len(thresholds)
        for threshold, boxes in zip(thresholds, fast):
            np.testing.assert_array_equal(boxes, _reference_boxes(heatmap, threshold, multi_contour))


def test_float64_and_integer_maps():
    heatmap = np.zeros((10, 10))
    heatmap[2:4, 3:6] = 1
    np.testing.assert_array_equal(boxes_from_map(heatmap, 0.5), [[3, 2, 6, 4]])
    np.testing.assert_array_equal(boxes_from_map(heatmap.astype(np.int64), 0.5), [[3, 2, 6, 4]])


def test_exception():
    with pytest.raises(ValueError, match="2-D"):
        boxes_from_map(np.zeros((2, 8, 8)), 0.5)
    with pytest.raises(ValueError, match="NaN"):
        boxes_from_map(np.full((8, 8), np.nan), 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        boxes_from_map(np.full((8, 8), 1.5), 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        boxes_from_map(np.full((8, 8), -0.1), 0.5)
    with pytest.raises(ValueError, match="empty"):
        boxes_from_map(np.zeros((0, 8)), 0.5)
    with pytest.raises(ValueError, match="finite"):
        boxes_from_map_thresholds(np.zeros((8, 8)), [np.nan])
