"""PxAP / PIoU against a per-threshold brute force and the reference evaluator's histogram procedure."""

import importlib.util

import numpy as np
import pytest
import torch

import wsl.metrics.pixel as pixel
import wsl.utils.jit as jit
from wsl.metrics import PixelPrecisionRecall, compose_mask, piou, pxap

HAS_NUMBA = importlib.util.find_spec("numba") is not None


def _use_path(monkeypatch, path):
    """``numba``: the compiled kernel must run (the OpenCV and numpy binnings fail if called); ``numpy``:
    WSL_NO_NUMBA=1, the OpenCV / numpy path."""
    if path == "numba":
        pytest.importorskip("numba", reason="numba is not installed (the [image] extra)")
        monkeypatch.delenv("WSL_NO_NUMBA", raising=False)

        def not_here(*args, **kwargs):
            raise AssertionError("the OpenCV / numpy binning ran instead of the numba kernel")

        monkeypatch.setattr(pixel.PixelPrecisionRecall, "_counts_opencv", not_here)
        monkeypatch.setattr(pixel.PixelPrecisionRecall, "_bin_index", not_here)
    else:
        monkeypatch.setenv("WSL_NO_NUMBA", "1")
    jit._numba.cache_clear()
    assert jit.numba_available() == (path == "numba")


@pytest.fixture(params=["numba", "numpy"])
def kernel_path(request, monkeypatch):
    """Runs the test on the numba kernel and on the NumPy/OpenCV path (WSL_NO_NUMBA=1)."""
    _use_path(monkeypatch, request.param)
    yield request.param
    monkeypatch.undo()
    jit._numba.cache_clear()


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


def test_smoke(kernel_path):
    maps, masks = _data(0)
    result = PixelPrecisionRecall().update(maps, masks).compute()
    assert set(result) == {"pxap", "piou", "piou_threshold"}
    assert 0 <= result["pxap"] <= 1 and 0 <= result["piou"] <= 1


@pytest.mark.parametrize("interval", [0.01, 0.001, 0.05, 0.3])
@pytest.mark.parametrize("quantize", [False, True])
def test_matches_reference_and_brute_force(kernel_path, interval, quantize):
    maps, masks = _data(1, quantize=quantize)
    area, best_iou, best_tau = _brute_force(maps, masks, interval)
    result = PixelPrecisionRecall(interval).update(maps, masks).compute()
    assert abs(result["pxap"] - _reference_pxap(maps, masks, interval)) < 1e-9
    assert abs(result["pxap"] - area) < 1e-9
    assert abs(result["piou"] - best_iou) < 1e-12 and result["piou_threshold"] == best_tau


def test_batches_accumulate(kernel_path):
    maps, masks = _data(2, count=9)
    whole = PixelPrecisionRecall().update(maps, masks).compute()
    parts = PixelPrecisionRecall()
    for start in range(0, 9, 4):
        parts.update(torch.from_numpy(maps[start:start + 4]), torch.from_numpy(masks[start:start + 4]))
    assert parts.compute() == whole


def test_hand_computed(kernel_path):
    # scores 0.9 (fg), 0.6 (bg), 0.3 (fg), 0.1 (bg): precision 1 at recall 1/2, 2/3 at recall 1
    maps = np.array([[[0.9, 0.6], [0.3, 0.1]]])
    masks = np.array([[[1, 0], [1, 0]]], dtype=np.uint8)
    assert pxap(maps, masks) == pytest.approx(1 * 0.5 + (2 / 3) * 0.5)
    assert piou(maps, masks) == pytest.approx(2 / 3)  # tau in (0.1, 0.3]: TP 2, FP 1, FN 0


def test_perfect_map(kernel_path):
    masks = np.zeros((1, 8, 8), dtype=np.uint8)
    masks[0, 2:5, 3:6] = 1
    result = PixelPrecisionRecall().update(masks.astype(np.float64), masks).compute()
    assert result["pxap"] == 1.0 and result["piou"] == 1.0


def test_ignored_pixels_do_not_count(kernel_path):
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


def test_exception(kernel_path):
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


@pytest.mark.parametrize("path", ["numba", "opencv", "numpy"])
@pytest.mark.parametrize("interval", [0.01, 0.003, 0.05, 0.3, 0.001])
def test_bins_equal_np_histogram_on_edges(monkeypatch, path, interval):
    """Scores exactly on, just below and just above every edge fall into np.histogram's bins, with the
    numba kernel, the OpenCV binning and the numpy binning."""
    _use_path(monkeypatch, "numba" if path == "numba" else "numpy")
    if path == "numpy":
        monkeypatch.setattr(pixel, "_opencv", lambda: None)
    elif path == "opencv" and interval >= 0.01:  # at most 127 bins: OpenCV bins everything, the numpy path must not run

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


def _counts(monkeypatch, path, maps, masks, interval=0.01, batch=None):
    _use_path(monkeypatch, path)
    metric = PixelPrecisionRecall(interval)
    if batch is None:
        metric.update(maps, masks)
    else:
        for start in range(0, len(maps), batch):
            metric.update(maps[start:start + batch], masks[start:start + batch])
    monkeypatch.undo()
    jit._numba.cache_clear()
    return metric.foreground.copy(), metric.background.copy()


def _edge_scores(interval, dtype, rng, count=5000):
    """Scores on, one ulp below and one ulp above every edge in ``dtype``, plus uniform ones, in [0, 1]."""
    edges = np.append(np.arange(0, 1, interval), 1.0).astype(dtype)
    near = [edges, np.nextafter(edges, dtype(-1)), np.nextafter(edges, dtype(2))]
    values = np.clip(np.concatenate([*near, rng.random(count).astype(dtype)]), 0, 1).astype(dtype)
    return rng.permutation(values)


def _oracle_counts(maps, masks, interval):
    """np.histogram of the foreground and background scores (in float64) over the edges."""
    edges = np.append(np.arange(0, 1, interval), [1.0, 2.0, 3.0])
    scores = np.asarray(maps, dtype=np.float64)
    return (np.histogram(scores[masks == 1], bins=edges)[0], np.histogram(scores[masks == 0], bins=edges)[0])


@pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed (the [image] extra)")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("interval", [0.01, 0.001, 0.003, 0.007, 0.05, 0.1, 0.3, 1 / 3])
def test_numba_equals_numpy_path_and_np_histogram(monkeypatch, dtype, interval):
    """Random maps with edge scores and ignore regions: the kernel's counts equal the NumPy/OpenCV path's
    and np.histogram's, for float32 and float64 maps."""
    rng = np.random.default_rng(int(interval * 1e4))
    scores = _edge_scores(interval, dtype, rng)
    side = 24
    total = 7 * side * side
    values = np.concatenate([scores, rng.random(max(0, total - len(scores))).astype(dtype)])[:total]
    maps = values.reshape(7, side, side)
    masks = rng.choice(np.array([0, 1, 255], np.uint8), size=maps.shape, p=[0.5, 0.3, 0.2])
    masks[:, 3:9, 4:12] = 255  # an ignore box
    expected = _oracle_counts(maps, masks, interval)
    compiled = _counts(monkeypatch, "numba", maps, masks, interval)
    reference = _counts(monkeypatch, "numpy", maps, masks, interval)
    for ours, theirs, oracle in zip(compiled, reference, expected):
        np.testing.assert_array_equal(ours, theirs)
        np.testing.assert_array_equal(ours, oracle)
    if len(scores) <= total:  # every edge score was counted somewhere unless ignored
        assert compiled[0].sum() + compiled[1].sum() == int((masks != 255).sum())


@pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed (the [image] extra)")
def test_numba_inputs_like_the_numpy_path(monkeypatch):
    """2-D maps, batches, Tensors, non-contiguous views, bool and int64 masks, empty batches: same counts."""
    maps, masks = _data(5, count=5, size=19)
    cases = [
        (maps[0], masks[0]),
        (maps, masks),
        (torch.from_numpy(maps).float(), torch.from_numpy(masks)),
        (maps[:, ::2, 1::3], masks[:, ::2, 1::3]),
        (np.asfortranarray(maps[1]), np.asfortranarray(masks[1])),
        (maps, (masks == 1)),
        (maps, masks.astype(np.int64)),
        (maps.astype(np.float16), masks),  # the numpy path only (not a kernel type)
        (maps[:0], masks[:0]),
    ]
    for index, (score_maps, labels) in enumerate(cases):
        if index == 7:
            _use_path(monkeypatch, "numpy")
            expected = PixelPrecisionRecall().update(score_maps, labels)
            monkeypatch.undo()
            jit._numba.cache_clear()
            monkeypatch.delenv("WSL_NO_NUMBA", raising=False)
            got = PixelPrecisionRecall().update(score_maps, labels)
            np.testing.assert_array_equal(got.foreground, expected.foreground)
            continue
        compiled = _counts(monkeypatch, "numba", score_maps, labels)
        reference = _counts(monkeypatch, "numpy", score_maps, labels)
        np.testing.assert_array_equal(compiled[0], reference[0], err_msg=f"case {index}")
        np.testing.assert_array_equal(compiled[1], reference[1], err_msg=f"case {index}")


@pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed (the [image] extra)")
def test_numba_parallel_batches(monkeypatch):
    """Batches above PARALLEL_PIXELS are split between threads: same counts as one thread and as numpy."""
    import numba

    rng = np.random.default_rng(7)
    maps = rng.random((13, 31, 29)).astype(np.float32)
    maps[0, 0, :5] = [0.0, 1.0, 0.5, np.nextafter(np.float32(0.29), np.float32(0)), 0.29]
    masks = rng.choice(np.array([0, 1, 255], np.uint8), size=maps.shape)
    reference = _counts(monkeypatch, "numpy", maps, masks)
    threads = numba.get_num_threads()
    try:
        for count in sorted({1, 2, min(3, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
            monkeypatch.setattr(pixel, "PARALLEL_PIXELS", 1000)
            compiled = _counts(monkeypatch, "numba", maps, masks)
            np.testing.assert_array_equal(compiled[0], reference[0])
            np.testing.assert_array_equal(compiled[1], reference[1])
    finally:
        numba.set_num_threads(threads)


def _error(update):
    with pytest.raises(ValueError) as caught:
        update()
    return str(caught.value)


@pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed (the [image] extra)")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("parallel", [False, True])
def test_numba_errors_equal_numpy_path(monkeypatch, dtype, parallel):
    """Every bad input gives the same message on both paths, scores checked before masks, and adds nothing."""
    maps, masks = _data(6, count=4, size=16)
    maps = maps.astype(dtype)
    bad_cases = []
    for value in (np.nan, np.inf, -np.inf, 1.5, -0.25, np.nextafter(dtype(1), dtype(2)), -np.finfo(dtype).tiny):
        changed = maps.copy()
        changed[2, 5, 7] = value
        bad_cases.append((changed, masks))
        both = masks.copy()
        both[0, 0, 0] = 3
        bad_cases.append((changed, both))  # a bad score and a bad label: the score error wins
    for label in (2, 7, 128, 254):
        changed = masks.copy()
        changed[3, 15, 15] = label
        bad_cases.append((maps, changed))
    bad_cases.append((maps, masks.astype(np.int64) - 1))  # -1 in an int64 mask
    bad_cases.append((maps, masks.astype(np.int64) + 256))  # 256, 257, 511
    if parallel:
        monkeypatch.setattr(pixel, "PARALLEL_PIXELS", 100)
    for index, (score_maps, labels) in enumerate(bad_cases):
        messages = {}
        for path in ("numba", "numpy"):
            _use_path(monkeypatch, path)
            if parallel:
                monkeypatch.setattr(pixel, "PARALLEL_PIXELS", 100)
            metric = PixelPrecisionRecall().update(maps, masks)
            before = metric.foreground.copy(), metric.background.copy()
            messages[path] = _error(lambda m=metric, a=score_maps, b=labels: m.update(a, b))
            np.testing.assert_array_equal(metric.foreground, before[0])
            np.testing.assert_array_equal(metric.background, before[1])
            monkeypatch.undo()
            jit._numba.cache_clear()
        assert messages["numba"] == messages["numpy"], f"case {index}"


def test_kernel_parameters_only_where_exact():
    """The arithmetic binning is used for arange thresholds it bins exactly; other edges leave it off."""
    for interval in (0.01, 0.001, 0.003, 0.05, 0.3, 1 / 3, 0.0001):
        inverse, delta, last, shift = PixelPrecisionRecall(interval)._kernel
        assert delta == interval and last == len(np.arange(0, 1, interval)) and (1 << shift) > last
        assert inverse <= 1 / interval and inverse == pytest.approx(1 / interval, rel=1e-13)
    edges = np.append(np.arange(0, 1, 0.01), [1.0, 2.0, 3.0])
    shifted = edges.copy()
    shifted[37] = np.nextafter(shifted[37], 1)  # not i * delta any more
    assert pixel._kernel_parameters(shifted, 0.01) is None


@pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed (the [image] extra)")
def test_numba_many_intervals_on_edges(monkeypatch):
    """Intervals of every kind (the kernel's lowered ``1 / interval``): edge scores binned as np.histogram."""
    rng = np.random.default_rng(11)
    intervals = [0.0137, 0.042, 0.25, 0.5, 0.9, 0.999, 0.0625, 0.015, 0.011, 0.0099, 0.123456, 0.0002]
    intervals += list(rng.uniform(0.0005, 0.2, size=12))
    for interval in intervals:
        assert PixelPrecisionRecall(interval)._kernel is not None, interval
        for dtype in (np.float64, np.float32):
            scores = _edge_scores(interval, dtype, rng, count=500)
            masks = rng.choice(np.array([0, 1, 255], np.uint8), size=scores.shape)
            expected = _oracle_counts(scores, masks, interval)
            compiled = _counts(monkeypatch, "numba", scores[None], masks[None], interval)
            np.testing.assert_array_equal(compiled[0], expected[0], err_msg=f"{interval} {dtype}")
            np.testing.assert_array_equal(compiled[1], expected[1], err_msg=f"{interval} {dtype}")
