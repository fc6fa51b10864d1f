"""Speed of score-map evaluation against the WSOL benchmark's own evaluator, on the same maps.

Generates CAM-like score maps in memory (seeded): per image one to three Gaussian blobs plus
background activation on a 28 x 28 grid (the feature-map size of the benchmark's ResNet50), resized
to 224 x 224 with bicubic interpolation as the benchmark resizes its CAMs, then min-max normalised to
[0, 1]. Each box image gets one to three ground-truth boxes near its blobs (ILSVRC-like); each mask
image gets a foreground of one to three ellipses and an ignore box (OpenImages-like: ignored = box
minus foreground).

Times, in the same run and on the same maps:

* boxes: the reference evaluator of Choe et al. (CVPR 2020, clovaai/wsolevaluation ``evaluation.py``,
  re-implemented below from its description: per map and threshold a uint8 binarisation, OpenCV
  contours, the largest contour's box or every contour's box, the tiled IoU and the per-threshold
  loop), run once for MaxBoxAcc (largest contour) and once for MaxBoxAccV2 (all contours), both at
  IoU 30/50/70; against ``wsl.metrics.update_box_accuracies`` feeding both metrics from one contour
  search per map and threshold, as ``wsl-image evaluate-maps`` calls it (one map at a time);
* masks: the reference ``MaskEvaluator`` histograms (``np.histogram`` per map on the foreground and
  background scores) against ``wsl.metrics.PixelPrecisionRecall.update``, three ways: one map per call
  (as the reference is called); batches of ``--mask-batch`` maps (256) per call on one numba thread, as
  ``wsl-image evaluate-maps`` feeds them; the same batches on all of numba's threads (its default: one
  per core; ``NUMBA_NUM_THREADS`` caps it), a row printed only when there are several. The maps are
  generated, then stacked into the batches before any timing, and every side reads those same arrays
  (the per-map calls get views into the batches). Without numba (or with ``WSL_NO_NUMBA=1``) the
  library runs its NumPy/OpenCV path and the thread count plays no part.

Both sides must give the same numbers (the per-threshold correct counts, MaxBoxAcc, MaxBoxAccV2 per
IoU, the PxAP histograms, PxAP and PIoU) or the script fails. Prints a markdown table: one box row and
one mask row per way of calling.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/wsol_evaluator.py [--box-maps 10000] [--mask-maps 5000]
        [--mask-batch 256] [--quick] [--seed 0] [--output timings.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wsl.metrics import BoxAccuracy, PixelPrecisionRecall, update_box_accuracies  # noqa: E402
from wsl.metrics.pixel import curve_thresholds  # noqa: E402
from wsl.utils.io import atomic_write_json  # noqa: E402
from wsl.utils.jit import numba_available  # noqa: E402
from wsl_image.evaluate_maps import BOX_BATCH  # noqa: E402

MAP_SIZE = 224
FEATURE_SIZE = 28
IOU_PERCENT = (30, 50, 70)


def _cv2():
    import cv2

    cv2.setNumThreads(1)
    return cv2


# --------------------------------------------------------------------------- synthetic data

def _blob_map(rng: np.random.Generator, blobs: np.ndarray) -> np.ndarray:
    """One 224 x 224 CAM-like map in [0, 1] from blobs given as rows (cx, cy, sx, sy, height) in feature cells."""
    cv2 = _cv2()
    grid = np.arange(FEATURE_SIZE) + 0.5
    y, x = np.meshgrid(grid, grid, indexing="ij")
    low = float(rng.uniform(0.05, 0.25)) * rng.random((FEATURE_SIZE, FEATURE_SIZE))
    for cx, cy, sx, sy, height in blobs:
        low += height * np.exp(-((x - cx) ** 2 / (2 * sx**2) + (y - cy) ** 2 / (2 * sy**2)))
    full = cv2.resize(low.astype(np.float32), (MAP_SIZE, MAP_SIZE), interpolation=cv2.INTER_CUBIC)
    full = full.astype(np.float64)
    full -= full.min()
    return full / full.max()


def _random_blobs(rng: np.random.Generator) -> np.ndarray:
    count = int(rng.integers(1, 4))
    centres = rng.uniform(3, FEATURE_SIZE - 3, size=(count, 2))
    sizes = rng.uniform(1.5, 6.0, size=(count, 2))
    heights = rng.uniform(0.4, 1.0, size=(count, 1))
    return np.hstack([centres, sizes, heights])


def synthetic_box_maps(count: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``count`` score maps and their ground-truth boxes (1-3 per image, int (x0, y0, x1, y1) in map pixels)."""
    rng = np.random.default_rng(seed)
    scale = MAP_SIZE / FEATURE_SIZE
    maps, boxes = [], []
    for _ in range(count):
        blobs = _random_blobs(rng)
        maps.append(_blob_map(rng, blobs))
        image_boxes = []
        for cx, cy, sx, sy, _ in blobs[: int(rng.integers(1, len(blobs) + 1))]:
            half = np.array([sx, sy]) * scale * rng.uniform(1.2, 2.5, size=2)
            centre = np.array([cx, cy]) * scale + rng.normal(0, 8, size=2)
            low = np.clip(centre - half, 0, MAP_SIZE - 1)
            high = np.clip(centre + half, 0, MAP_SIZE - 1)
            image_boxes.append([int(low[0]), int(low[1]), int(max(high[0], low[0])), int(max(high[1], low[1]))])
        boxes.append(np.array(image_boxes, dtype=np.int64))
    return maps, boxes


def synthetic_mask_maps(count: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``count`` score maps and evaluation masks (uint8: 1 foreground, 255 ignored, 0 background)."""
    rng = np.random.default_rng(seed + 1)
    scale = MAP_SIZE / FEATURE_SIZE
    y, x = np.mgrid[0:MAP_SIZE, 0:MAP_SIZE] + 0.5
    maps, masks = [], []
    for _ in range(count):
        blobs = _random_blobs(rng)
        maps.append(_blob_map(rng, blobs))
        foreground = np.zeros((MAP_SIZE, MAP_SIZE), dtype=bool)
        for cx, cy, sx, sy, _ in blobs[: int(rng.integers(1, len(blobs) + 1))]:
            rx, ry = sx * scale * rng.uniform(1.0, 2.0), sy * scale * rng.uniform(1.0, 2.0)
            ex, ey = cx * scale + rng.normal(0, 6), cy * scale + rng.normal(0, 6)
            foreground |= ((x - ex) / rx) ** 2 + ((y - ey) / ry) ** 2 <= 1
        if not foreground.any():
            foreground[MAP_SIZE // 2, MAP_SIZE // 2] = True
        x0, x1 = sorted(rng.integers(0, MAP_SIZE, size=2))
        y0, y1 = sorted(rng.integers(0, MAP_SIZE, size=2))
        ignore = np.zeros_like(foreground)
        ignore[y0 : y1 + 1, x0 : x1 + 1] = True
        mask = foreground.astype(np.uint8)
        mask[ignore & ~foreground] = 255
        masks.append(mask)
    return maps, masks


# --------------------------------------------------------------------------- the reference evaluator
# Re-implemented from clovaai/wsolevaluation evaluation.py (MIT): same operations in the same order,
# written here only to time them and to check that the library gives the same numbers.

def reference_box_iou(estimated: np.ndarray, ground_truth: np.ndarray) -> np.ndarray:
    """IoU of every estimated box with every ground-truth box, the reference's tiled way (+1-pixel sizes)."""
    num_a, num_b = len(estimated), len(ground_truth)
    a = np.tile(estimated, num_b).reshape(num_a, num_b, 4)
    b = np.transpose(np.tile(ground_truth, num_a).reshape(num_b, num_a, 4), (1, 0, 2))
    inter_w = np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    inter_h = np.maximum(0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    intersection = inter_w * inter_h
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    union = area_a + area_b - intersection
    degenerate = union <= 0
    union[degenerate] = 1
    ious = intersection / union
    ious[degenerate] = 0
    return ious


def reference_boxes(scoremap: np.ndarray, thresholds, multi_contour: bool) -> tuple[list[np.ndarray], list[int]]:
    """Boxes at each threshold: uint8 map, binarised above int(threshold * max), RETR_TREE contours."""
    cv2 = _cv2()
    if np.isnan(scoremap).any() or (scoremap > 1).any() or (scoremap < 0).any():
        raise ValueError("score map outside [0, 1]")
    height, width = scoremap.shape
    image = np.expand_dims((scoremap * 255).astype(np.uint8), 2)
    all_boxes, counts = [], []
    for threshold in thresholds:
        _, binary = cv2.threshold(src=image, thresh=int(threshold * np.max(image)), maxval=255,
                                  type=cv2.THRESH_BINARY)
        contours = cv2.findContours(image=binary, mode=cv2.RETR_TREE, method=cv2.CHAIN_APPROX_SIMPLE)[0]
        if len(contours) == 0:
            all_boxes.append(np.asarray([[0, 0, 0, 0]]))
            counts.append(1)
            continue
        if not multi_contour:
            contours = [max(contours, key=cv2.contourArea)]
        boxes = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
        all_boxes.append(np.asarray(boxes))
        counts.append(len(contours))
    return all_boxes, counts


class ReferenceBoxEvaluator:
    """The reference ``BoxEvaluator``: correct counts per IoU threshold (percent) and CAM threshold."""

    def __init__(self, thresholds, multi_contour: bool, iou_percent=IOU_PERCENT) -> None:
        self.thresholds = list(thresholds)
        self.multi_contour = multi_contour
        self.iou_percent = tuple(iou_percent)
        self.num_correct = {delta: np.zeros(len(self.thresholds)) for delta in self.iou_percent}
        self.count = 0

    def accumulate(self, scoremap: np.ndarray, gt_boxes: np.ndarray) -> None:
        boxes, counts = reference_boxes(scoremap, self.thresholds, self.multi_contour)
        ious = reference_box_iou(np.concatenate(boxes, axis=0), np.array(gt_boxes))
        start, best = 0, []
        for count in counts:
            best.append(max(ious.max(1)[start : start + count]))
            start += count
        for delta in self.iou_percent:
            self.num_correct[delta][np.where(np.asarray(best) >= delta / 100)[0]] += 1
        self.count += 1

    def compute(self) -> list[float]:
        return [float((self.num_correct[delta] * 100.0 / self.count).max()) for delta in self.iou_percent]


class ReferenceMaskEvaluator:
    """The reference ``MaskEvaluator``: float histograms of foreground and background scores, then PxAP."""

    def __init__(self, thresholds) -> None:
        self.edges = np.append(np.asarray(thresholds), [1.0, 2.0, 3.0])
        self.foreground = np.zeros(len(self.edges) - 1, dtype=np.float64)
        self.background = np.zeros(len(self.edges) - 1, dtype=np.float64)

    def accumulate(self, scoremap: np.ndarray, mask: np.ndarray) -> None:
        if np.isnan(scoremap).any() or (scoremap > 1).any() or (scoremap < 0).any():
            raise ValueError("score map outside [0, 1]")
        self.foreground += np.histogram(scoremap[mask == 1], bins=self.edges)[0].astype(np.float64)
        self.background += np.histogram(scoremap[mask == 0], bins=self.edges)[0].astype(np.float64)

    def compute(self) -> tuple[float, float]:
        """(PxAP, PIoU) in percent; PIoU is the best TP / (TP + FP + FN) over the same thresholds."""
        tp = self.foreground[::-1].cumsum()
        fn = self.foreground.sum() - tp
        fp = self.background[::-1].cumsum()
        selected = (tp + fp) != 0
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = tp / (tp + fp)
        recall = tp / (tp + fn)
        auc = (precision[1:] * np.diff(recall))[selected[1:]].sum() * 100
        return float(auc), float((tp / (tp + fp + fn)).max() * 100)


# --------------------------------------------------------------------------- timing

def _time_boxes(maps, boxes, thresholds) -> dict:
    start = time.perf_counter()
    reference = {}
    for multi_contour in (False, True):
        evaluator = ReferenceBoxEvaluator(thresholds, multi_contour)
        for scoremap, gt in zip(maps, boxes):
            evaluator.accumulate(scoremap, gt)
        reference[multi_contour] = evaluator
    reference_s = time.perf_counter() - start

    deltas = tuple(p / 100 for p in IOU_PERCENT)
    # compile (or load from numba's cache) the sweep before timing
    update_box_accuracies([BoxAccuracy(thresholds, deltas)], maps[:1], boxes[:1])
    previous = os.environ.get("WSL_EVAL_THREADS")
    timings = {}
    for threads in (1, _cores()):  # one thread, then every usable core (the library's default)
        os.environ["WSL_EVAL_THREADS"] = str(threads)
        start = time.perf_counter()
        largest = BoxAccuracy(thresholds, deltas, multi_contour=False)
        every = BoxAccuracy(thresholds, deltas, multi_contour=True)
        for first in range(0, len(maps), BOX_BATCH):  # batches, as wsl-image evaluate-maps feeds them
            update_box_accuracies([largest, every], maps[first : first + BOX_BATCH],
                                  boxes[first : first + BOX_BATCH])
        results = {False: largest.compute(), True: every.compute()}
        timings[threads] = time.perf_counter() - start
        _check_boxes(reference, largest, every, results)
    if previous is None:
        os.environ.pop("WSL_EVAL_THREADS")
    else:
        os.environ["WSL_EVAL_THREADS"] = previous
    return {"reference_s": reference_s, "ours_s": timings[_cores()], "ours_one_thread_s": timings[1],
            "threads": _cores(), "compiled": numba_available(),
            "max_box_acc": 100.0 * results[False][0.5],
            "max_box_acc_v2": 100.0 * results[True]["mean"]}


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _check_boxes(reference, largest, every, results) -> None:
    for multi_contour, metric in ((False, largest), (True, every)):
        name = "MaxBoxAccV2" if multi_contour else "MaxBoxAcc"
        for row, percent in enumerate(IOU_PERCENT):
            expected = reference[multi_contour].num_correct[percent]
            if not np.array_equal(expected, metric.num_correct[row]):
                raise AssertionError(f"{name} at IoU {percent}: per-threshold correct counts differ from the reference")
        values = reference[multi_contour].compute()
        ours = [100.0 * results[multi_contour][p / 100] for p in IOU_PERCENT]
        if not np.allclose(values, ours, rtol=0, atol=1e-9):
            raise AssertionError(f"{name}: {ours} != reference {values}")


def _mask_batches(maps, masks, batch: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The maps and masks stacked into batches of ``batch`` (the last one shorter), as ``evaluate-maps`` reads them."""
    return [(np.stack(maps[start : start + batch]), np.stack(masks[start : start + batch]))
            for start in range(0, len(maps), batch)]


def _numba_threads(count: int | None) -> int | None:
    """Sets numba's thread count (None: leave it) and returns the previous one; None without numba."""
    from wsl.utils.jit import numba_available

    if not numba_available():
        return None
    import numba

    previous = numba.get_num_threads()
    if count is not None:
        numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
    return previous


def _time_masks(batches, thresholds) -> dict:
    """Reference per map; ``wsl`` per map, then per batch on one numba thread and on all of them.

    Every side reads the same arrays: the per-map calls get views into the batches."""
    maps = [scoremap for batch, _ in batches for scoremap in batch]
    masks = [mask for _, batch in batches for mask in batch]
    start = time.perf_counter()
    reference = ReferenceMaskEvaluator(thresholds)
    for scoremap, mask in zip(maps, masks):
        reference.accumulate(scoremap, mask)
    ref_pxap, ref_piou = reference.compute()
    reference_s = time.perf_counter() - start

    interval = float(thresholds[1] - thresholds[0])
    warm = PixelPrecisionRecall(interval)  # compiles (or loads) the numba kernels outside the timings
    warm.update(maps[0], masks[0])
    warm.update(*batches[0])

    def run(feed) -> tuple[float, dict, PixelPrecisionRecall]:
        start = time.perf_counter()
        metric = PixelPrecisionRecall(interval)
        for scoremap, mask in feed:
            metric.update(scoremap, mask)
        result = metric.compute()
        return time.perf_counter() - start, result, metric

    previous = _numba_threads(None)
    timings = {}
    try:
        _numba_threads(1)
        timings["per_map"] = run(zip(maps, masks))
        timings["batch_1_thread"] = run(batches)
        if previous is not None and previous > 1:
            _numba_threads(previous)
            timings[f"batch_{previous}_threads"] = run(batches)
    finally:
        if previous is not None:
            _numba_threads(previous)

    out = {"reference_s": reference_s, "threads": previous}
    for name, (seconds, result, metric) in timings.items():
        if not np.array_equal(reference.foreground, metric.foreground) or \
                not np.array_equal(reference.background, metric.background):
            raise AssertionError(f"PxAP histograms ({name}) differ from the reference")
        for metric_name, ours, theirs in (("PxAP", 100 * result["pxap"], ref_pxap),
                                          ("PIoU", 100 * result["piou"], ref_piou)):
            if abs(ours - theirs) > 1e-9:
                raise AssertionError(f"{metric_name} ({name}): {ours} != reference {theirs}")
        out[f"{name}_s"] = seconds
        out["pxap"], out["piou"] = 100 * result["pxap"], 100 * result["piou"]
    out["ours_s"] = out["per_map_s"]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--box-maps", type=int, default=10000, help="maps of the box evaluation (ILSVRC: 10,000)")
    parser.add_argument("--mask-maps", type=int, default=5000, help="maps of the mask evaluation (OpenImages: 5,000)")
    parser.add_argument("--mask-batch", type=int, default=256,
                        help="maps per update in the batched mask timings (evaluate-maps' batch)")
    parser.add_argument("--curve-interval", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="60 box maps and 40 mask maps (a smoke run)")
    parser.add_argument("--output", default=None, metavar="JSON", help="also write the timings here")
    args = parser.parse_args(argv)
    if args.quick:
        args.box_maps, args.mask_maps = 60, 40

    thresholds = curve_thresholds(args.curve_interval)
    box_maps, gt_boxes = synthetic_box_maps(args.box_maps, args.seed)
    boxes = _time_boxes(box_maps, gt_boxes, thresholds)
    del box_maps
    if args.mask_batch < 1:
        parser.error("--mask-batch must be at least 1")
    mask_maps, masks = synthetic_mask_maps(args.mask_maps, args.seed)
    batches = _mask_batches(mask_maps, masks, args.mask_batch)
    del mask_maps, masks
    pixels = _time_masks(batches, thresholds)

    box_name = f"boxes: MaxBoxAcc + MaxBoxAccV2, IoU 30/50/70 ({args.box_maps:,} maps, {len(thresholds)} thresholds)"
    box_values = f"MaxBoxAcc {boxes['max_box_acc']:.2f}, MaxBoxAccV2 {boxes['max_box_acc_v2']:.2f}"
    rows = [(box_name + f", batches of {BOX_BATCH}, 1 thread",
             {"reference_s": boxes["reference_s"], "ours_s": boxes["ours_one_thread_s"]}, box_values)]
    if boxes["threads"] > 1:
        rows.append((box_name + f", batches of {BOX_BATCH}, {boxes['threads']} threads",
                     {"reference_s": boxes["reference_s"], "ours_s": boxes["ours_s"]}, box_values))
    boxes["speedup"] = boxes["reference_s"] / boxes["ours_s"]
    boxes["speedup_one_thread"] = boxes["reference_s"] / boxes["ours_one_thread_s"]
    mask_name = f"masks: PxAP + PIoU ({args.mask_maps:,} maps, {len(thresholds)} thresholds)"
    mask_values = f"PxAP {pixels['pxap']:.2f}, PIoU {pixels['piou']:.2f}"
    threads = pixels["threads"]
    variants = [("per_map", ", one map per update"),
                ("batch_1_thread", f", batches of {args.mask_batch}, 1 thread")]
    if threads is not None and threads > 1:
        variants.append((f"batch_{threads}_threads", f", batches of {args.mask_batch}, {threads} threads"))
    for key, suffix in variants:
        rows.append((mask_name + suffix, {"reference_s": pixels["reference_s"], "ours_s": pixels[f"{key}_s"]},
                     mask_values))
    lines = ["| evaluation | wsolevaluation (re-implemented) | wsl | speed-up | both give |",
             "|---|---|---|---|---|"]
    for name, timing, values in rows:
        ratio = timing["reference_s"] / timing["ours_s"]
        lines.append(f"| {name} | {timing['reference_s']:.2f} s | {timing['ours_s']:.2f} s | {ratio:.1f}x | {values} |")
    for key, _ in variants:
        pixels[f"{key}_speedup"] = pixels["reference_s"] / pixels[f"{key}_s"]
    table = "\n".join(lines)
    print(table)
    if args.output:
        atomic_write_json(args.output, {"boxes": boxes, "masks": pixels, "box_maps": args.box_maps,
                                        "mask_maps": args.mask_maps})
    return 0


if __name__ == "__main__":
    sys.exit(main())
