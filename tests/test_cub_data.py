from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from wsl_image.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CubDataset,
    CubMetadata,
    build_transforms,
    collate_boxes,
    denormalize,
    load_cub,
    load_wsol_metadata,
    resize_boxes,
    write_wsol_metadata,
)

# (id, class id, relative path, (width, height), (x, y, w, h), is_train)
IMAGES = [
    (1, 1, "001.Red_bird/Red_Bird_0001_1.jpg", (40, 30), (4.0, 5.0, 20.0, 10.5), 1),
    (2, 1, "001.Red_bird/Red_Bird_0002_2.jpg", (36, 48), (0.0, 0.0, 36.0, 48.0), 0),
    (3, 2, "002.Blue_bird/Blue_Bird_0001_3.jpg", (50, 40), (10.0, 12.0, 8.0, 6.0), 1),
    (4, 2, "002.Blue_bird/Blue_Bird_0002_4.jpg", (32, 32), (1.5, 2.5, 3.0, 4.0), 0),
]
COLOURS = {1: (200, 40, 40), 2: (40, 40, 200)}


def _write_official(root: Path, images=IMAGES) -> Path:
    root = root / "CUB_200_2011"
    for _, class_id, relative, (w, h), _, _ in images:
        path = root / "images" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        rgb = np.zeros((h, w, 3), np.uint8) + np.array(COLOURS[class_id], np.uint8)
        cv2.imwrite(str(path), rgb[:, :, ::-1])
    (root / "classes.txt").write_text("1 001.Red_bird\n2 002.Blue_bird\n")
    (root / "images.txt").write_text("".join(f"{i} {p}\n" for i, _, p, _, _, _ in images))
    (root / "image_class_labels.txt").write_text("".join(f"{i} {c}\n" for i, c, _, _, _, _ in images))
    (root / "train_test_split.txt").write_text("".join(f"{i} {t}\n" for i, _, _, _, _, t in images))
    (root / "bounding_boxes.txt").write_text(
        "".join(f"{i} {x} {y} {w} {h}\n" for i, _, _, _, (x, y, w, h), _ in images)
    )
    return root


def _write_wsol(tmp_path: Path):
    """Generated wsolevaluation files: ids relative to an image root, 0-based labels, several boxes."""
    image_root = tmp_path / "CUB"
    splits = {
        "train": [("001.Red_bird/a.jpg", 0, (40, 30), [(1, 2, 20, 25)])],
        "val": [("001.Red_bird/v.jpg", 0, (30, 30), [(0, 0, 29, 29)]),
                ("002.Blue_bird/w.jpg", 1, (20, 40), [(1, 1, 5, 5), (10, 20, 19, 39)])],
        "test": [("002.Blue_bird/b.jpg", 1, (50, 20), [(3, 4, 40, 19)])],
    }
    for split, rows in splits.items():
        folder = tmp_path / "metadata" / split
        folder.mkdir(parents=True)
        (folder / "image_ids.txt").write_text("".join(f"{r[0]}\n" for r in rows))
        (folder / "class_labels.txt").write_text("".join(f"{r[0]},{r[1]}\n" for r in rows))
        (folder / "image_sizes.txt").write_text("".join(f"{r[0]},{r[2][0]},{r[2][1]}\n" for r in rows))
        (folder / "localization.txt").write_text(
            "".join(f"{r[0]},{x0},{y0},{x1},{y1}\n" for r in rows for x0, y0, x1, y1 in r[3])
        )
        for relative, _, (w, h), _ in rows:
            path = image_root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), np.full((h, w, 3), 128, np.uint8))
    return tmp_path / "metadata", image_root, splits


def test_load_cub_official_layout(tmp_path):
    root = _write_official(tmp_path)
    meta = load_cub(tmp_path)  # the parent of CUB_200_2011 works too
    assert len(meta) == 4 and meta.num_classes == 2
    assert meta.image_ids == ["1", "2", "3", "4"]
    assert meta.class_names == ["001.Red_bird", "002.Blue_bird"]
    np.testing.assert_array_equal(meta.labels, [0, 0, 1, 1])
    np.testing.assert_array_equal(meta.is_train, [True, False, True, False])
    np.testing.assert_array_equal(meta.sizes, [[40, 30], [36, 48], [50, 40], [32, 32]])
    # (x, y, w, h) -> (x, y, x + w, y + h)
    np.testing.assert_allclose(meta.boxes[0], [[4.0, 5.0, 24.0, 15.5]])
    np.testing.assert_allclose(meta.boxes[3], [[1.5, 2.5, 4.5, 6.5]])
    assert meta.paths[2] == root / "images" / "002.Blue_bird/Blue_Bird_0001_3.jpg"
    assert all(p.is_absolute() for p in load_cub(root).paths)


def test_splits(tmp_path):
    meta = load_cub(_write_official(tmp_path))
    assert meta.split("train").image_ids == ["1", "3"]
    assert meta.split("test").image_ids == ["2", "4"]
    with pytest.raises(ValueError, match="no validation split"):
        meta.split("val")
    with pytest.raises(ValueError, match="unknown split"):
        meta.split("dev")
    more = _write_official(tmp_path / "more", IMAGES + [
        (5, 1, "001.Red_bird/Red_Bird_0003_5.jpg", (20, 20), (1.0, 1.0, 5.0, 5.0), 1),
        (6, 2, "002.Blue_bird/Blue_Bird_0003_6.jpg", (20, 20), (1.0, 1.0, 5.0, 5.0), 1),
    ])
    held = load_cub(more).holdout_val(per_class=1, seed=0)
    val = held.split("val")
    assert sorted(val.labels.tolist()) == [0, 1]
    assert len(held.split("train")) == 2 and len(held.split("test")) == 2
    assert load_cub(more).holdout_val(per_class=1, seed=0).split("val").image_ids == val.image_ids
    with pytest.raises(ValueError, match="cannot hold out 1"):
        held.holdout_val(per_class=1)


def test_load_wsol_metadata(tmp_path):
    metadata_dir, image_root, splits = _write_wsol(tmp_path)
    meta = load_wsol_metadata(metadata_dir, image_root)
    assert meta.available_splits() == ["train", "val", "test"]
    assert meta.image_ids == [
        "001.Red_bird/a.jpg", "001.Red_bird/v.jpg", "002.Blue_bird/w.jpg", "002.Blue_bird/b.jpg",
    ]
    assert meta.class_names == ["001.Red_bird", "002.Blue_bird"]
    np.testing.assert_array_equal(meta.labels, [0, 0, 1, 1])
    np.testing.assert_array_equal(meta.is_train, [True, False, False, False])
    np.testing.assert_array_equal(meta.boxes[2], [[1, 1, 5, 5], [10, 20, 19, 39]])
    np.testing.assert_array_equal(meta.sizes, [[40, 30], [30, 30], [20, 40], [50, 20]])
    val = meta.split("val")
    assert val.image_ids == ["001.Red_bird/v.jpg", "002.Blue_bird/w.jpg"]
    assert val.paths[1] == image_root / "002.Blue_bird" / "w.jpg"
    single = load_wsol_metadata(metadata_dir / "test", image_root)
    assert single.image_ids == ["002.Blue_bird/b.jpg"] and single.available_splits() == ["test"]


def test_official_to_wsol_round_trip(tmp_path):
    root = _write_official(tmp_path)
    meta = load_cub(root)
    meta.image_ids = [str(p.relative_to(root / "images").as_posix()) for p in meta.paths]
    write_wsol_metadata(meta, tmp_path / "metadata")
    again = load_wsol_metadata(tmp_path / "metadata", root / "images")
    assert again.image_ids == [meta.image_ids[i] for i in (0, 2, 1, 3)]  # train first, then test
    order = [0, 2, 1, 3]
    np.testing.assert_array_equal(again.labels, meta.labels[order])
    for i, j in enumerate(order):
        np.testing.assert_array_equal(again.boxes[i], np.rint(meta.boxes[j]))
    np.testing.assert_array_equal(again.sizes, meta.sizes[order])


def test_dataset_eval(tmp_path):
    meta = load_cub(_write_official(tmp_path))
    dataset = CubDataset(meta, train=False, image_size=20)
    item = dataset[0]
    assert item["image"].shape == (3, 20, 20)
    assert item["label"] == 0 and item["image_id"] == "1" and item["size"] == (40, 30)
    # box (4, 5, 24, 15.5) in a 40x30 image -> x * 20/40, y * 20/30, truncated
    np.testing.assert_array_equal(item["boxes"].numpy(), [[2, 3, 12, 10]])
    # a flat colour image normalises to (c / 255 - mean) / std (JPEG may move a level or two)
    expected = (np.array(COLOURS[1]) / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(item["image"].mean(dim=(1, 2)).numpy(), expected, atol=0.06)
    batch = collate_boxes([dataset[i] for i in range(4)])
    assert batch["image"].shape == (4, 3, 20, 20)
    assert batch["label"].tolist() == [0, 0, 1, 1]
    assert [b.shape[0] for b in batch["boxes"]] == [1, 1, 1, 1]
    assert batch["size"].tolist() == [[40, 30], [36, 48], [50, 40], [32, 32]]
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, collate_fn=collate_boxes)
    assert [len(b["image_id"]) for b in loader] == [3, 1]


def test_dataset_train(tmp_path):
    meta = load_cub(_write_official(tmp_path))
    torch.manual_seed(0)
    for crop in ("random_resized", "resize_random", "none"):
        item = CubDataset(meta, train=True, image_size=16, crop=crop)[2]
        assert item["image"].shape == (3, 16, 16)
        assert item["boxes"].shape == (0, 4)
        assert torch.isfinite(item["image"]).all()


def test_resize_boxes():
    boxes = np.array([[10.0, 20.0, 100.0, 50.0], [0.0, 0.0, 199.9, 99.9]])
    out = resize_boxes(boxes, (200, 100), (224, 224))
    np.testing.assert_array_equal(out, [[11, 44, 112, 112], [0, 0, 223, 223]])
    np.testing.assert_array_equal(resize_boxes(boxes, (200, 100), (200, 100)), np.trunc(boxes))


def test_exception_malformed_line(tmp_path):
    root = _write_official(tmp_path)
    (root / "bounding_boxes.txt").write_text("1 4.0 5.0 20.0\n2 0 0 1 1\n3 0 0 1 1\n4 0 0 1 1\n")
    with pytest.raises(ValueError, match=r"bounding_boxes.txt:1: malformed line"):
        load_cub(root)
    (root / "bounding_boxes.txt").write_text("1 4 5 2 2\n2 0 0 1 1\n3 0 0 1 1\nfour 0 0 1 1\n")
    with pytest.raises(ValueError, match=r"bounding_boxes.txt:4: malformed line"):
        load_cub(root)
    (root / "train_test_split.txt").write_text("1 1\n2 0\n3 2\n4 0\n")
    with pytest.raises(ValueError, match=r"train_test_split.txt:3"):
        load_cub(root)


def test_exception_missing_id(tmp_path):
    root = _write_official(tmp_path)
    (root / "image_class_labels.txt").write_text("1 1\n2 1\n4 2\n")
    with pytest.raises(ValueError, match="image id 3 is in images.txt but missing from image_class_labels"):
        load_cub(root)
    root = _write_official(tmp_path / "b")
    with open(root / "bounding_boxes.txt", "a") as handle:
        handle.write("9 1 1 2 2\n")
    with pytest.raises(ValueError, match="image id 9 is in bounding_boxes.txt but not in images.txt"):
        load_cub(root)
    root = _write_official(tmp_path / "c")
    (root / "image_class_labels.txt").write_text("1 1\n2 1\n3 2\n4 3\n")
    with pytest.raises(ValueError, match="image id 4 has class id 3"):
        load_cub(root)
    (root / "train_test_split.txt").unlink()
    with pytest.raises(FileNotFoundError, match="train_test_split.txt"):
        load_cub(root)
    with pytest.raises(FileNotFoundError):
        load_cub(tmp_path / "nowhere")


def test_exception_box_outside_image(tmp_path):
    images = list(IMAGES)
    images[2] = (3, 2, "002.Blue_bird/Blue_Bird_0001_3.jpg", (50, 40), (40.0, 12.0, 20.0, 6.0), 1)
    root = _write_official(tmp_path, images)
    with pytest.raises(ValueError, match=r"image id 3 .*outside the 50x40 image"):
        load_cub(root)
    meta = load_cub(root, verify_images=False)
    with pytest.raises(ValueError, match=r"image 3 .*outside the 50x40 image"):
        CubDataset(meta, train=False, image_size=16)[2]


def test_exception_undecodable_image(tmp_path):
    root = _write_official(tmp_path)
    (root / "images" / "002.Blue_bird/Blue_Bird_0002_4.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(ValueError, match=r"image 4: cannot decode .*Blue_Bird_0002_4.jpg"):
        load_cub(root)
    meta = load_cub(root, verify_images=False)
    with pytest.raises(ValueError, match=r"image 4: cannot decode"):
        CubDataset(meta, train=False, image_size=16)[3]
    (root / "images" / "002.Blue_bird/Blue_Bird_0002_4.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"image 4: file not found"):
        load_cub(root)


def test_exception_wsol_metadata(tmp_path):
    metadata_dir, image_root, _ = _write_wsol(tmp_path)
    val = metadata_dir / "val"
    (val / "class_labels.txt").write_text("001.Red_bird/v.jpg,0\n")
    with pytest.raises(ValueError, match="'002.Blue_bird/w.jpg' is in .*image_ids.txt but missing from"):
        load_wsol_metadata(metadata_dir, image_root)
    (val / "class_labels.txt").write_text("001.Red_bird/v.jpg,0\n002.Blue_bird/w.jpg,one\n")
    with pytest.raises(ValueError, match="malformed values 'one'"):
        load_wsol_metadata(metadata_dir, image_root)
    (val / "class_labels.txt").write_text("001.Red_bird/v.jpg,0\n002.Blue_bird/w.jpg\n")
    with pytest.raises(ValueError, match=r"class_labels.txt:2: malformed line"):
        load_wsol_metadata(metadata_dir, image_root)
    (val / "class_labels.txt").write_text("001.Red_bird/v.jpg,0\n002.Blue_bird/w.jpg,1\n")
    (val / "localization.txt").write_text("001.Red_bird/v.jpg,0,0,29,29\n002.Blue_bird/w.jpg,1,1,25,5\n")
    with pytest.raises(ValueError, match=r"'002.Blue_bird/w.jpg': box .*outside the 20x40 image"):
        load_wsol_metadata(metadata_dir, image_root)
    (val / "localization.txt").write_text("001.Red_bird/v.jpg,0,0,29,29\n002.Blue_bird/x.jpg,1,1,5,5\n")
    with pytest.raises(ValueError, match="'002.Blue_bird/x.jpg' is not listed in image_ids.txt"):
        load_wsol_metadata(metadata_dir, image_root)
    (val / "localization.txt").write_text("001.Red_bird/v.jpg,0,0,29,29\n002.Blue_bird/w.jpg,1,1,5,5\n")
    (val / "image_sizes.txt").write_text("001.Red_bird/v.jpg,30,30\n002.Blue_bird/w.jpg,21,40\n")
    with pytest.raises(ValueError, match="listed as 21x40 but the file is 20x40"):
        load_wsol_metadata(metadata_dir, image_root)
    (val / "image_sizes.txt").write_text("001.Red_bird/v.jpg,30,30\n002.Blue_bird/w.jpg,20,40\n")
    (metadata_dir / "test" / "image_ids.txt").write_text("001.Red_bird/v.jpg\n")
    (metadata_dir / "test" / "class_labels.txt").write_text("001.Red_bird/v.jpg,0\n")
    (metadata_dir / "test" / "image_sizes.txt").write_text("001.Red_bird/v.jpg,30,30\n")
    (metadata_dir / "test" / "localization.txt").write_text("001.Red_bird/v.jpg,0,0,29,29\n")
    with pytest.raises(ValueError, match="listed in both the val and the test split"):
        load_wsol_metadata(metadata_dir, image_root)
    with pytest.raises(FileNotFoundError, match="neither image_ids.txt"):
        load_wsol_metadata(tmp_path, image_root)


def test_exception_transforms():
    with pytest.raises(ValueError, match="unknown crop"):
        build_transforms(True, 64, crop="center")
    with pytest.raises(ValueError, match="sizes must be positive"):
        resize_boxes(np.zeros((1, 4)), (0, 10), (10, 10))


def test_denormalize_round_trip(tmp_path):
    meta = load_cub(_write_official(tmp_path))
    image = denormalize(CubDataset(meta, train=False, image_size=8)[2]["image"])
    np.testing.assert_allclose(image.mean(dim=(1, 2)).numpy(), np.array(COLOURS[2]) / 255.0, atol=0.03)


def test_exception_metadata():
    with pytest.raises(ValueError, match="2 image ids but 1 labels"):
        CubMetadata(["a", "b"], ["/a", "/b"], [0], [np.zeros((1, 4))] * 2, None, ["x"])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\)"):
        CubMetadata(["a"], ["/a"], [1], [np.zeros((1, 4))], None, ["x"])
    meta = CubMetadata(["a"], ["/a"], [0], [np.zeros((1, 4))], None, ["x"])
    with pytest.raises(ValueError, match="no split information"):
        meta.split("train")
    with pytest.raises(ValueError, match="no image"):
        CubDataset(meta.subset([]), train=False)
