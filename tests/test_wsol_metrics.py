import cv2
import numpy as np
import pytest
import torch

from wsl.metrics import BoxAccuracy, box_iou, localization_accuracy, max_box_acc


def _iou_by_pixels(a, b):
    """Oracle: boxes as inclusive pixel sets, IoU by counting pixels."""
    canvas_a = np.zeros((40, 40), bool)
    canvas_b = np.zeros((40, 40), bool)
    canvas_a[a[1]:a[3] + 1, a[0]:a[2] + 1] = True
    canvas_b[b[1]:b[3] + 1, b[0]:b[2] + 1] = True
    union = (canvas_a | canvas_b).sum()
    return (canvas_a & canvas_b).sum() / union


def _slow_boxes(heatmap, threshold, multi_contour):
    height, width = heatmap.shape
    image = (heatmap * 255).astype(np.uint8)
    _, binary = cv2.threshold(image, int(threshold * np.max(image)), 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
    if len(contours) == 0:
        return [(0, 0, 0, 0)]
    if not multi_contour:
        contours = [max(contours, key=cv2.contourArea)]
    out = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        out.append((x, y, min(x + w, width - 1), min(y + h, height - 1)))
    return out


def _slow_iou(a, b):
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    inter = max(iw, 0) * max(ih, 0)
    union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
    return inter / union if union > 0 else 0.0


def _slow_max_box_acc(cams, gt_boxes, thresholds, deltas, multi_contour):
    """Oracle: a per-image, per-threshold loop."""
    correct = np.zeros((len(deltas), len(thresholds)))
    for cam, gts in zip(cams, gt_boxes):
        for t, threshold in enumerate(thresholds):
            best = max(_slow_iou(box, gt) for box in _slow_boxes(cam, threshold, multi_contour) for gt in gts)
            for d, delta in enumerate(deltas):
                correct[d, t] += best >= delta
    return correct / len(cams)


def _random_cams(rng, count, size=48):
    cams = []
    for _ in range(count):
        small = rng.random((5, 5)).astype(np.float32)
        cam = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
        cams.append((cam - cam.min()) / (cam.max() - cam.min()))
    return cams


def _random_gt(rng, size=48):
    boxes = []
    for _ in range(int(rng.integers(1, 3))):
        x0, y0 = rng.integers(0, size // 2, 2)
        w, h = rng.integers(4, size // 2, 2)
        boxes.append([x0, y0, min(x0 + w, size - 1), min(y0 + h, size - 1)])
    return np.array(boxes)


def test_box_iou_hand_computed():
    a = np.array([[0, 0, 9, 9]])
    b = np.array([[5, 5, 14, 14], [0, 0, 9, 9], [10, 0, 19, 9], [3, 3, 3, 3]])
    # overlap 5x5 = 25 pixels, areas 100 + 100 -> 25 / 175; identical -> 1; touching -> 0; one pixel -> 1/100
    np.testing.assert_allclose(box_iou(a, b), [[25 / 175, 1.0, 0.0, 1 / 100]])
    np.testing.assert_allclose(box_iou([3, 3, 3, 3], [3, 3, 3, 3]), [[1.0]])
    assert box_iou(np.zeros((0, 4)), a).shape == (0, 1)


def test_box_iou_against_pixel_count():
    rng = np.random.default_rng(1)
    boxes = []
    for _ in range(30):
        x0, y0 = rng.integers(0, 30, 2)
        x1, y1 = x0 + rng.integers(0, 10), y0 + rng.integers(0, 10)
        boxes.append([x0, y0, x1, y1])
    boxes = np.array(boxes)
    ious = box_iou(boxes, boxes)
    expected = np.array([[_iou_by_pixels(a, b) for b in boxes] for a in boxes])
    np.testing.assert_allclose(ious, expected)
    np.testing.assert_allclose(ious, ious.T)


def test_max_box_acc_hand_computed():
    size = 64
    cam_a = np.zeros((size, size), np.float32)
    cam_a[10:30, 10:30] = 1.0
    cam_b = np.zeros((size, size), np.float32)
    cam_b[0:30, 0:30] = 0.4  # quantised 102: foreground while int(tau * 255) < 102, i.e. tau <= 0.39
    cam_b[40:50, 40:50] = 1.0
    gt = [np.array([[10, 10, 30, 30]]), np.array([[0, 0, 30, 30]])]
    for multi_contour in (False, True):
        result = max_box_acc([cam_a, cam_b], gt, multi_contour=multi_contour)
        assert result[0.5] == 1.0 and result[0.3] == 1.0 and result[0.7] == 1.0
        assert result["mean"] == 1.0
        assert result["best_threshold"][0.5] == 0.0
        metric = BoxAccuracy(multi_contour=multi_contour).update([cam_a, cam_b], gt)
        curve = metric.curves()[1]
        thresholds = np.arange(0, 1, 0.01)
        np.testing.assert_array_equal(curve[thresholds < 0.395], 1.0)
        np.testing.assert_array_equal(curve[thresholds > 0.395], 0.5)


def test_multi_contour_differs_from_largest_contour():
    cam = np.zeros((64, 64), np.float32)
    cam[0:40, 0:40] = 1.0  # largest blob, not the object
    cam[50:60, 50:60] = 1.0  # the object
    gt = [np.array([[50, 50, 60, 60]])]
    assert max_box_acc([cam], gt, multi_contour=False)[0.5] == 0.0
    assert max_box_acc([cam], gt, multi_contour=True)[0.5] == 1.0


def test_several_ground_truth_boxes():
    cam = np.zeros((32, 32), np.float32)
    cam[20:30, 20:30] = 1.0
    gt = [np.array([[0, 0, 5, 5], [20, 20, 30, 30]])]
    assert max_box_acc(cam[None], gt, iou_thresholds=(0.5,))[0.5] == 1.0


@pytest.mark.parametrize("multi_contour", [False, True])
def test_against_slow_oracle(multi_contour):
    rng = np.random.default_rng(0)
    cams = _random_cams(rng, 12)
    gts = [_random_gt(rng) for _ in cams]
    thresholds = np.arange(0, 1, 0.05)
    deltas = (0.3, 0.5, 0.7)
    expected = _slow_max_box_acc(cams, gts, thresholds, deltas, multi_contour)
    metric = BoxAccuracy(thresholds, deltas, multi_contour=multi_contour).update(np.stack(cams), gts)
    np.testing.assert_allclose(metric.curves(), expected)
    result = metric.compute()
    for d, delta in enumerate(deltas):
        assert result[delta] == pytest.approx(expected[d].max())
        assert result["best_threshold"][delta] == pytest.approx(thresholds[expected[d].argmax()])
    assert result["mean"] == pytest.approx(expected.max(axis=1).mean())


def test_streaming_equals_one_shot():
    rng = np.random.default_rng(3)
    cams = _random_cams(rng, 9)
    gts = [_random_gt(rng) for _ in cams]
    metric = BoxAccuracy()
    for start in range(0, 9, 4):
        batch = torch.from_numpy(np.stack(cams[start:start + 4]))
        metric.update(batch, [torch.from_numpy(g) for g in gts[start:start + 4]])
    assert metric.num_images == 9
    assert metric.compute() == max_box_acc(cams, gts)
    metric.reset()
    with pytest.raises(ValueError, match="no image"):
        metric.compute()


def test_localization_accuracy_hand_computed():
    good = np.zeros((32, 32), np.float32)
    good[8:24, 8:24] = 1.0
    bad = np.zeros((32, 32), np.float32)
    bad[0:4, 0:4] = 1.0
    gt = [np.array([[8, 8, 24, 24]])] * 4
    cams = [good, good, bad, good]
    labels = np.array([0, 1, 2, 3])
    scores = np.zeros((4, 7))
    scores[0] = [9, 1, 1, 1, 1, 1, 1]  # top-1 right, box right
    scores[1] = [1, 2, 9, 8, 7, 6, 0]  # label 1 is 5th: top-5 right, box right
    scores[2] = [0, 0, 9, 0, 0, 0, 0]  # top-1 right, box wrong
    scores[3] = [9, 8, 7, 0, 6, 5, 4]  # label 3 is last: wrong, box right
    result = localization_accuracy(cams, gt, scores, labels)
    assert result == {
        "top1_loc": 0.25, "top5_loc": 0.5, "gt_known_loc": 0.75, "top1_cls": 0.5, "top5_cls": 0.75,
    }


def test_localization_accuracy_threshold_matters():
    cam = np.zeros((40, 40), np.float32)
    cam[10:30, 10:30] = 0.3
    cam[18:22, 18:22] = 1.0
    gt = [np.array([[10, 10, 30, 30]])]
    scores, labels = np.array([[1.0, 0.0]]), np.array([0])
    assert localization_accuracy([cam], gt, scores, labels, cam_threshold=0.2)["gt_known_loc"] == 1.0
    assert localization_accuracy([cam], gt, scores, labels, cam_threshold=0.5)["gt_known_loc"] == 0.0


def test_exception():
    cam = np.zeros((16, 16), np.float32)
    with pytest.raises(ValueError, match="2 cams but 1"):
        max_box_acc([cam, cam], [np.array([[0, 0, 3, 3]])])
    with pytest.raises(ValueError, match="no ground-truth box"):
        max_box_acc([cam], [np.zeros((0, 4))])
    with pytest.raises(ValueError, match="x1 >= x0"):
        max_box_acc([cam], [np.array([[5, 0, 3, 3]])])
    with pytest.raises(ValueError, match="shape"):
        box_iou(np.zeros((2, 3)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="cam 1 contains NaN"):
        max_box_acc([cam, np.full((16, 16), np.nan)], [np.array([[0, 0, 3, 3]])] * 2)
    with pytest.raises(ValueError, match="iou_thresholds"):
        BoxAccuracy(iou_thresholds=(1.5,))
    gt = [np.array([[0, 0, 3, 3]])]
    with pytest.raises(ValueError, match="labels must lie"):
        localization_accuracy([cam], gt, np.zeros((1, 3)), np.array([3]))
    with pytest.raises(ValueError, match="class_scores must have shape"):
        localization_accuracy([cam], gt, np.zeros((2, 3)), np.array([0]))
    with pytest.raises(ValueError, match="NaN"):
        localization_accuracy([cam], gt, np.full((1, 3), np.nan), np.array([0]))


def test_update_box_accuracies_equals_separate_metrics_and_oracle():
    """One contour search for both metrics, thresholds that cannot score skipped: the counts stay exact."""
    from wsl.metrics import update_box_accuracies

    rng = np.random.default_rng(11)
    cams = _random_cams(rng, 10)
    cams[3] = np.zeros_like(cams[3])  # maximum 0: the [0, 0, 0, 0] box at every threshold
    gts = [_random_gt(rng) for _ in cams]
    gts[5] = np.array([[0, 0, 0, 0]])  # a one-pixel box, which only the empty [0, 0, 0, 0] box can match
    thresholds = np.arange(0, 1, 0.02)
    largest = BoxAccuracy(thresholds, (0.5, 0.7), multi_contour=False)
    every = BoxAccuracy(thresholds, (0.3, 0.5, 0.7), multi_contour=True)
    update_box_accuracies([largest, every], np.stack(cams), gts)
    for metric, deltas in ((largest, (0.5, 0.7)), (every, (0.3, 0.5, 0.7))):
        expected = _slow_max_box_acc(cams, gts, thresholds, deltas, metric.multi_contour)
        np.testing.assert_array_equal(metric.num_correct, np.rint(expected * len(cams)).astype(np.int64))
        alone = BoxAccuracy(thresholds, deltas, multi_contour=metric.multi_contour).update(cams, gts)
        np.testing.assert_array_equal(alone.num_correct, metric.num_correct)
    with pytest.raises(ValueError, match="same cam_thresholds"):
        update_box_accuracies([largest, BoxAccuracy(thresholds[:3])], cams, gts)
    before = every.num_correct.copy()
    with pytest.raises(ValueError, match="NaN"):
        update_box_accuracies([every], [cams[0], np.full_like(cams[0], np.nan)], gts[:2])
    np.testing.assert_array_equal(every.num_correct, before)  # a bad batch adds nothing
    assert every.num_images == len(cams)
