"""The boxes OpenCV's contours give at every cut-off of a map, from one sweep over its pixels (numba).

:func:`wsl.localization.boxes.level_boxes` searches the contours of ``quantized > cutoff`` with OpenCV once
per cut-off. This module gets the same numbers without any contour search, from three linear passes over the
pixels sorted by value (a counting sort of the ``uint8`` levels):

* **components**: the foreground grows as the cut-off falls; a union-find over 8-connected pixels keeps, per
  component, its box, twice its polygon area and its first pixel in raster order. The outer contour that
  ``cv2.findContours`` traces around a component without holes passes through its border pixels' centres, and
  its ``cv2.contourArea`` is ``Q4 + Q3 / 2``, with ``Q4`` / ``Q3`` the 2 x 2 windows holding four / three of its
  pixels; each window is counted when its last pixel arrives.
* **holes**: the level at which each pixel joins the background region that touches the image border is the
  smallest possible largest value on a 4-connected path to the border (a grayscale reconstruction by erosion:
  a raster and an anti-raster scan, then a queue). A background pixel whose level is above the cut-off is in a
  hole; a second union-find over 4-connected hole pixels keeps each hole's box, twice the area of its contour
  (``sum over windows of min(hole pixels in the window, 2)``) and its first pixel.
* a hole's contour runs through the foreground pixels 4-adjacent to it: its box is the hole's box grown by one
  pixel; the outer contour of a component encloses its holes, so its area is its own plus theirs. OpenCV lists
  the components by decreasing first pixel, each followed by its holes: ties of the largest contour are broken
  in that order (the largest contour is never a hole: a hole's area is at most its component's).

A component inside another component's hole (nesting) is never the largest contour, and its area adds to the
area of the outer contours around it, which the sweep does not pair up: where the nested areas could change
which outer contour is the largest, the cut-off is reported in ``fallback`` and the caller asks OpenCV for the
largest contour there (the boxes of all contours, holes and nested ones included, are exact everywhere).
The tests compare everything with OpenCV's contours on adversarial maps (holes, nesting, thin lines, corner
contacts, area ties).
"""

from __future__ import annotations

import threading

import numpy as np

from wsl.localization.boxes import quantize_map
from wsl.utils.jit import njit

__all__ = ["sweep_level_ious", "evaluate_map"]


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per 8-bit mask of the neighbours already present (bits: N, NE, E, SE, S, SW, W, NW):

    * ``area[mask]``: change of twice the polygon area (``2 Q4 + Q3``) of the 4 windows around a new pixel;
    * ``runs[mask]``: ``[count, ring positions...]``: one neighbour per run of consecutive present neighbours on
      the ring (consecutive ring cells touch, so one union per run joins them all);
    * ``holes[mask]``: change of ``sum min(count, 2)`` over the 4 windows when a background pixel arrives.
    """
    window = np.array([0, 0, 0, 1, 0, 1, 1, 2, 0, 1, 1, 2, 1, 2, 2, 3]) * 0
    for pattern in range(16):
        ones = bin(pattern).count("1")
        window[pattern] = 2 if ones == 4 else (1 if ones == 3 else 0)
    area = np.zeros(256, np.int64)
    holes = np.zeros(256, np.int64)
    runs = np.zeros((256, 5), np.int64)
    for mask in range(256):
        n, ne, e, se, s, sw, w, nw = [(mask >> bit) & 1 for bit in range(8)]
        # the windows around the new pixel, as (pattern of the others, bit of the new pixel); bits 1 2 / 4 8
        for others, own in ((nw | n << 1 | w << 2, 8), (n | ne << 1 | e << 3, 4),
                            (w | sw << 2 | s << 3, 2), (e << 1 | s << 2 | se << 3, 1)):
            area[mask] += window[others | own] - window[others]
            holes[mask] += 1 if bin(others).count("1") <= 1 else 0
        starts = [bit for bit in range(8) if (mask >> bit) & 1 and not (mask >> ((bit - 1) % 8)) & 1]
        if mask == 255:
            starts = [0]
        runs[mask, 0] = len(starts)
        runs[mask, 1 : 1 + len(starts)] = starts
    return area, runs, holes


_AREA, _RUNS, _HOLES = _tables()
_ROWS = 18  # int32 rows of the per-pixel workspace


@njit(inline="always")
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(inline="always")
def _neighbours(flag, b, P):
    """8-bit mask of the flagged neighbours of padded pixel ``b`` (bits: N, NE, E, SE, S, SW, W, NW)."""
    return (np.int64(flag[b - P]) | np.int64(flag[b - P + 1]) << 1 | np.int64(flag[b + 1]) << 2
            | np.int64(flag[b + P + 1]) << 3 | np.int64(flag[b + P]) << 4 | np.int64(flag[b + P - 1]) << 5
            | np.int64(flag[b - 1]) << 6 | np.int64(flag[b - P - 1]) << 7)


@njit(inline="always")
def _remove(roots, pos, count, root):
    last = roots[count - 1]
    roots[pos[root]] = last
    pos[last] = pos[root]
    return count - 1


@njit(inline="always")
def _union(root, other, parent, size, bx0, by0, bx1, by1, area, first, roots, pos, nroots):
    """Join the regions of roots ``root`` and ``other`` (the smaller under the larger): ``(new root, nroots)``."""
    if size[other] > size[root]:
        root, other = other, root
    parent[other] = root
    size[root] += size[other]
    bx0[root] = min(bx0[root], bx0[other])
    by0[root] = min(by0[root], by0[other])
    bx1[root] = max(bx1[root], bx1[other])
    by1[root] = max(by1[root], by1[other])
    area[root] += area[other]
    first[root] = min(first[root], first[other])
    return root, _remove(roots, pos, nroots, other)


@njit(inline="always")
def _best_iou(x0, y0, x1, y1, gt):
    """Best IoU (+1-pixel convention, float64 as :func:`wsl.metrics.box_iou`) of one box with the ground truth."""
    area = (x1 - x0 + 1) * (y1 - y0 + 1)
    best = 0.0
    for g in range(gt.shape[0]):
        width = min(x1, gt[g, 2]) - max(x0, gt[g, 0]) + 1
        height = min(y1, gt[g, 3]) - max(y0, gt[g, 1]) + 1
        inter = max(width, 0.0) * max(height, 0.0)
        union = area + (gt[g, 2] - gt[g, 0] + 1) * (gt[g, 3] - gt[g, 1] + 1) - inter
        value = inter / union if union > 0 else 0.0
        if value > best:
            best = value
    return best


@njit
def _join_levels(qp, join, queue, queued, H, W):
    """``join[b]``: the smallest largest value on a 4-connected path from pixel ``b`` to the border (padding: -1)."""
    P = W + 2
    NP = (H + 2) * P
    queued[:] = 0
    for b in range(P):  # the padding ring
        join[b] = -1
        join[NP - P + b] = -1
    for y in range(1, H + 1):
        join[y * P] = -1
        join[y * P + W + 1] = -1
    for y in range(1, H + 1):  # raster scan: north and west neighbours (each pixel written before it is read)
        previous = np.int32(-1)
        for b in range(y * P + 1, y * P + W + 1):
            value = max(qp[b], min(join[b - P], previous))
            join[b] = value
            previous = value
    tail = 0
    for y in range(H, 0, -1):  # anti-raster scan: south and east; pixels that can still lower others are queued
        previous = np.int32(-1)
        for b in range(y * P + W, y * P, -1):
            own = min(max(qp[b], min(join[b + P], previous)), join[b])
            join[b] = own
            previous = own
            south = join[b + P]
            east = join[b + 1]
            if ((south > own) & (south > qp[b + P])) | ((east > own) & (east > qp[b + 1])):
                queued[b] = 1  # (each pixel is visited once here: the queue cannot wrap yet)
                queue[tail] = b
                tail += 1
    head = 0
    while head != tail:
        b = queue[head]
        head = head + 1 if head + 1 < NP else 0
        queued[b] = 0
        own = join[b]
        for step in (-P, 1, P, -1):
            other = b + step
            if join[other] > own:
                value = max(qp[other], own)
                if value < join[other]:
                    join[other] = value
                    if queued[other] == 0:
                        queued[other] = 1
                        queue[tail] = other
                        tail = tail + 1 if tail + 1 < NP else 0


@njit
def _sweep(q, cutoffs, gt, area_table, runs, hole_table, ws, marks):
    H, W = q.shape
    P = W + 2
    NP = (H + 2) * P
    N = H * W
    K = cutoffs.shape[0]
    order = ws[0]
    xs = ws[1]
    ys = ws[2]
    join = ws[3]
    flag = marks[0]
    qp = ws[5]
    parent = ws[6]
    size = ws[7]
    bx0 = ws[8]
    by0 = ws[9]
    bx1 = ws[10]
    by1 = ws[11]
    area = ws[12]
    first = ws[13]
    pos = ws[14]
    roots = ws[15]
    extra = ws[16]
    other = ws[17]

    # counting sort by decreasing value; above[v] = number of pixels above v
    counts = np.zeros(256, np.int64)
    for y in range(H):
        for x in range(W):
            counts[q[y, x]] += 1
    above = np.zeros(256, np.int64)
    total = 0
    for v in range(255, -1, -1):
        above[v] = total
        total += counts[v]
    fill = above.copy()
    for y in range(H):
        for x in range(W):
            v = q[y, x]
            f = fill[v]
            order[f] = (y + 1) * P + x + 1
            xs[f] = x
            ys[f] = y
            fill[v] = f + 1
    for b in range(P):  # values with a padding ring of -1
        qp[b] = -1
        qp[NP - P + b] = -1
    for y in range(H):
        qp[(y + 1) * P] = -1
        qp[(y + 1) * P + W + 1] = -1
        for x in range(W):
            qp[(y + 1) * P + x + 1] = q[y, x]
    offsets = np.array([-P, -P + 1, 1, P + 1, P, P - 1, -1, -P - 1], np.int64)
    largest = np.zeros(K, np.float64)
    every = np.zeros(K, np.float64)
    fallback = np.zeros(K, np.bool_)

    # ---- holes at every cut-off (rising): background pixels whose join level is above the cut-off. Only those
    # pixels are swept (in rising order); a window's other background pixels are diagonal to them and do not
    # change its count of hole pixels, min(count, 2)
    _join_levels(qp, join, other, marks[1], H, W)
    candidates = other
    ncandidates = 0
    for i in range(N - 1, -1, -1):
        b = order[i]
        if join[b] > qp[b]:
            candidates[ncandidates] = i
            ncandidates += 1
    flag[:] = 0
    records = np.empty((256, 6), np.int64)  # hole contour box x0, y0, x1, y1; twice its area; its start pixel
    record_start = np.zeros(K + 1, np.int64)
    count = 0
    nroots = 0
    next_candidate = 0
    for k in range(K):
        c = min(max(cutoffs[k], -1), 255)
        while next_candidate < ncandidates and qp[order[candidates[next_candidate]]] <= c:
            index = candidates[next_candidate]
            next_candidate += 1
            b = order[index]
            if join[b] <= c:  # reached the border at this cut-off already
                continue
            flag[b] = 1
            root = -1
            for j in range(0, 8, 2):
                if flag[b + offsets[j]] == 0:
                    continue
                r = _find(parent, b + offsets[j])
                if root == -1:
                    root = r
                    parent[b] = r
                    size[r] += 1
                    x = xs[index]
                    y = ys[index]
                    if x < bx0[r]:
                        bx0[r] = x
                    if x > bx1[r]:
                        bx1[r] = x
                    if y < by0[r]:
                        by0[r] = y
                    if y > by1[r]:
                        by1[r] = y
                    if b < first[r]:
                        first[r] = b
                    continue
                if r == root:
                    continue
                root, nroots = _union(root, r, parent, size, bx0, by0, bx1, by1, area, first, roots, pos, nroots)
            if root == -1:
                parent[b] = b
                size[b] = 1
                bx0[b] = xs[index]
                bx1[b] = xs[index]
                by0[b] = ys[index]
                by1[b] = ys[index]
                first[b] = b
                area[b] = 0
                pos[b] = nroots
                roots[nroots] = b
                nroots += 1
                root = b
            area[root] += hole_table[_neighbours(flag, b, P)]
        n = 0
        while n < nroots:  # a hole reaches the border all at once: it is gone
            if join[roots[n]] <= c:
                nroots = _remove(roots, pos, nroots, roots[n])
            else:
                n += 1
        record_start[k] = count
        if count + nroots > records.shape[0]:
            grown = np.empty((2 * (count + nroots), 6), np.int64)
            grown[:count] = records[:count]
            records = grown
        for n in range(nroots):
            r = roots[n]
            records[count, 0] = bx0[r] - 1
            records[count, 1] = by0[r] - 1
            records[count, 2] = min(bx1[r] + 2, W - 1)
            records[count, 3] = min(by1[r] + 2, H - 1)
            records[count, 4] = area[r]
            records[count, 5] = first[r] - 1
            count += 1
    record_start[K] = count

    # ---- components at every cut-off (falling): 8-connected foreground
    flag[:] = 0
    nroots = 0
    added = 0
    for k in range(K - 1, -1, -1):
        c = min(max(cutoffs[k], -1), 255)
        stop = above[c] if c >= 0 else N
        while added < stop:
            b = order[added]
            x = xs[added]
            y = ys[added]
            added += 1
            mask = _neighbours(flag, b, P)
            flag[b] = 1
            nruns = runs[mask, 0]
            if nruns == 0:
                parent[b] = b
                size[b] = 1
                bx0[b] = x
                bx1[b] = x
                by0[b] = y
                by1[b] = y
                area[b] = 0
                first[b] = b
                extra[b] = 0
                pos[b] = nroots
                roots[nroots] = b
                nroots += 1
                continue
            root = _find(parent, b + offsets[runs[mask, 1]])
            parent[b] = root
            size[root] += 1
            if x < bx0[root]:
                bx0[root] = x
            if x > bx1[root]:
                bx1[root] = x
            if y < by0[root]:
                by0[root] = y
            if y > by1[root]:
                by1[root] = y
            area[root] += area_table[mask]
            if b < first[root]:
                first[root] = b
            for s in range(1, nruns):
                r = _find(parent, b + offsets[runs[mask, 1 + s]])
                if r == root:
                    continue
                root, nroots = _union(root, r, parent, size, bx0, by0, bx1, by1, area, first, roots, pos, nroots)
        if nroots == 0:  # no contour: the reference scores the box [0, 0, 0, 0]
            value = _best_iou(0.0, 0.0, 0.0, 0.0, gt)
            largest[k] = value
            every[k] = value
            continue
        best_every = 0.0
        for h in range(record_start[k], record_start[k + 1]):
            extra[_find(parent, records[h, 5])] += records[h, 4]
            value = _best_iou(float(records[h, 0]), float(records[h, 1]), float(records[h, 2]),
                              float(records[h, 3]), gt)
            best_every = max(best_every, value)
        best_area = -1
        best_first = -1
        best_largest = 0.0
        runner_up = -1
        nested = 0
        for n in range(nroots):
            r = roots[n]
            value = _best_iou(float(bx0[r]), float(by0[r]), float(min(bx1[r] + 1, W - 1)),
                              float(min(by1[r] + 1, H - 1)), gt)
            best_every = max(best_every, value)
            outer = area[r] + extra[r]
            if join[first[r] - 1] > c:
                # left of its first pixel lies a hole: a component inside another's hole is never the
                # largest contour, but its area belongs to the area of the contours around it
                nested += outer
                continue
            if outer > best_area or (outer == best_area and first[r] > best_first):
                runner_up = max(runner_up, best_area)
                best_area = outer
                best_first = first[r]
                best_largest = value
            else:
                runner_up = max(runner_up, outer)
        for h in range(record_start[k], record_start[k + 1]):
            extra[_find(parent, records[h, 5])] = 0
        # with nested components the outer areas are only known to within their total
        if nested > 0 and runner_up >= 0 and best_area <= runner_up + nested:
            fallback[k] = True
        largest[k] = best_largest
        every[k] = best_every
    return largest, every, fallback


@njit
def _quantize(heatmap, scale, quantized):
    """``(heatmap * 255)`` truncated to uint8 in the map's own float type into ``quantized``; False when a value
    is not finite or outside [0, 1] (the caller then reports it)."""
    flat = heatmap.ravel()
    out = quantized.ravel()
    good = True
    for i in range(flat.size):
        value = flat[i]
        good &= (value >= 0) & (value <= 1)  # False for NaN too
        out[i] = np.uint8(min(max(value, 0), 1) * scale)
    return good


@njit
def _evaluate_map(heatmap, scale, thresholds, gt, area_table, runs, hole_table, ws, marks):
    """Quantise and check ``heatmap`` and sweep it at ``thresholds`` (sorted): ``(largest, every, fallback, ok)``
    per threshold, ``ok`` False for a bad map (nothing computed)."""
    H, W = heatmap.shape
    T = thresholds.shape[0]
    quantized = np.empty((H, W), np.uint8)
    largest = np.zeros(T, np.float64)
    every = np.zeros(T, np.float64)
    fallback = np.zeros(T, np.bool_)
    if not _quantize(heatmap, scale, quantized):
        return largest, every, fallback, False
    top = float(quantized.max())
    cutoffs = np.empty(T, np.int64)
    inverse = np.empty(T, np.int64)
    count = 0
    for t in range(T):  # int(threshold * max): non-decreasing along sorted thresholds
        value = np.int64(thresholds[t] * top)
        if count == 0 or value != cutoffs[count - 1]:
            cutoffs[count] = value
            count += 1
        inverse[t] = count - 1
    found_largest, found_every, found_fallback = _sweep(quantized, cutoffs[:count], gt, area_table, runs,
                                                        hole_table, ws, marks)
    for t in range(T):
        largest[t] = found_largest[inverse[t]]
        every[t] = found_every[inverse[t]]
        fallback[t] = found_fallback[inverse[t]]
    return largest, every, fallback, True


def evaluate_map(heatmap: np.ndarray, thresholds: np.ndarray, gt: np.ndarray,
                 name: str = "heatmap") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`sweep_level_ious` of a float map at relative ``thresholds``, checks and quantisation included, in
    one compiled call (it releases the GIL: maps can be evaluated on several threads).

    Args:
        heatmap (ndarray[H, W]): map in ``[0, 1]`` (float32 and float64 maps stay in their type; others are
            converted as :func:`wsl.localization.boxes.quantize_map` does).
        thresholds (ndarray[T] float64): relative thresholds, any order.
        gt (ndarray[M, 4] float64): ground-truth boxes.
        name: how the map is called in error messages.

    Returns:
        ``(largest, every, fallback)`` per threshold, as :func:`sweep_level_ious`.
    """
    heatmap = np.asarray(heatmap)
    if heatmap.ndim != 2 or heatmap.size == 0 or heatmap.dtype not in (np.float32, np.float64):
        quantize_map(heatmap, name)  # the error of a bad shape
        heatmap = heatmap.astype(np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    order = np.argsort(thresholds, kind="stable")
    sorted_thresholds = np.ascontiguousarray(thresholds[order])
    largest, every, fallback, ok = _evaluate_map(
        np.ascontiguousarray(heatmap), heatmap.dtype.type(255), sorted_thresholds,
        np.ascontiguousarray(gt, dtype=np.float64).reshape(-1, 4), _AREA, _RUNS, _HOLES,
        *_thread_workspace((heatmap.shape[0] + 2) * (heatmap.shape[1] + 2)))
    if not ok:
        quantize_map(heatmap, name)  # raises the message of the bad value
    result = []
    for values in (largest, every, fallback):
        restored = np.empty_like(values)
        restored[order] = values
        result.append(restored)
    return result[0], result[1], result[2]


_workspace = threading.local()


def _thread_workspace(padded: int) -> tuple[np.ndarray, np.ndarray]:
    """This thread's int32 work rows and uint8 mark rows for maps of ``padded`` pixels with their border."""
    workspace = getattr(_workspace, "array", None)
    if workspace is None or workspace.shape[1] < padded:
        workspace = np.empty((_ROWS, padded), dtype=np.int32)
        _workspace.array = workspace
        _workspace.marks = np.empty((2, padded), dtype=np.uint8)
    return workspace, _workspace.marks


def sweep_level_ious(
    quantized: np.ndarray, cutoffs: np.ndarray, gt: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best IoU with the ground truth of the largest contour's box and of any contour's box, at every cut-off.

    The same numbers as OpenCV's contours of ``quantized > cutoff`` (``RETR_TREE``, ``CHAIN_APPROX_SIMPLE``)
    with the boxes of :func:`wsl.localization.boxes.level_boxes`, without a contour search. Needs numba
    (:func:`wsl.utils.jit.numba_available`).

    Args:
        quantized (ndarray[H, W] uint8): the map from :func:`wsl.localization.boxes.quantize_map`.
        cutoffs (ndarray[K] int64): integer cut-offs; a pixel is inside when above.
        gt (ndarray[M, 4] float64): ground-truth boxes ``(x0, y0, x1, y1)``, ``M >= 1``.

    Returns:
        ``(largest, every, fallback)``: ndarray[K] float64 twice, and ndarray[K] bool marking the cut-offs where
        components inside others' holes leave the largest contour undecided: ``largest`` is not computed there
        (search those cut-offs with OpenCV); ``every`` is exact at every cut-off.
    """
    quantized = np.ascontiguousarray(quantized, dtype=np.uint8)
    height, width = quantized.shape
    workspace, marks = _thread_workspace((height + 2) * (width + 2))
    cutoffs = np.ascontiguousarray(cutoffs, dtype=np.int64).reshape(-1)
    gt = np.ascontiguousarray(gt, dtype=np.float64).reshape(-1, 4)
    return _sweep(quantized, cutoffs, gt, _AREA, _RUNS, _HOLES, workspace, marks)
