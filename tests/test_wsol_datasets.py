"""ILSVRC and OpenImages in the wsolevaluation layout: the sims, training and evaluation through the commands,
PxAP / PIoU of `wsl-image evaluate` against an independent computation, and bad metadata."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from wsl_image.cli import main
from wsl_image.data.masks import read_mask_set
from wsl_image.data.wsol_metadata import load_wsol_metadata
from wsl_image.evaluate_maps import read_score_map

SIZES = ["--num-classes", "2", "--train-per-class", "4", "--val-per-class", "2", "--test-per-class", "3",
         "--image-size", "64"]
TINY = ["--backbone", "resnet18", "--image-size", "64", "--epochs", "1", "--batch-size", "4", "--workers", "0",
        "--device", "cpu", "--threads", "1", "--quiet"]


def _tree_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def sims(tmp_path_factory):
    root = tmp_path_factory.mktemp("sims")
    for dataset in ("ilsvrc", "openimages"):
        assert main(["make-sim", "--dataset", dataset, "--out", str(root), *SIZES]) == 0
    return root


@pytest.fixture(scope="module")
def openimages_run(sims, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "oi"
    assert main(["train", "--dataset", "OpenImages", "--data-root", str(sims / "OpenImages"),
                 "--metadata", str(sims / "metadata"), "--out", str(run), *TINY]) == 0
    return run


def test_make_sim_ilsvrc_layout(sims, tmp_path):
    meta_root = sims / "metadata" / "ILSVRC"
    assert _files(meta_root) == sorted(
        [f"{split}/{name}" for split in ("train", "val", "test")
         for name in ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt")]
        + ["train/image_ids_proxy.txt"])
    meta = load_wsol_metadata(meta_root, sims / "ILSVRC")  # reads every image header, checks sizes and boxes
    assert meta.available_splits() == ["train", "val", "test"]
    assert [len(meta.split(s)) for s in ("train", "val", "test")] == [8, 4, 6]
    train, val, test = (meta.split(s).image_ids for s in ("train", "val", "test"))
    assert all(key.startswith("train/n") and key.endswith(".JPEG") for key in train)
    assert all(key.startswith("val2/") and key.endswith(".jpeg") and len(Path(key).stem) == 40 for key in val)
    assert test == [f"val/ILSVRC2012_val_{n:08d}.JPEG" for n in range(1, 7)]
    assert all(len(boxes) == 1 for boxes in meta.boxes)
    proxy = load_wsol_metadata(meta_root, sims / "ILSVRC", splits=("train",), proxy_train=True)
    assert proxy.image_ids == (meta_root / "train" / "image_ids_proxy.txt").read_text().split()
    assert len(proxy) == 4 and set(proxy.image_ids) < set(train) and set(proxy.labels.tolist()) == {0, 1}
    # same arguments, same bytes; an existing dataset is never overwritten
    assert main(["make-sim", "--dataset", "ilsvrc", "--out", str(tmp_path), *SIZES, "--quiet"]) == 0
    assert _tree_hash(tmp_path / "ILSVRC") == _tree_hash(sims / "ILSVRC")
    assert _tree_hash(tmp_path / "metadata" / "ILSVRC") == _tree_hash(meta_root)
    before = _tree_hash(tmp_path)
    assert main(["make-sim", "--dataset", "ilsvrc", "--out", str(tmp_path), *SIZES]) == 2
    assert _tree_hash(tmp_path) == before


def test_make_sim_openimages_layout(sims, capsys):
    meta_root = sims / "metadata" / "OpenImages"
    assert _files(meta_root) == sorted(
        [f"{split}/{name}" for split in ("train", "val", "test") for name in ("image_ids.txt", "class_labels.txt")]
        + ["val/localization.txt", "test/localization.txt"])
    meta = load_wsol_metadata(meta_root, sims / "OpenImages", boxes=False)
    assert [len(meta.split(s)) for s in ("train", "val", "test")] == [8, 4, 6]
    for split in ("val", "test"):
        part = meta.split(split)
        masks = read_mask_set(meta_root / split, sims / "OpenImages", part.image_ids)  # checks every mask file
        counts = [len(masks.entries[key].masks) for key in part.image_ids]
        assert set(counts) == {1, 2}  # several masks per image
        assert any(masks.entries[key].ignore for key in part.image_ids)
        for key in part.image_ids:
            mask = masks.load(key)
            assert mask.shape == (224, 224) and (mask == 1).any() and set(np.unique(mask)) <= {0, 1, 255}
    assert all(p.suffix == ".png" for p in (sims / "OpenImages" / "test").rglob("*_m*"))


def _pxap_oracle(maps: list[np.ndarray], masks: list[np.ndarray]) -> tuple[float, float]:
    """PxAP and PIoU by direct thresholding at 2, 1, 0.99, ..., 0 (the benchmark's curve from its histograms)."""
    scores = np.concatenate([m.ravel() for m in maps]).astype(np.float64)
    labels = np.concatenate([m.ravel() for m in masks])
    fg, bg = scores[labels == 1], scores[labels == 0]
    thresholds = [2.0, 1.0] + [float(t) for t in np.arange(0, 1, 0.01)[::-1]]
    tp = np.array([(fg >= t).sum() for t in thresholds], np.float64)
    fp = np.array([(bg >= t).sum() for t in thresholds], np.float64)
    fn = len(fg) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    area = (precision[1:] * np.diff(recall))[~np.isnan(precision[1:])].sum()
    return float(area), float(np.max(tp / (tp + fp + fn)))


def test_openimages_train_and_evaluate(sims, openimages_run, tmp_path, capsys):
    metrics = json.loads((openimages_run / "metrics.json").read_text())
    assert {"pxap", "piou", "piou_threshold", "top1_cls", "top5_cls"} <= set(metrics)
    assert metrics["num_images"] == 6 and "max_box_acc" not in metrics
    capsys.readouterr()
    maps_dir = tmp_path / "maps"
    assert main(["evaluate", "--run", str(openimages_run), "--save-maps", str(maps_dir), "--workers", "0",
                 "--device", "cpu", "--quiet"]) == 0
    printed = capsys.readouterr().out.splitlines()[0]
    evaluated = json.loads((openimages_run / "eval_test.json").read_text())
    assert printed.startswith(f"test (%): PxAP {100 * evaluated['pxap']:.2f}  PIoU {100 * evaluated['piou']:.2f}")
    assert evaluated["pxap"] == pytest.approx(metrics["pxap"], abs=1e-6)
    # the same maps scored by evaluate-maps, and by direct thresholding against the masks
    out = tmp_path / "maps.json"
    assert main(["evaluate-maps", "--scoremaps", str(maps_dir), "--metadata", str(sims / "metadata"),
                 "--mask-root", str(sims), "--dataset", "OpenImages", "--out", str(out)]) == 0
    scored = json.loads(out.read_text())
    assert scored["pxap"] == evaluated["pxap"] and scored["piou"] == evaluated["piou"]
    meta_root = sims / "metadata" / "OpenImages" / "test"
    ids = (meta_root / "image_ids.txt").read_text().split()
    masks = read_mask_set(meta_root, sims / "OpenImages", ids)
    maps = [read_score_map(maps_dir / f"{key}.npy") for key in ids]
    area, best_iou = _pxap_oracle(maps, [masks.load(key) for key in ids])
    assert evaluated["pxap"] == pytest.approx(area, abs=1e-9)
    assert evaluated["piou"] == pytest.approx(best_iou, abs=1e-9)
    # the train split has no masks; --save-maps never writes into a used folder
    assert main(["evaluate", "--run", str(openimages_run), "--split", "train", "--workers", "0", "--device", "cpu",
                 "--quiet"]) == 2
    assert capsys.readouterr().err == "wsl-image evaluate: error: the train split of OpenImages has no masks to " \
                                      "evaluate against\n"
    assert main(["evaluate", "--run", str(openimages_run), "--save-maps", str(maps_dir), "--quiet"]) == 2


def test_ilsvrc_train_and_evaluate(sims, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--dataset", "ILSVRC", "--proxy-train", "--data-root", str(sims / "ILSVRC"),
                 "--metadata", str(sims / "metadata" / "ILSVRC"), "--out", str(run), *TINY]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_images"] == 6 and metrics["val_cam_threshold"] is not None
    assert {"max_box_acc", "max_box_acc_v2", "top1_loc"} <= set(metrics)
    assert "4 training images" in (run / "train.log").read_text()  # the proxy list: 2 of 4 per class
    maps = tmp_path / "maps"
    assert main(["evaluate", "--run", str(run), "--split", "val", "--workers", "0", "--device", "cpu",
                 "--save-maps", str(maps), "--quiet"]) == 0
    assert json.loads((run / "eval_val.json").read_text())["num_images"] == 4
    val_ids = (sims / "metadata" / "ILSVRC" / "val" / "image_ids.txt").read_text().split()
    assert sorted(str(p.relative_to(maps)) for p in maps.rglob("*.npy")) == sorted(f"{key}.npy" for key in val_ids)
    assert all(read_score_map(maps / f"{key}.npy").max() == pytest.approx(1.0) for key in val_ids)


def _corrupt(sims: Path, tmp_path: Path, dataset: str) -> Path:
    shutil.copytree(sims / dataset, tmp_path / dataset)
    shutil.copytree(sims / "metadata" / dataset, tmp_path / "metadata" / dataset)
    return tmp_path


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _bad_openimages(root: Path, case: str) -> str:
    """Break the copy under ``root`` and return the expected message (after ``error: ``)."""
    loc = root / "metadata" / "OpenImages" / "test" / "localization.txt"
    lines = _lines(loc)
    image, mask, ignore = lines[0].split(",")
    masks = root / "OpenImages"
    if case == "missing mask":
        (masks / mask).unlink()
        return f"{loc}:1: mask file not found: {masks / mask}"
    if case == "ignore twice":
        assert ignore and lines[1].startswith(image + ",") and lines[1].endswith(",")
        lines[1] += ignore
        loc.write_text("\n".join(lines) + "\n")
        return f"{loc}:2: the ignore mask of image {image!r} is given twice (first on line 1)"
    if case == "mask size":
        import cv2

        other = lines[1].split(",")[1]
        assert lines[1].startswith(image + ",")
        cv2.imwrite(str(masks / other), np.zeros((10, 12), np.uint8))
        first = cv2.imread(str(masks / mask), cv2.IMREAD_GRAYSCALE)
        return (f"{loc}:2: mask {masks / other} is 12x10 but the other masks of image {image!r} are "
                f"{first.shape[1]}x{first.shape[0]}")
    lines.append(f"test/unknown/x.jpg,{mask},")
    loc.write_text("\n".join(lines) + "\n")
    return f"{loc}:{len(lines)}: image 'test/unknown/x.jpg' is not listed in image_ids.txt"


@pytest.mark.parametrize("case", ["missing mask", "ignore twice", "mask size", "unknown image"])
def test_bad_openimages_metadata(sims, openimages_run, tmp_path, capsys, case):
    root = _corrupt(sims, tmp_path, "OpenImages")
    message = _bad_openimages(root, case)
    capsys.readouterr()
    out = tmp_path / "run"
    assert main(["train", "--dataset", "OpenImages", "--data-root", str(root / "OpenImages"),
                 "--metadata", str(root / "metadata"), "--out", str(out), *TINY]) == 2
    assert capsys.readouterr().err == f"wsl-image train: error: {message}\n"
    assert not out.exists()
    before = _tree_hash(openimages_run)
    assert main(["evaluate", "--run", str(openimages_run), "--data-root", str(root / "OpenImages"),
                 "--metadata", str(root / "metadata"), "--mask-root", str(root / "OpenImages"),
                 "--save-maps", str(tmp_path / "maps"), "--device", "cpu", "--quiet"]) == 2
    assert capsys.readouterr().err == f"wsl-image evaluate: error: {message}\n"
    assert _tree_hash(openimages_run) == before and not (tmp_path / "maps").exists()


def test_bad_ilsvrc_metadata(sims, tmp_path, capsys):
    root = _corrupt(sims, tmp_path, "ILSVRC")
    loc = root / "metadata" / "ILSVRC" / "test" / "localization.txt"
    lines = _lines(loc) + ["val/ILSVRC2012_val_00000099.JPEG,1,2,3,4"]
    loc.write_text("\n".join(lines) + "\n")
    proxy = root / "metadata" / "ILSVRC" / "train" / "image_ids_proxy.txt"
    proxy.write_text(proxy.read_text() + "train/n0/n0_1.JPEG\n")
    common = ["train", "--dataset", "ILSVRC", "--data-root", str(root / "ILSVRC"), "--metadata",
              str(root / "metadata"), "--out", str(tmp_path / "run"), *TINY]
    capsys.readouterr()
    assert main(common) == 2
    assert capsys.readouterr().err == (f"wsl-image train: error: {loc}:{len(lines)}: image "
                                       "'val/ILSVRC2012_val_00000099.JPEG' is not listed in image_ids.txt\n")
    loc.write_text("\n".join(lines[:-1]) + "\n")
    assert main([*common, "--proxy-train"]) == 2
    assert capsys.readouterr().err == (f"wsl-image train: error: {proxy}:5: image 'train/n0/n0_1.JPEG' is not "
                                       "listed in image_ids.txt\n")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "ILSVRC"], "--metadata is required for --dataset ILSVRC (the wsolevaluation metadata folder)"),
    (["--dataset", "OpenImages", "--metadata", "META", "--proxy-train"],
     "--proxy-train applies to ILSVRC only, not OpenImages"),
    (["--metadata", "META", "--mask-root", "DATA"], "--mask-root applies to OpenImages only, not CUB"),
])
def test_dataset_options_are_checked(sims, tmp_path, capsys, argv, message):
    argv = [str(sims / "metadata") if a == "META" else str(sims) if a == "DATA" else a for a in argv]
    assert main(["train", "--data-root", str(sims), *argv, "--out", str(tmp_path / "run"), *TINY]) == 2
    assert capsys.readouterr().err == f"wsl-image train: error: {message}\n"
    assert not (tmp_path / "run").exists()


def test_openimages_ddp_torchrun(sims, tmp_path):
    """2-process gloo DDP: the PxAP histograms and counts of both shards are summed."""
    import os
    import socket
    import subprocess
    import sys

    import torch

    from wsl_image.data import collate_boxes
    from wsl_image.data.splits import build_splits
    from wsl_image.evaluate import ShardSampler
    from wsl_image.mask_evaluation import MaskMeter, mask_meter
    from wsl_image.run import load_run

    run = tmp_path / "ddp"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={port}", "-m", "wsl_image", "train", "--dataset", "OpenImages",
               "--data-root", str(sims / "OpenImages"), "--metadata", str(sims / "metadata"), "--out", str(run),
               "--backbone", "test_resnet", "--image-size", "32", "--grid", "4", "--epochs", "1", "--batch-size",
               "2", "--workers", "0", "--device", "cpu", "--quiet"]
    repo = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=repo + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_images"] == 6  # both shards: every test image once
    # the same shards and batches in one process, their histograms and counts summed here
    model, config = load_run(run)
    test = build_splits(config)["test"]
    shards = [mask_meter(model, torch.utils.data.DataLoader(test, batch_size=2, sampler=ShardSampler(6, rank, 2),
                                                            collate_fn=collate_boxes)) for rank in (0, 1)]
    total = MaskMeter()
    total.pixels.foreground = shards[0].pixels.foreground + shards[1].pixels.foreground
    total.pixels.background = shards[0].pixels.background + shards[1].pixels.background
    total.top1, total.top5 = shards[0].top1 + shards[1].top1, shards[0].top5 + shards[1].top5
    total.num_images = shards[0].num_images + shards[1].num_images
    single = total.compute()
    for key in ("pxap", "piou", "piou_threshold", "top1_cls", "top5_cls", "num_images"):
        assert single[key] == pytest.approx(metrics[key], abs=1e-12), key
