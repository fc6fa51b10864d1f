import json

import cv2
import numpy as np
import pytest

from wsl.metrics import box_iou
from wsl.utils.cli import run_cli
from wsl_image.data import load_cub, load_wsol_metadata
from wsl_image.sim import class_spec, make_cub_sim, render_sample, sample_rng

TINY = dict(num_classes=3, train_per_class=2, test_per_class=1, val_per_class=1, image_size=64)


def _files(folder):
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in files}


def test_smoke(tmp_path):
    root = make_cub_sim(tmp_path, seed=0, **TINY)
    assert root == tmp_path / "CUB_200_2011"
    for name in ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt",
                 "classes.txt"):
        assert (root / name).is_file()
    meta = load_cub(root)
    assert len(meta) == 3 * (2 + 1)
    assert meta.class_names == [class_spec(k)["name"] for k in range(3)]
    assert meta.is_train.sum() == 6
    assert all(p.suffix == ".jpg" and p.parent.parent == root / "images" for p in meta.paths)
    assert (meta.sizes >= 48).all() and (meta.sizes <= 64).all()
    assert json.loads((root / "sim_config.json").read_text())["seed"] == 0
    wsol = load_wsol_metadata(tmp_path / "metadata" / "CUB", root / "images")
    assert [len(wsol.split(s)) for s in ("train", "val", "test")] == [6, 3, 3]
    assert wsol.class_names == meta.class_names
    # both layouts describe the same train/test images and boxes
    by_path = {p: b for p, b in zip(wsol.paths, wsol.boxes)}
    for path, boxes in zip(meta.paths, meta.boxes):
        np.testing.assert_array_equal(by_path[path], boxes)


def test_deterministic_by_seed(tmp_path):
    make_cub_sim(tmp_path / "a", seed=3, **TINY)
    make_cub_sim(tmp_path / "b", seed=3, **TINY)
    make_cub_sim(tmp_path / "c", seed=4, **TINY)
    first, second, other = (_files(tmp_path / name) for name in "abc")
    assert first == second
    images = [k for k in first if k.endswith(".jpg")]
    assert len(images) == 12
    assert any(first[k] != other.get(k) for k in images)


def test_boxes_match_drawn_objects(tmp_path):
    root = make_cub_sim(tmp_path, seed=1, **TINY)
    meta = load_cub(root)
    ids_in_class = {}
    for image_id, path, label, boxes in meta:
        split = "train" if meta.is_train[int(image_id) - 1] else "test"
        index = ids_in_class.setdefault((split, label), 0)
        ids_in_class[(split, label)] += 1
        rng = sample_rng(1, split, label, index)
        width, height = int(rng.integers(48, 65)), int(rng.integers(48, 65))
        sample = render_sample(rng, label, width, height)
        ys, xs = np.nonzero(sample.object_mask)
        np.testing.assert_array_equal(boxes, [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]])
        decoded = cv2.imread(str(path))[:, :, ::-1]
        assert decoded.shape == sample.image.shape
        blur = lambda image: cv2.GaussianBlur(image.astype(np.float32), (5, 5), 1.5)  # noqa: E731
        assert np.abs(blur(decoded) - blur(sample.image)).mean() < 4.0  # only JPEG loss
        # the distinctive part is inside the bird and much smaller than it
        assert (sample.part_mask <= sample.object_mask).all()
        x, y, w, h = sample.part_box_xywh
        assert box_iou([x, y, x + w - 1, y + h - 1], boxes[0] - [0, 0, 1, 1])[0, 0] < 0.4


def test_render_sample_inside_image():
    for class_index in range(6):
        rng = np.random.default_rng(class_index)
        sample = render_sample(rng, class_index, 70, 50)
        assert sample.image.shape == (50, 70, 3) and sample.image.dtype == np.uint8
        assert sample.object_mask.any() and sample.part_mask.any()
        x, y, w, h = sample.box_xywh
        assert x >= 0 and y >= 0 and x + w <= 70 and y + h <= 50


def test_classes_differ_in_shape_colour_texture():
    specs = [class_spec(k) for k in range(6)]
    for key in ("shape", "colour", "texture", "name"):
        assert len({s[key] for s in specs}) == 6
    assert len({(s["shape"], s["colour"]) for s in map(class_spec, range(36))}) == 36


def test_command(tmp_path, capsys):
    commands = {"make-sim": "wsl_image.commands.make_sim"}
    argv = ["make-sim", "--out", str(tmp_path), "--num-classes", "2", "--train-per-class", "1",
            "--test-per-class", "1", "--val-per-class", "0", "--image-size", "48", "--quiet"]
    assert run_cli("wsl-image", "test", commands, argv) == 0
    assert "wrote" in capsys.readouterr().out
    assert len(load_cub(tmp_path)) == 4
    assert not (tmp_path / "metadata" / "CUB" / "val").exists()
    bad = ["make-sim", "--out", str(tmp_path / "x"), "--num-classes", "1"]
    assert run_cli("wsl-image", "test", commands, bad) == 2
    assert "num_classes must lie in [2, 36]" in capsys.readouterr().err


def test_exception(tmp_path):
    with pytest.raises(ValueError, match="num_classes"):
        make_cub_sim(tmp_path, num_classes=40)
    with pytest.raises(ValueError, match="train_per_class"):
        make_cub_sim(tmp_path, train_per_class=0)
    with pytest.raises(ValueError, match="image_size"):
        make_cub_sim(tmp_path, image_size=16)
    with pytest.raises(ValueError, match="body_cue"):
        make_cub_sim(tmp_path, body_cue=1.5)
    with pytest.raises(ValueError, match="at least 32x32"):
        render_sample(np.random.default_rng(0), 0, 20, 20)
    with pytest.raises(ValueError, match="class_index"):
        class_spec(36)
