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


def _adversarial_maps(rng):
    """Maps that stress contour tracing: thin lines, diagonal touching pixels, holes, equal areas, noise,
    constant maps, maps whose maximum is 0 or small (cut-offs collide), plateaus at a cut-off."""
    maps = []
    lines = np.zeros((24, 24))
    lines[3, 2:20] = 0.9  # horizontal line
    lines[5:20, 4] = 0.6  # vertical line
    np.fill_diagonal(lines[8:, 8:], 0.8)  # diagonal line, pixels touching by corners only
    lines[20, 20] = 1.0  # single pixel
    maps.append(lines)
    checker = (np.indices((16, 16)).sum(axis=0) % 2) * rng.uniform(0.2, 1.0, (16, 16))
    maps.append(checker)  # diagonal neighbours everywhere
    rings = np.zeros((30, 30))
    rings[2:28, 2:28] = 0.5
    rings[6:24, 6:24] = 0.0  # hole
    rings[10:20, 10:20] = 0.9  # island in the hole, itself with a hole
    rings[13:17, 13:17] = 0.2
    maps.append(rings)
    twins = np.zeros((20, 30))
    twins[4:10, 3:9] = 0.7
    twins[4:10, 20:26] = 0.7  # equal contour areas: the first in OpenCV's order wins
    twins[15, 3] = twins[15, 10] = 1.0  # zero-area contours tie too
    maps.append(twins)
    maps.append(rng.random((20, 20)))  # noise: many contours, holes and diagonal contacts
    maps.append((rng.random((20, 20)) > 0.6) * 1.0)  # binary noise
    maps.append(np.zeros((12, 12)))  # maximum 0: nothing is ever foreground
    maps.append(np.ones((12, 12)))  # one contour along the border
    maps.append(rng.random((18, 18)) * 0.03)  # maximum quantised to a few levels: cut-offs collide
    edge = np.full((14, 14), 0.2)
    edge[0, :] = 1.0  # touches the border
    edge[:, -1] = 0.6
    maps.append(edge)
    return maps


@pytest.mark.parametrize("multi_contour", [False, True])
def test_adversarial_maps_match_reference(multi_contour):
    rng = np.random.default_rng(7)
    thresholds = np.concatenate([np.arange(0, 1, 0.01), [-0.5, 1.0, 0.999]])
    for heatmap in _adversarial_maps(rng):
        fast = boxes_from_map_thresholds(heatmap, thresholds, multi_contour=multi_contour)
        for threshold, boxes in zip(thresholds, fast):
            np.testing.assert_array_equal(boxes, _reference_boxes(heatmap, threshold, multi_contour))


def test_level_boxes_searches_only_needed_cutoffs():
    from wsl.localization.boxes import level_boxes, quantize_map, union_boxes

    heatmap = np.zeros((20, 20))
    heatmap[2:6, 3:9] = 1.0
    heatmap[12:18, 10:12] = 0.5
    quantized = quantize_map(heatmap)
    cutoffs = np.array([0, 100, 200, 255])
    found = level_boxes(quantized, cutoffs, needed=np.array([True, False, True, True]))
    np.testing.assert_array_equal(found.starts, [0, 2, 3, 4])
    assert sorted(map(tuple, found.boxes[:2].tolist())) == [(3, 2, 9, 6), (10, 12, 12, 18)]
    np.testing.assert_array_equal(found.boxes[2:], [[0, 0, 0, 0], [3, 2, 9, 6], [0, 0, 0, 0]])
    np.testing.assert_array_equal(found.largest, [[3, 2, 9, 6], [0, 0, 0, 0], [3, 2, 9, 6], [0, 0, 0, 0]])
    # the box of all pixels above each cut-off holds every contour's box
    np.testing.assert_array_equal(union_boxes(quantized, cutoffs), [[3, 2, 12, 18], [3, 2, 12, 18], [3, 2, 9, 6],
                                                                    [0, 0, -1, -1]])
