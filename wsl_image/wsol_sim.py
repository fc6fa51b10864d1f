"""``ilsvrc-sim`` and ``openimages-sim``: small synthetic datasets in the wsolevaluation metadata layout.

The images are those of cub-sim (:func:`wsl_image.sim.render_sample`: one "bird" per image whose head tells
the class), written in the file layout of the benchmark's ImageNet and OpenImages30k data, so that training and
evaluation run without downloads.

ilsvrc-sim (``<out>/ILSVRC`` is the image root, ``<out>/metadata/ILSVRC`` the metadata)::

    ILSVRC/train/<wnid>/<wnid>_<n>.JPEG                 # ImageNet-1k train
    ILSVRC/val2/<label>/<40 hex digits>.jpeg            # ImageNetV2: the train-fullsup val split
    ILSVRC/val/ILSVRC2012_val_<8 digits>.JPEG           # the validation images: the test split
    metadata/ILSVRC/{train,val,test}/{image_ids,class_labels,image_sizes,localization}.txt
    metadata/ILSVRC/train/image_ids_proxy.txt           # the proxy training list (half of each class)

openimages-sim (``<out>/OpenImages`` is the image and mask root)::

    OpenImages/{train,val,test}/<class id>/<image>.jpg
    OpenImages/{val,test}/<class id>/<image>_m<class id>_<8 hex>.png  # instance masks (0 / 255)
    OpenImages/{val,test}/<class id>/<image>_ignore.png               # ignore masks
    metadata/OpenImages/{train,val,test}/{image_ids,class_labels}.txt
    metadata/OpenImages/{val,test}/localization.txt                   # <image>,<mask>,<ignore mask>

Every image of a mask split has one or two instance masks (the head and the rest of the bird, or the whole
bird) and two of three images an ignore mask (a band around the bird's outline), given on the image's first
row only, as in the benchmark's files (which, like this sim, have no ``image_sizes.txt`` for OpenImages).
Everything is built in a temporary folder inside ``out`` and moved into place at the end: an interrupted run
leaves no partial dataset, and existing folders are never overwritten.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Union

import numpy as np

from wsl_image.sim import render_sample, sample_rng

__all__ = ["make_ilsvrc_sim", "make_openimages_sim"]

PathLike = Union[str, Path]


def _encode(image: np.ndarray, extension: str) -> bytes:
    import cv2

    array = np.ascontiguousarray(image[:, :, ::-1] if image.ndim == 3 else image)
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if extension in (".jpg", ".jpeg", ".JPEG") else []
    ok, buffer = cv2.imencode(".jpg" if extension.lower() in (".jpg", ".jpeg") else extension, array, params)
    if not ok:  # pragma: no cover
        raise RuntimeError(f"{extension} encoding failed")
    return buffer.tobytes()


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def _check_counts(num_classes: int, counts: dict[str, int], image_size: int) -> None:
    from wsl_image.sim import COLOURS, SHAPES

    if not 2 <= num_classes <= len(SHAPES) * len(COLOURS):
        raise ValueError(f"num_classes must lie in [2, {len(SHAPES) * len(COLOURS)}], got {num_classes}")
    for name, count in counts.items():
        if count < 1:
            raise ValueError(f"{name} must be >= 1, got {count}")
    if image_size < 48:
        raise ValueError(f"image_size must be >= 48, got {image_size}")


def _render(seed: int, split: str, k: int, i: int, image_size: int):
    rng = sample_rng(seed, split, k, i)
    low = int(round(0.75 * image_size))
    width, height = int(rng.integers(low, image_size + 1)), int(rng.integers(low, image_size + 1))
    return render_sample(rng, k, width, height), (width, height)


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


class _Staging:
    """A temporary folder in ``out``; :meth:`publish` moves its top-level entries to ``out``."""

    def __init__(self, out: Path, names: tuple[str, ...]) -> None:
        self.out = out
        self.targets = [out / name for name in names]
        for target in self.targets:
            if target.exists():
                raise ValueError(f"{target} exists; remove it or choose another --out")
        out.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix=".sim-", dir=out))

    def publish(self) -> None:
        for target in self.targets:
            relative = target.relative_to(self.out)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.root / relative, target)
        shutil.rmtree(self.root)

    def discard(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _metadata(folder: Path, rows: list[tuple[str, int, tuple[int, int]]], sizes: bool = True) -> None:
    _write(folder / "image_ids.txt", "".join(f"{key}\n" for key, _, _ in rows))
    _write(folder / "class_labels.txt", "".join(f"{key},{label}\n" for key, label, _ in rows))
    if sizes:
        _write(folder / "image_sizes.txt", "".join(f"{key},{w},{h}\n" for key, _, (w, h) in rows))


def make_ilsvrc_sim(
    out_dir: PathLike, *, seed: int = 0, num_classes: int = 4, train_per_class: int = 8, val_per_class: int = 2,
    test_per_class: int = 4, image_size: int = 96,
) -> Path:
    """Write ilsvrc-sim under ``out_dir`` (``ILSVRC/`` and ``metadata/ILSVRC/``); returns the image root.

    The same arguments give byte-identical files. ``image_ids_proxy.txt`` lists the first half (at least one)
    of the training images of every class.
    """
    _check_counts(num_classes, {"train_per_class": train_per_class, "val_per_class": val_per_class,
                                "test_per_class": test_per_class}, image_size)
    out_dir = Path(out_dir)
    stage = _Staging(out_dir, ("ILSVRC", "metadata/ILSVRC"))
    try:
        images, meta = stage.root / "ILSVRC", stage.root / "metadata" / "ILSVRC"
        wnids = [f"n{90000000 + 1111 * k:08d}" for k in range(num_classes)]
        rows: dict[str, list] = {"train": [], "val": [], "test": []}
        boxes: dict[str, list[str]] = {"train": [], "val": [], "test": []}
        proxy = []
        test_number = 0
        for k in range(num_classes):
            for split, count in (("train", train_per_class), ("val", val_per_class), ("test", test_per_class)):
                for i in range(count):
                    sample, size = _render(seed, split, k, i, image_size)
                    if split == "train":
                        key = f"train/{wnids[k]}/{wnids[k]}_{i + 1}.JPEG"
                        if i < max(1, count // 2):
                            proxy.append(key)
                    elif split == "val":
                        digest = hashlib.sha1(f"{seed}/{k}/{i}".encode()).hexdigest()
                        key = f"val2/{k}/{digest}.jpeg"
                    else:
                        test_number += 1
                        key = f"val/ILSVRC2012_val_{test_number:08d}.JPEG"
                    _write(images / key, _encode(sample.image, ".jpg"))
                    rows[split].append((key, k, size))
                    x0, y0, x1, y1 = _box(sample.object_mask)
                    boxes[split].append(f"{key},{x0},{y0},{x1},{y1}\n")
        for split in rows:
            _metadata(meta / split, rows[split])
            _write(meta / split / "localization.txt", "".join(boxes[split]))
        _write(meta / "train" / "image_ids_proxy.txt", "".join(f"{key}\n" for key in proxy))
        stage.publish()
    except BaseException:
        stage.discard()
        raise
    return out_dir / "ILSVRC"


def _instance_masks(sample, index: int) -> list[np.ndarray]:
    """Two instances (the head, the rest of the bird) for even images, the whole bird for odd ones."""
    if index % 2 == 0:
        rest = sample.object_mask & ~sample.part_mask
        if rest.any():
            return [sample.part_mask, rest]
    return [sample.object_mask]


def _ignore_mask(sample) -> np.ndarray:
    import cv2

    kernel = np.ones((5, 5), np.uint8)
    mask = sample.object_mask.astype(np.uint8)
    return cv2.dilate(mask, kernel).astype(bool) & ~cv2.erode(mask, kernel).astype(bool)


def make_openimages_sim(
    out_dir: PathLike, *, seed: int = 0, num_classes: int = 4, train_per_class: int = 8, val_per_class: int = 2,
    test_per_class: int = 4, image_size: int = 96,
) -> Path:
    """Write openimages-sim under ``out_dir`` (``OpenImages/`` and ``metadata/OpenImages/``); returns the image
    and mask root. The same arguments give byte-identical files."""
    _check_counts(num_classes, {"train_per_class": train_per_class, "val_per_class": val_per_class,
                                "test_per_class": test_per_class}, image_size)
    out_dir = Path(out_dir)
    stage = _Staging(out_dir, ("OpenImages", "metadata/OpenImages"))
    try:
        images, meta = stage.root / "OpenImages", stage.root / "metadata" / "OpenImages"
        class_ids = [hashlib.sha1(f"class{k}".encode()).hexdigest()[:6] for k in range(num_classes)]
        rows: dict[str, list] = {"train": [], "val": [], "test": []}
        masks: dict[str, list[str]] = {"val": [], "test": []}
        for k in range(num_classes):
            for split, count in (("train", train_per_class), ("val", val_per_class), ("test", test_per_class)):
                for i in range(count):
                    sample, size = _render(seed, split, k, i, image_size)
                    name = hashlib.sha1(f"{seed}/{split}/{k}/{i}".encode()).hexdigest()[:16]
                    key = f"{split}/{class_ids[k]}/{name}.jpg"
                    _write(images / key, _encode(sample.image, ".jpg"))
                    rows[split].append((key, k, size))
                    if split == "train":
                        continue
                    ignore = ""
                    if i % 3 != 2:
                        ignore = f"{split}/{class_ids[k]}/{name}_ignore.png"
                        _write(images / ignore, _encode(_ignore_mask(sample).astype(np.uint8) * 255, ".png"))
                    for j, instance in enumerate(_instance_masks(sample, i)):
                        tag = hashlib.sha1(f"{name}/{j}".encode()).hexdigest()[:8]
                        mask = f"{split}/{class_ids[k]}/{name}_m{class_ids[k]}_{tag}.png"
                        _write(images / mask, _encode(instance.astype(np.uint8) * 255, ".png"))
                        masks[split].append(f"{key},{mask},{ignore if j == 0 else ''}\n")
        for split in rows:
            _metadata(meta / split, rows[split], sizes=False)
        for split, lines in masks.items():
            _write(meta / split / "localization.txt", "".join(lines))
        stage.publish()
    except BaseException:
        stage.discard()
        raise
    return out_dir / "OpenImages"
