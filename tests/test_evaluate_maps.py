"""wsl-image evaluate-maps: saved score maps scored against box and mask metadata in the benchmark's layout."""

import hashlib
import json

import cv2
import numpy as np
import pytest

from wsl.metrics import BoxAccuracy
from wsl_image.cli import main
from wsl_image.evaluate_maps import evaluate_score_maps


def _nearest(image, size=224):
    """Nearest-neighbour resize by source index floor(i * src / dst), as OpenCV's INTER_NEAREST samples."""
    rows = np.minimum((np.arange(size) * image.shape[0] / size).astype(int), image.shape[0] - 1)
    cols = np.minimum((np.arange(size) * image.shape[1] / size).astype(int), image.shape[1] - 1)
    return image[rows][:, cols]


def _write_openimages(root, count=4, seed=0, ignore_twice=False, bad_size=False, missing=False):
    rng = np.random.default_rng(seed)
    meta = root / "metadata" / "OpenImages" / "test"
    meta.mkdir(parents=True)
    masks_dir = root / "dataset" / "OpenImages"
    ids, rows, expected = [], [], {}
    for index in range(count):
        image_id = f"test/c{index % 2}/img{index}.jpg"
        ids.append(image_id)
        height, width = 150 + 10 * index, 300 - 20 * index
        instances = []
        for k in range(1 + index % 2):
            mask = np.zeros((height, width), np.uint8)
            y, x = rng.integers(0, height // 2), rng.integers(0, width // 2)
            mask[y:y + height // 3, x:x + width // 3] = 255
            name = f"test/c{index % 2}/img{index}_m{k}.png"
            (masks_dir / name).parent.mkdir(parents=True, exist_ok=True)
            shape = (height + 1, width) if bad_size and index == 1 and k == 1 else mask.shape
            cv2.imwrite(str(masks_dir / name), np.resize(mask, shape))
            instances.append((name, mask))
        ignore = np.zeros((height, width), np.uint8)
        ignore[: height // 2, width // 2:] = 255
        ignore_name = f"test/c{index % 2}/img{index}_ignore.png"
        cv2.imwrite(str(masks_dir / ignore_name), ignore)
        for k, (name, _) in enumerate(instances):
            give_ignore = k == 0 or (ignore_twice and index == 1)
            rows.append(f"{image_id},{name},{ignore_name if give_ignore else ''}")
        fg = np.logical_or.reduce([_nearest(m.astype(np.float32)) > 0.5 for _, m in instances])
        label = fg.astype(np.uint8)
        label[(_nearest(ignore.astype(np.float32)) > 0.5) & ~fg] = 255
        expected[image_id] = label
    if missing:
        rows.append(f"{ids[0]},test/nowhere.png,")
    (meta / "image_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    (meta / "class_labels.txt").write_text("".join(f"{i},{n % 2}\n" for n, i in enumerate(ids)))
    (meta / "localization.txt").write_text("".join(f"{row}\n" for row in rows))
    maps_dir = root / "maps"
    maps = {}
    for image_id in ids:
        score = rng.random((224, 224))
        score[expected[image_id] == 1] = np.clip(score[expected[image_id] == 1] + 0.3, 0, 1)
        path = maps_dir / f"{image_id}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, score)
        maps[image_id] = score
    return maps, expected


def _pixel_oracle(maps, masks, interval=0.01):
    fg = np.concatenate([maps[k][masks[k] == 1] for k in maps])
    bg = np.concatenate([maps[k][masks[k] == 0] for k in maps])
    area, previous = 0.0, 0.0
    best = 0.0
    for tau in list(np.append(np.arange(0, 1, interval), [1.0, 2.0]))[::-1]:
        tp, fp = (fg >= tau).sum(), (bg >= tau).sum()
        recall = tp / len(fg)
        if tp + fp:
            area += tp / (tp + fp) * (recall - previous)
        previous = recall
        best = max(best, tp / (len(fg) + fp))
    return area, best


def test_openimages_matches_oracle(tmp_path):
    maps, masks = _write_openimages(tmp_path)
    metrics = evaluate_score_maps(tmp_path / "maps", tmp_path / "metadata", "OpenImages", "test",
                                  mask_root=tmp_path / "dataset")
    area, best = _pixel_oracle(maps, masks)
    assert metrics["num_images"] == 4
    assert abs(metrics["pxap"] - area) < 1e-9 and abs(metrics["piou"] - best) < 1e-12


def _write_cub(root, seed=1):
    rng = np.random.default_rng(seed)
    meta = root / "metadata" / "CUB" / "test"
    meta.mkdir(parents=True)
    ids, sizes, boxes, lines = [], [], [], []
    for index in range(5):
        image_id = f"00{index}.bird/img{index}.jpg"
        width, height = 400 + 17 * index, 300 - 11 * index
        x0, y0 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
        box = [x0, y0, x0 + width // 3, y0 + height // 4]
        ids.append(image_id)
        sizes.append((width, height))
        boxes.append(box)
        lines.append(f"{image_id},{','.join(map(str, box))}")
    (meta / "image_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    (meta / "class_labels.txt").write_text("".join(f"{i},{n}\n" for n, i in enumerate(ids)))
    (meta / "image_sizes.txt").write_text("".join(f"{i},{w},{h}\n" for i, (w, h) in zip(ids, sizes)))
    (meta / "localization.txt").write_text("".join(f"{line}\n" for line in lines))
    maps = []
    for image_id, (width, height), box in zip(ids, sizes, boxes):
        scaled = [int(box[0] * 224 / width), int(box[1] * 224 / height), int(box[2] * 224 / width),
                  int(box[3] * 224 / height)]
        score = rng.random((224, 224)) * 0.4
        score[scaled[1]:scaled[3] + 1, scaled[0]:scaled[2] + 1] += 0.6
        path = root / "maps" / f"{image_id}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, score)
        maps.append((score, np.array([scaled], dtype=float)))
    return maps


def test_cub_boxes(tmp_path):
    maps = _write_cub(tmp_path)
    metrics = evaluate_score_maps(tmp_path / "maps", tmp_path / "metadata" / "CUB" / "test", "CUB")
    largest = BoxAccuracy(multi_contour=False).update([m for m, _ in maps], [b for _, b in maps]).compute()
    every = BoxAccuracy(multi_contour=True).update([m for m, _ in maps], [b for _, b in maps]).compute()
    assert metrics["max_box_acc"] == pytest.approx(largest[0.5])
    assert metrics["max_box_acc_v2"] == pytest.approx(every["mean"])
    assert metrics["max_box_acc"] == 1.0  # the maps light up exactly the scaled boxes


def test_cli_writes_metrics(tmp_path, capsys):
    _write_openimages(tmp_path)
    out = tmp_path / "metrics.json"
    args = ["evaluate-maps", "--scoremaps", str(tmp_path / "maps"), "--metadata", str(tmp_path / "metadata"),
            "--mask-root", str(tmp_path / "dataset"), "--dataset", "OpenImages", "--out", str(out)]
    assert main(args) == 0
    assert "PxAP" in capsys.readouterr().out
    written = json.loads(out.read_text())
    assert set(written) >= {"pxap", "piou", "num_images"}
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert main(args) == 2  # never replaced silently
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("case, message", [
    (dict(ignore_twice=True), "localization.txt:3: the ignore mask of image 'test/c1/img1.jpg' is given twice"),
    (dict(bad_size=True), "but the other masks of image 'test/c1/img1.jpg' are"),
    (dict(missing=True), "mask file not found"),
])
def test_exception_bad_metadata(tmp_path, capsys, case, message):
    _write_openimages(tmp_path, **case)
    out = tmp_path / "metrics.json"
    status = main(["evaluate-maps", "--scoremaps", str(tmp_path / "maps"), "--metadata", str(tmp_path / "metadata"),
                   "--mask-root", str(tmp_path / "dataset"), "--dataset", "OpenImages", "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_exception_unknown_image_and_bad_maps(tmp_path, capsys):
    _write_openimages(tmp_path)
    localization = tmp_path / "metadata" / "OpenImages" / "test" / "localization.txt"
    localization.write_text(localization.read_text() + "test/c9/other.jpg,test/x.png,\n")
    common = ["evaluate-maps", "--scoremaps", str(tmp_path / "maps"), "--metadata", str(tmp_path / "metadata"),
              "--mask-root", str(tmp_path / "dataset"), "--dataset", "OpenImages"]
    assert main(common) == 2
    assert "image 'test/c9/other.jpg' is not listed in image_ids.txt" in capsys.readouterr().err
    localization.write_text("".join(localization.read_text().splitlines(keepends=True)[:-1]))
    np.save(tmp_path / "maps" / "test/c0/img0.jpg.npy", np.full((112, 112), 0.5))
    assert main(common) == 2
    assert "img0.jpg.npy: score map of shape (112, 112), expected (224, 224)" in capsys.readouterr().err
    np.save(tmp_path / "maps" / "test/c0/img0.jpg.npy", np.full((224, 224), 1.5))
    assert main(common) == 2
    assert "must be finite and lie in [0, 1]" in capsys.readouterr().err


@pytest.mark.parametrize("batch", [1, 3, 4, 256])
def test_openimages_batches_match_oracle(tmp_path, monkeypatch, batch):
    """Maps read into batches of MASK_BATCH (full ones and a last partial one) give the oracle's numbers."""
    import wsl_image.evaluate_maps as evaluate_maps

    monkeypatch.setattr(evaluate_maps, "MASK_BATCH", batch)
    maps, masks = _write_openimages(tmp_path)
    metrics = evaluate_score_maps(tmp_path / "maps", tmp_path / "metadata", "OpenImages", "test",
                                  mask_root=tmp_path / "dataset")
    area, best = _pixel_oracle(maps, masks)
    assert metrics["num_images"] == 4
    assert abs(metrics["pxap"] - area) < 1e-9 and abs(metrics["piou"] - best) < 1e-12
