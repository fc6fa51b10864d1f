"""PxAP / PIoU against a per-threshold brute force and the reference evaluator's histogram procedure."""

import numpy as np
import pytest
import torch

from wsl.metrics import PixelPrecisionRecall, compose_mask, piou, pxap


def _reference_pxap(score_maps, masks, interval):
    """The benchmark's procedure: per-image np.histogram over [0, bw, ..., 1-bw, 1, 2, 3], cumulated from the top."""
    edges = np.append(np.arange(0, 1, interval), [1.0, 2.0, 3.0])
    true_hist = np.zeros(len(edges) - 1)
    false_hist = np.zeros(len(edges) - 1)
    for scores, mask in zip(score_maps, masks):
        true_hist += np.histogram(scores[mask == 1], bins=edges)[0]
        false_hist += np.histogram(scores[mask == 0], bins=edges)[0]
    tp = true_hist[::-1].cumsum()
    fn = true_hist.sum() - tp
    fp = false_hist[::-1].cumsum()
    nonzero = (tp + fp) != 0
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    return (precision[1:] * np.diff(recall))[nonzero[1:]].sum()


def _brute_force(score_maps, masks, interval):
    """Every threshold tau separately: a pixel is selected when its score >= tau."""
    thresholds = list(np.append(np.arange(0, 1, interval), [1.0, 2.0]))[::-1]
    fg, bg = score_maps[masks == 1], score_maps[masks == 0]
    area, best_iou, best_tau, previous_recall = 0.0, -1.0, None, 0.0
    for tau in thresholds:
        tp, fp = int((fg >= tau).sum()), int((bg >= tau).sum())
        fn = len(fg) - tp
        recall = tp / len(fg)
        if tp + fp > 0:
            area += tp / (tp + fp) * (recall - previous_recall)
        previous_recall = recall
        iou = tp / (tp + fp + fn)
        if iou > best_iou:
            best_iou, best_tau = iou, tau
    return area, best_iou, best_tau


def _data(seed, count=6, size=17, quantize=False):
    rng = np.random.default_rng(seed)
    maps = rng.random((count, size, size))
    if quantize:  # many scores exactly on bin edges, 0 and 1
        maps = np.round(maps * 20) / 20
    masks = (rng.random((count, size, size)) < 0.3).astype(np.uint8)
    masks[rng.random((count, size, size)) < 0.1] = 255
    masks[:, 0, 0] = 1
    return maps, masks


def test_smoke():
    maps, masks = _data(0)
    result = PixelPrecisionRecall().update(maps, masks).compute()
    assert set(result) == {"pxap", "piou", "piou_threshold"}
    assert 0 <= result["pxap"] <= 1 and 0 <= result["piou"] <= 1


@pytest.mark.parametrize("interval", [0.01, 0.001, 0.05, 0.3])
@pytest.mark.parametrize("quantize", [False, True])
def test_matches_reference_and_brute_force(interval, quantize):
    maps, masks = _data(1, quantize=quantize)
    area, best_iou, best_tau = _brute_force(maps, masks, interval)
    result = PixelPrecisionRecall(interval).update(maps, masks).compute()
    assert abs(result["pxap"] - _reference_pxap(maps, masks, interval)) < 1e-9
    assert abs(result["pxap"] - area) < 1e-9
    assert abs(result["piou"] - best_iou) < 1e-12 and result["piou_threshold"] == best_tau


def test_batches_accumulate():
    maps, masks = _data(2, count=9)
    whole = PixelPrecisionRecall().update(maps, masks).compute()
    parts = PixelPrecisionRecall()
    for start in range(0, 9, 4):
        parts.update(torch.from_numpy(maps[start:start + 4]), torch.from_numpy(masks[start:start + 4]))
    assert parts.compute() == whole


def test_hand_computed():
    # scores 0.9 (fg), 0.6 (bg), 0.3 (fg), 0.1 (bg): precision 1 at recall 1/2, 2/3 at recall 1
    maps = np.array([[[0.9, 0.6], [0.3, 0.1]]])
    masks = np.array([[[1, 0], [1, 0]]], dtype=np.uint8)
    assert pxap(maps, masks) == pytest.approx(1 * 0.5 + (2 / 3) * 0.5)
    assert piou(maps, masks) == pytest.approx(2 / 3)  # tau in (0.1, 0.3]: TP 2, FP 1, FN 0


def test_perfect_map():
    masks = np.zeros((1, 8, 8), dtype=np.uint8)
    masks[0, 2:5, 3:6] = 1
    result = PixelPrecisionRecall().update(masks.astype(np.float64), masks).compute()
    assert result["pxap"] == 1.0 and result["piou"] == 1.0


def test_ignored_pixels_do_not_count():
    maps, masks = _data(3)
    changed = maps.copy()
    changed[masks == 255] = np.random.default_rng(0).random(int((masks == 255).sum()))
    assert pxap(changed, masks) == pxap(maps, masks)


def test_compose_mask():
    a = np.zeros((4, 4), bool)
    a[0, :2] = True
    b = np.zeros((4, 4), bool)
    b[3, 3] = True
    ignore = np.zeros((4, 4), bool)
    ignore[0:2, 0:3] = True
    mask = compose_mask([a, b], ignore)
    assert mask.dtype == np.uint8
    assert mask[0, 0] == 1 and mask[0, 1] == 1 and mask[3, 3] == 1  # foreground wins over the ignore box
    assert mask[0, 2] == 255 and mask[1, 0] == 255 and mask[2, 0] == 0
    assert set(np.unique(compose_mask([a]))) == {0, 1}


def test_exception():
    maps, masks = _data(4)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        pxap(maps * 2, masks)
    with pytest.raises(ValueError, match="NaN or infinite"):
        pxap(np.full_like(maps, np.nan), masks)
    with pytest.raises(ValueError, match="one shape"):
        pxap(maps[:, :5], masks)
    with pytest.raises(ValueError, match="may only hold 0"):
        pxap(maps, masks * 2)
    with pytest.raises(ValueError, match="no foreground pixel"):
        pxap(maps, np.zeros_like(masks))
    with pytest.raises(ValueError, match=r"curve interval must lie in \(0, 1\)"):
        PixelPrecisionRecall(0)
    with pytest.raises(ValueError, match="share one 2-D shape"):
        compose_mask([np.zeros((2, 2)), np.zeros((3, 3))])
    with pytest.raises(ValueError, match="at least one foreground"):
        compose_mask([])


@pytest.mark.parametrize("opencv", [True, False])
@pytest.mark.parametrize("interval", [0.01, 0.003, 0.05, 0.3, 0.001])
def test_bins_equal_np_histogram_on_edges(monkeypatch, opencv, interval):
    """Scores exactly on, just below and just above every edge fall into np.histogram's bins, with and
    without the OpenCV binning."""
    import wsl.metrics.pixel as pixel

    if not opencv:
        monkeypatch.setattr(pixel, "_opencv", lambda: None)
    elif interval >= 0.01:  # at most 127 bins: OpenCV bins everything, the numpy path must not run

        def no_numpy(self, scores):
            raise AssertionError("the numpy binning ran")

        monkeypatch.setattr(pixel.PixelPrecisionRecall, "_bin_index", no_numpy)
    edges = np.append(np.arange(0, 1, interval), [1.0, 2.0, 3.0])
    inside = edges[edges <= 1]
    values = np.concatenate([inside, np.nextafter(inside, -1), np.nextafter(inside, 2), [0.0, 1.0, 0.5]])
    values = np.clip(values, 0, 1)
    rng = np.random.default_rng(0)
    values = np.concatenate([values, rng.random(4000 - len(values) % 4000 if len(values) < 4000 else 0)])
    side = int(np.ceil(np.sqrt(len(values))))
    scores = np.zeros(side * side)
    scores[: len(values)] = values
    scores = scores.reshape(side, side)
    masks = rng.choice(np.array([0, 1, 255], np.uint8), size=scores.shape)
    metric = PixelPrecisionRecall(interval).update(scores, masks)
    np.testing.assert_array_equal(metric.foreground, np.histogram(scores[masks == 1], bins=edges)[0])
    np.testing.assert_array_equal(metric.background, np.histogram(scores[masks == 0], bins=edges)[0])
    with pytest.raises(ValueError, match="may only hold"):
        PixelPrecisionRecall(interval).update(scores, np.where(masks == 255, 7, masks).astype(np.uint8))
