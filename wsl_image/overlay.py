"""Overlays in the style of the MAAN paper's Figure 6: heat map on the image, ground-truth boxes in
red, predicted boxes in green; one PNG per image and a labelled grid per model.

Images are ``ndarray[H, W, 3]`` uint8 RGB; maps ``ndarray[H, W]`` in [0, 1]; boxes
``ndarray[N, 4]`` as ``(x0, y0, x1, y1)`` pixels. PNGs are written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = [
    "overlay_heatmap",
    "draw_boxes",
    "figure6_tile",
    "make_grid",
    "save_png",
    "denormalize_image",
    "render_overlays",
]

RED = (255, 0, 0)
GREEN = (0, 255, 0)


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


def draw_boxes(image: np.ndarray, boxes, color: tuple[int, int, int], thickness: int = 2) -> np.ndarray:
    """A copy of ``image`` with ``boxes`` (N, 4) drawn as rectangles of RGB ``color``."""
    import cv2

    canvas = _check_image(image).copy()
    for x0, y0, x1, y1 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        cv2.rectangle(canvas, (int(round(x0)), int(round(y0))), (int(round(x1)), int(round(y1))), color, thickness)
    return canvas


def make_grid(
    tiles: Sequence[np.ndarray],
    labels: Sequence[str] | None = None,
    columns: int = 4,
    title: str | None = None,
    pad: int = 4,
) -> np.ndarray:
    """Tile equally sized RGB images (H, W, 3) into a grid with an optional caption under each."""
    import cv2

    if not tiles:
        raise ValueError("make_grid needs at least one tile")
    height, width = tiles[0].shape[:2]
    if any(tile.shape[:2] != (height, width) for tile in tiles):
        raise ValueError("all tiles must have the same size")
    caption = 18 if labels else 0
    header = 26 if title else 0
    columns = max(1, min(columns, len(tiles)))
    rows = (len(tiles) + columns - 1) // columns
    grid = np.full((header + rows * (height + caption + pad) + pad, columns * (width + pad) + pad, 3), 255, np.uint8)
    if title:
        cv2.putText(grid, title, (pad, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    for index, tile in enumerate(tiles):
        row, col = divmod(index, columns)
        y = header + pad + row * (height + caption + pad)
        x = pad + col * (width + pad)
        grid[y : y + height, x : x + width] = tile
        if labels:
            cv2.putText(
                grid,
                str(labels[index])[:40],
                (x, y + height + 13),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.4,
                (0, 0, 0),
                1,
                cv2.LINE_AA,
            )
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
        canvas = draw_boxes(canvas, pred_boxes, GREEN)
    return canvas


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


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
) -> dict:
    """Figure-6 overlays of ``model`` on ``dataset[indices]`` (evaluation items with ground-truth boxes).

    Writes ``out_dir/<image_id>.png`` for each image and ``out_dir/grid.png``; the map is the one of the
    ground-truth class, the green box the largest contour at ``cam_threshold``.
    Returns ``{"images": [paths], "grid": path, "tiles": [RGB arrays]}``.
    """
    import torch

    from wsl.localization import boxes_from_map

    out_dir = Path(out_dir)
    tiles, labels, paths = [], [], []
    model.eval()
    for index in indices:
        item = dataset[index]
        image = item["image"].unsqueeze(0).to(device)
        with torch.no_grad():
            logits, maps = model.localize(image, classes=torch.tensor([item["label"]], device=device))
        heatmap = maps[0, 0].float().cpu().numpy()
        predicted = boxes_from_map(heatmap, cam_threshold)
        tile = figure6_tile(denormalize_image(item["image"]), heatmap, item["boxes"].numpy(), predicted)
        name = str(item["image_id"]).replace("/", "_")
        paths.append(save_png(out_dir / f"{Path(name).stem}.png", tile))
        correct = "ok" if int(logits.argmax(1)) == int(item["label"]) else "wrong class"
        tiles.append(tile)
        labels.append(f"{Path(name).stem[:24]} ({correct})")
    grid = save_png(out_dir / "grid.png", make_grid(tiles, labels, columns=columns, title=title))
    return {"images": paths, "grid": grid, "tiles": tiles}
