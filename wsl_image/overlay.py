"""Overlays in the style of the MAAN paper's Figure 6: heat map on the image, ground-truth boxes in
red, predicted boxes in green; one PNG per image and a labelled grid per model.

Images are ``ndarray[H, W, 3]`` uint8 RGB; maps ``ndarray[H, W]`` in [0, 1]; boxes
``ndarray[N, 4]`` as ``(x0, y0, x1, y1)`` pixels. PNGs are written atomically.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = [
    "overlay_heatmap",
    "draw_boxes",
    "figure6_tile",
    "make_grid",
    "caption_lines",
    "save_png",
    "denormalize_image",
    "render_overlays",
    "display_name",
    "legend_band",
    "enlarge",
]

RED = (255, 0, 0)
GREEN = (0, 255, 0)
MIN_SINGLE_SIZE = 224  # a single image's overlay is enlarged to at least this many pixels on its shorter side


def denormalize_image(
    image, mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225)
) -> np.ndarray:
    """Normalised tensor / array (3, H, W) -> uint8 RGB ndarray[H, W, 3]."""
    array = image.detach().cpu().float().numpy() if hasattr(image, "detach") else np.asarray(image, np.float32)
    if array.ndim != 3 or array.shape[0] != 3:
        raise ValueError(f"image must have shape (3, H, W), got {array.shape}")
    array = array * np.asarray(std, np.float32)[:, None, None] + np.asarray(mean, np.float32)[:, None, None]
    return np.ascontiguousarray((np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0))


def overlay_heatmap(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a jet-coloured ``heatmap`` (H, W) in [0, 1] onto ``image`` (H, W, 3) uint8 RGB."""
    import cv2

    image = _check_image(image)
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.shape != image.shape[:2]:
        raise ValueError(f"heatmap shape {heatmap.shape} does not match image shape {image.shape[:2]}")
    if not np.isfinite(heatmap).all():
        raise ValueError("heatmap contains NaN or infinite values")
    colored = cv2.applyColorMap((np.clip(heatmap, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    colored = cv2.cvtColor(colored, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(image, 1.0 - alpha, colored, alpha, 0.0)


def draw_boxes(image: np.ndarray, boxes, color: tuple[int, int, int], thickness: int = 2,
               inset: int = 0) -> np.ndarray:
    """A copy of ``image`` with ``boxes`` (N, 4) drawn as rectangles of RGB ``color``.

    Every line lies wholly inside the image (a box along the image border is drawn just inside it), and
    ``inset`` more pixels in from the border, so that another box drawn along the same border stays visible.
    """
    import cv2

    canvas = _check_image(image).copy()
    height, width = canvas.shape[:2]
    low = thickness // 2 + inset  # cv2 centres a line of ``thickness`` on the coordinate
    right, bottom = width - 1 - (thickness - 1) // 2 - inset, height - 1 - (thickness - 1) // 2 - inset
    for x0, y0, x1, y1 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        corners = [int(np.clip(round(v), low, max(low, limit))) for v, limit in
                   ((x0, right), (y0, bottom), (x1, right), (y1, bottom))]
        cv2.rectangle(canvas, tuple(corners[:2]), tuple(corners[2:]), color, thickness)
    return canvas


def legend_band(width: int, entries: Sequence[tuple[str, tuple[int, int, int]]] = (("ground truth", RED),
                ("prediction", GREEN)), scale: float = 0.4) -> np.ndarray:
    """A white band (h, ``width``, 3) naming what each box colour means: a swatch and its name per entry,
    wrapped onto more lines when they do not fit in one."""
    import cv2

    step = _line_height(scale)
    swatch = step - 6
    items = [(name, color, swatch + 4 + _text_width(name, scale) + 10) for name, color in entries]
    lines: list[list] = [[]]
    used = 4
    for item in items:
        if lines[-1] and used + item[2] > width:
            lines.append([])
            used = 4
        lines[-1].append(item)
        used += item[2]
    band = np.full((len(lines) * step + 2, width, 3), 255, np.uint8)
    for number, line in enumerate(lines):
        x, top = 4, 1 + number * step
        for name, color, item_width in line:
            cv2.rectangle(band, (x, top + 2), (x + swatch, top + 2 + swatch), color, 2)
            cv2.putText(band, name, (x + swatch + 4, top + step - 4), CAPTION_FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
            x += item_width
    return band


CAPTION_FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX
_TOKEN = re.compile(r"([^\s_-]+[_-]?|[_-])(\s*)")


def _text_width(text: str, scale: float) -> int:
    import cv2

    return cv2.getTextSize(text, CAPTION_FONT, scale, 1)[0][0]


def _line_height(scale: float) -> int:
    import cv2

    (_, height), baseline = cv2.getTextSize("Ag", CAPTION_FONT, scale, 1)
    return height + baseline + 3


def _wrap(text: str, width: int, scale: float) -> list[str]:
    """Greedy wrap at spaces, after ``_`` and ``-``; a piece wider than ``width`` is cut between characters."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line, separator = "", ""
        for match in _TOKEN.finditer(paragraph.strip()):
            token = match.group(1)
            candidate = line + separator + token if line else token
            if _text_width(candidate, scale) <= width:
                line = candidate
            else:
                if line:
                    lines.append(line)
                line = ""
                for char in token:  # a token too wide for a line on its own is cut
                    if line and _text_width(line + char, scale) > width:
                        lines.append(line)
                        line = ""
                    line += char
            separator = " " if match.group(2) else ""
        lines.append(line)
    return lines


def caption_lines(text: str, width: int, *, scale: float = 0.4, min_scale: float = 0.3,
                  max_lines: int = 3) -> tuple[list[str], float]:
    """Lines and font scale that fit ``text`` into ``width`` pixels (``cv2.FONT_HERSHEY_SIMPLEX``, thickness 1).

    Wraps at spaces, after ``_`` and ``-`` and at explicit newlines; shrinks the font (down to ``min_scale``)
    while more than ``max_lines`` lines are needed; at the smallest size extra lines are dropped and the
    last kept one ends with ``..``. Every returned line is at most ``width`` pixels wide.
    """
    if width < 1:
        raise ValueError(f"caption width must be positive, got {width}")
    current = scale
    while True:
        lines = _wrap(str(text), width, current)
        if len(lines) <= max_lines or current <= min_scale + 1e-9:
            break
        current = max(min_scale, round(current - 0.05, 2))
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and _text_width(last + "..", current) > width:
            last = last[:-1]
        lines[-1] = last + ".."
    return lines, current


def _draw_lines(canvas: np.ndarray, lines: Sequence[str], scale: float, x: int, y: int) -> None:
    """Draw ``lines`` top-down from (x, y) (top-left corner of the first line)."""
    import cv2

    step = _line_height(scale)
    for number, line in enumerate(lines):
        baseline_y = y + number * step + step - 4
        cv2.putText(canvas, line, (x, baseline_y), CAPTION_FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)


def make_grid(
    tiles: Sequence[np.ndarray],
    labels: Sequence[str] | None = None,
    columns: int = 4,
    title: str | None = None,
    pad: int = 4,
    max_lines: int = 5,
    row_labels: Sequence[str] | None = None,
    legend: bool = False,
) -> np.ndarray:
    """Tile equally sized RGB images (H, W, 3) into a grid with an optional caption under each.

    Captions (``\\n`` starts a new line) are wrapped and, if needed, shrunk so that each stays within its
    tile's width in at most ``max_lines`` lines (:func:`caption_lines`); the caption band is as tall as the
    longest one. The title is wrapped to the grid's width the same way. ``row_labels`` (one per row) are
    written in a column left of the rows; ``legend`` adds the box colours' :func:`legend_band` under the title.
    """
    if not tiles:
        raise ValueError("make_grid needs at least one tile")
    height, width = tiles[0].shape[:2]
    if any(tile.shape[:2] != (height, width) for tile in tiles):
        raise ValueError("all tiles must have the same size")
    if labels is not None and len(labels) != len(tiles):
        raise ValueError(f"got {len(tiles)} tiles but {len(labels)} labels")
    columns = max(1, min(columns, len(tiles)))
    rows = (len(tiles) + columns - 1) // columns
    if row_labels is not None and len(row_labels) != rows:
        raise ValueError(f"got {rows} rows but {len(row_labels)} row labels")
    label_width = max(64, min(140, width)) if row_labels else 0
    left = label_width + (pad if row_labels else 0)
    grid_width = left + columns * (width + pad) + pad
    layouts = [caption_lines(label, width, max_lines=max_lines) for label in labels] if labels else []
    caption = max((len(lines) * _line_height(scale) for lines, scale in layouts), default=0)
    caption += 2 if caption else 0
    title_lines, title_scale = caption_lines(title, max(1, grid_width - 2 * pad), scale=0.6, min_scale=0.35) \
        if title else ([], 0.6)
    header = len(title_lines) * _line_height(title_scale) + 4 if title else 0
    band = legend_band(grid_width) if legend else None
    top = header + (band.shape[0] if band is not None else 0)
    grid = np.full((top + rows * (height + caption + pad) + pad, grid_width, 3), 255, np.uint8)
    if title:
        _draw_lines(grid, title_lines, title_scale, pad, 4)
    if band is not None:
        grid[header : header + band.shape[0]] = band
    for row, text in enumerate(row_labels or ()):
        lines, scale = caption_lines(text, label_width - pad, scale=0.45, max_lines=max(1, height // 16))
        y = top + pad + row * (height + caption + pad) + max(0, (height - len(lines) * _line_height(scale)) // 2)
        _draw_lines(grid, lines, scale, pad, y)
    for index, tile in enumerate(tiles):
        row, col = divmod(index, columns)
        y = top + pad + row * (height + caption + pad)
        x = left + pad + col * (width + pad)
        grid[y : y + height, x : x + width] = tile
        if layouts:
            lines, scale = layouts[index]
            _draw_lines(grid, lines, scale, x, y + height + 1)
    return grid


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG atomically."""
    import cv2

    from wsl.utils.io import atomic_writer

    ok, encoded = cv2.imencode(".png", cv2.cvtColor(_check_image(image), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"could not encode {path} as PNG")
    with atomic_writer(path, "wb") as handle:
        handle.write(encoded.tobytes())
    return Path(path)


def figure6_tile(image: np.ndarray, heatmap: np.ndarray, gt_boxes, pred_boxes, alpha: float = 0.5) -> np.ndarray:
    """Heat map on the image, ground-truth boxes red, predicted boxes green (paper's Figure 6)."""
    canvas = overlay_heatmap(image, heatmap, alpha)
    if gt_boxes is not None and len(gt_boxes):
        canvas = draw_boxes(canvas, gt_boxes, RED)
    if pred_boxes is not None and len(pred_boxes):
        canvas = draw_boxes(canvas, pred_boxes, GREEN, inset=2)  # a prediction on the truth's border: inside it
    return canvas


def enlarge(image: np.ndarray, heatmap: np.ndarray, boxes: Sequence, min_size: int = MIN_SINGLE_SIZE):
    """``image``, ``heatmap`` and each box array of ``boxes`` scaled by the smallest whole factor that makes the
    image's shorter side at least ``min_size`` (factor 1: unchanged)."""
    import cv2

    factor = max(1, -(-min_size // min(image.shape[:2])))
    if factor == 1:
        return image, heatmap, list(boxes)
    size = (image.shape[1] * factor, image.shape[0] * factor)
    image = cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)
    heatmap = cv2.resize(np.asarray(heatmap, np.float32), size, interpolation=cv2.INTER_LINEAR)
    return image, heatmap, [None if b is None else np.asarray(b, np.float64) * factor for b in boxes]


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


def display_name(class_name: str) -> str:
    """``"001.Black_footed_Albatross"`` -> ``"Black footed Albatross"`` (CUB folder names to words)."""
    match = re.match(r"^\d+\.(.+)$", class_name)
    return (match.group(1) if match else class_name).replace("_", " ")


def render_overlays(
    model,
    dataset,
    indices: Sequence[int],
    out_dir: str | Path,
    *,
    cam_threshold: float = 0.2,
    title: str | None = None,
    device="cpu",
    columns: int = 4,
    class_names: Sequence[str] | None = None,
    label_prefix: str = "",
) -> dict:
    """Figure-6 overlays of ``model`` on ``dataset[indices]`` (evaluation items with ground-truth boxes).

    Writes ``out_dir/<image_id>.png`` for each image, with a caption under it, and ``out_dir/grid.png``.
    The map is the one of the ground-truth class, the green box the largest contour at ``cam_threshold``.
    Captions give the predicted class, its probability, the ground-truth class when the prediction is
    wrong, and the IoU of the green box with the red one(s). ``class_names`` defaults to the model's
    (``model.class_names``) or the dataset's; ``label_prefix`` starts every caption (e.g. the model's name).

    Returns ``{"images": [paths], "grid": path, "tiles": [RGB arrays without caption], "labels": [captions],
    "records": [{"image_id", "class", "class_name", "score", "gt_class", "gt_class_name", "iou"}]}``.
    """
    import torch

    from wsl.localization import boxes_from_map
    from wsl.metrics import box_iou

    if class_names is None:
        class_names = getattr(model, "class_names", None) or getattr(getattr(dataset, "meta", None), "class_names",
                                                                        None)
    out_dir = Path(out_dir)
    tiles, labels, paths, records = [], [], [], []
    model.eval()
    for index in indices:
        item = dataset[index]
        image = item["image"].unsqueeze(0).to(device)
        with torch.no_grad():
            logits, maps = model.localize(image, classes=torch.tensor([item["label"]], device=device))
        probabilities = logits.float().softmax(dim=1)[0].cpu()
        heatmap = maps[0, 0].float().cpu().numpy()
        predicted = boxes_from_map(heatmap, cam_threshold)
        gt_boxes = item["boxes"].numpy()
        iou = float(box_iou(predicted, gt_boxes).max()) if len(predicted) and len(gt_boxes) else 0.0
        image_rgb = denormalize_image(item["image"])
        tile = figure6_tile(image_rgb, heatmap, gt_boxes, predicted)
        big_image, big_heatmap, (big_gt, big_predicted) = enlarge(image_rgb, heatmap, [gt_boxes, predicted])
        single = figure6_tile(big_image, big_heatmap, big_gt, big_predicted)
        name = str(item["image_id"]).replace("/", "_")
        record = {
            "image_id": str(item["image_id"]),
            "class": int(probabilities.argmax()),
            "score": float(probabilities.max()),
            "gt_class": int(item["label"]),
            "iou": iou,
        }
        record["class_name"] = class_names[record["class"]] if class_names else None
        record["gt_class_name"] = class_names[record["gt_class"]] if class_names else None
        label = label_prefix + _caption(record)
        paths.append(save_png(out_dir / f"{Path(name).stem}.png",
                              make_grid([single], [label], columns=1, pad=2, legend=True)))
        tiles.append(tile)
        labels.append(label)
        records.append(record)
    grid = save_png(out_dir / "grid.png", make_grid(tiles, labels, columns=columns, title=title, legend=True))
    return {"images": paths, "grid": grid, "tiles": tiles, "labels": labels, "records": records}


def _caption(record: dict) -> str:
    def name(key: str, index_key: str) -> str:
        return display_name(record[key]) if record[key] else f"class {record[index_key]}"

    text = f"{name('class_name', 'class')} p={record['score']:.2f}"
    if record["class"] != record["gt_class"]:
        text += f" (GT {name('gt_class_name', 'gt_class')})"
    return f"{text}\nIoU {record['iou']:.2f}"
