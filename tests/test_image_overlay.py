"""Overlay pictures: captions that stay inside their tile, per-image class, score and IoU."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from wsl_image.overlay import CAPTION_FONT, caption_lines, make_grid, render_overlays

torch.set_num_threads(1)

LONG = [
    "Black_footed_Albatross_0001_796111 (wrong class)",
    "a_single_word_much_longer_than_any_tile_is_wide_at_all",
    "weighted-CAM: Blue triangle striped 0.93 IoU 0.71",
    "ok",
]


@pytest.mark.parametrize("width", [32, 64, 112])
def test_caption_lines_fit(width):
    for text in LONG:
        lines, scale = caption_lines(text, width)
        assert lines and 0 < scale <= 0.4
        for line in lines:
            (line_width, _), _ = cv2.getTextSize(line, CAPTION_FONT, scale, 1)
            assert line_width <= width, (text, line, line_width, width)
    lines, _ = caption_lines("short text", 112)
    assert lines == ["short text"]  # fits: left alone
    lines, _ = caption_lines("first\nsecond", 112)
    assert lines == ["first", "second"]  # explicit line breaks are kept


@pytest.mark.parametrize("width", [32, 112])
def test_grid_captions_do_not_overlap(width):
    """Every caption's ink stays inside its own tile's column: the gaps between columns stay white."""
    pad, columns = 4, 4
    tiles = [np.full((width, width, 3), 90, np.uint8) for _ in LONG]
    grid = make_grid(tiles, LONG, columns=columns, pad=pad)
    band = grid[pad + width:]  # below the tiles: the captions (one row of tiles)
    assert band.shape[0] > 0
    for column in range(columns):
        x = pad + column * (width + pad)
        assert (band[:, x - pad : x] == 255).all(), f"ink left of column {column}"
        assert (band[:, x : x + width] < 255).any(), f"caption of column {column} missing"
    assert (band[:, -pad:] == 255).all()


def test_grid_caption_band_grows_with_lines():
    tiles = [np.zeros((32, 32, 3), np.uint8)] * 2
    one = make_grid(tiles, ["a", "b"], columns=2)
    three = make_grid(tiles, ["a\nb\nc", "d"], columns=2)
    assert three.shape[0] > one.shape[0] and three.shape[1] == one.shape[1]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from wsl_image.sim import make_cub_sim

    out = tmp_path_factory.mktemp("overlay-sim")
    make_cub_sim(out, seed=3, num_classes=2, train_per_class=1, test_per_class=2, val_per_class=0, image_size=48,
                 clutter=1, wsol_metadata=False)
    return out


def test_render_overlays_carry_class_score_iou(sim, tmp_path):
    from wsl.localization import boxes_from_map
    from wsl.metrics import box_iou
    from wsl_image.data import CubDataset, load_cub
    from wsl_image.model import CamModel

    meta = load_cub(sim / "CUB_200_2011")
    dataset = CubDataset(meta.split("test"), train=False, image_size=32)
    torch.manual_seed(0)
    model = CamModel("test_resnet", 2, aggregator="maa", grid=None, image_size=32).eval()
    model.class_names = list(meta.class_names)
    rendered = render_overlays(model, dataset, [0, 3], tmp_path / "overlays", cam_threshold=0.2)
    assert len(rendered["records"]) == 2 and (tmp_path / "overlays" / "grid.png").is_file()
    for index, record, path, tile, label in zip([0, 3], rendered["records"], rendered["images"], rendered["tiles"],
                                                rendered["labels"]):
        item = dataset[index]
        with torch.no_grad():
            logits, maps = model.localize(item["image"][None], classes=torch.tensor([item["label"]]))
        probabilities = logits.softmax(1)[0]
        assert record["class"] == int(probabilities.argmax())
        assert record["class_name"] == meta.class_names[record["class"]]
        assert record["score"] == pytest.approx(float(probabilities.max()), abs=1e-6)
        assert record["gt_class_name"] == meta.class_names[item["label"]]
        predicted = boxes_from_map(maps[0, 0].numpy(), 0.2)
        assert record["iou"] == pytest.approx(float(box_iou(predicted, item["boxes"].numpy()).max()))
        # the caption names the class and gives the score and the IoU; the PNG shows it under the tile
        name = record["class_name"].split(".", 1)[1].replace("_", " ")
        assert name in label and f"{record['score']:.2f}" in label and f"IoU {record['iou']:.2f}" in label
        picture = cv2.imread(str(path))
        assert picture.shape[0] > tile.shape[0] and picture.shape[1] >= tile.shape[1]
        assert (picture[tile.shape[0] + 2 :] < 255).any()  # text in the caption band
