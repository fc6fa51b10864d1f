"""In-memory image-level metadata shared by both CUB-200-2011 layouts."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

__all__ = ["CubMetadata", "SPLITS", "read_lines", "check_boxes_inside", "read_image_size"]

SPLITS = ("train", "val", "test")


@dataclass
class CubMetadata:
    """Images, labels and boxes of a CUB-like dataset.

    Attributes:
        image_ids: N identifiers (the numeric id of ``images.txt``, or the relative image path of the
            wsolevaluation metadata).
        paths: N absolute image paths.
        labels (ndarray[N] int64): 0-based class indices.
        boxes: N arrays (ndarray[M_i, 4] float64) of ``(x0, y0, x1, y1)`` in original pixels.
        is_train (ndarray[N] bool | None): official train/test flag.
        class_names: K class names (e.g. ``"001.Black_footed_Albatross"``).
        sizes (ndarray[N, 2] int64 | None): ``(width, height)`` of each image when known.
        splits (ndarray[N] str | None): ``"train"``, ``"val"`` or ``"test"`` for each image.
    """

    image_ids: list[str]
    paths: list[Path]
    labels: np.ndarray
    boxes: list[np.ndarray]
    is_train: np.ndarray | None
    class_names: list[str]
    sizes: np.ndarray | None = None
    splits: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        count = len(self.image_ids)
        self.paths = [Path(p) for p in self.paths]
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        lengths = {"paths": len(self.paths), "labels": len(self.labels), "boxes": len(self.boxes)}
        if self.is_train is not None:
            self.is_train = np.asarray(self.is_train, dtype=bool).reshape(-1)
            lengths["is_train"] = len(self.is_train)
        if self.sizes is not None:
            self.sizes = np.asarray(self.sizes, dtype=np.int64).reshape(-1, 2)
            lengths["sizes"] = len(self.sizes)
        if self.splits is None and self.is_train is not None:
            self.splits = np.where(self.is_train, "train", "test")
        if self.splits is not None:
            self.splits = np.asarray(self.splits, dtype=object).reshape(-1)
            lengths["splits"] = len(self.splits)
        for name, length in lengths.items():
            if length != count:
                raise ValueError(f"CubMetadata: {count} image ids but {length} {name}")
        if count and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise ValueError(
                f"CubMetadata: labels must lie in [0, {len(self.class_names)}), "
                f"got range [{self.labels.min()}, {self.labels.max()}]"
            )

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def available_splits(self) -> list[str]:
        """Split names present, in ``train, val, test`` order."""
        if self.splits is None:
            return []
        present = set(self.splits.tolist())
        return [name for name in SPLITS if name in present]

    def subset(self, indices: Sequence[int] | np.ndarray) -> CubMetadata:
        """The images at ``indices`` (same classes)."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        return replace(
            self,
            image_ids=[self.image_ids[i] for i in indices],
            paths=[self.paths[i] for i in indices],
            labels=self.labels[indices],
            boxes=[self.boxes[i] for i in indices],
            is_train=None if self.is_train is None else self.is_train[indices],
            sizes=None if self.sizes is None else self.sizes[indices],
            splits=None if self.splits is None else self.splits[indices],
        )

    def split(self, name: str) -> CubMetadata:
        """Images of one split: ``"train"``, ``"val"`` or ``"test"``."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        if self.splits is None:
            raise ValueError("this metadata has no split information")
        indices = np.nonzero(self.splits == name)[0]
        if len(indices) == 0:
            available = ", ".join(self.available_splits()) or "none"
            hint = (
                " (the official CUB_200_2011 layout has no validation split: use the wsolevaluation "
                "metadata with its CUBV2 val split, or CubMetadata.holdout_val())"
                if name == "val" else ""
            )
            raise ValueError(f"split {name!r} is empty; available splits: {available}{hint}")
        return self.subset(indices)

    def holdout_val(self, per_class: int = 5, seed: int = 0) -> CubMetadata:
        """Move ``per_class`` random training images of every class to a ``"val"`` split.

        Gives a validation split for choosing CAM thresholds without touching the test set when the
        data has none (official layout). Deterministic by ``seed``.
        """
        if self.splits is None:
            raise ValueError("this metadata has no split information")
        if per_class < 1:
            raise ValueError(f"per_class must be >= 1, got {per_class}")
        rng = np.random.default_rng(seed)
        splits = self.splits.copy()
        for label in range(self.num_classes):
            candidates = np.nonzero((splits == "train") & (self.labels == label))[0]
            if len(candidates) <= per_class:
                raise ValueError(
                    f"class {self.class_names[label]!r} has {len(candidates)} training images; "
                    f"cannot hold out {per_class} for validation"
                )
            splits[rng.choice(candidates, per_class, replace=False)] = "val"
        return replace(self, splits=splits)

    def __iter__(self) -> Iterator[tuple[str, Path, int, np.ndarray]]:
        for index in range(len(self)):
            yield self.image_ids[index], self.paths[index], int(self.labels[index]), self.boxes[index]


def read_lines(path: Path, description: str) -> list[tuple[int, str]]:
    """Non-empty, stripped lines of a text file as ``(line number, line)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing {description}: {path}")
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if line:
                rows.append((number, line))
    return rows


def check_boxes_inside(boxes: np.ndarray, size: tuple[int, int], where: str, tolerance: float = 1.0) -> None:
    """Raise ``ValueError`` naming ``where`` if a box is not inside a ``(width, height)`` image."""
    width, height = size
    for box in boxes:
        x0, y0, x1, y1 = (float(v) for v in box)
        if not (x1 >= x0 and y1 >= y0):
            raise ValueError(f"{where}: box {[x0, y0, x1, y1]} has x1 < x0 or y1 < y0")
        if x0 < -tolerance or y0 < -tolerance or x1 > width + tolerance or y1 > height + tolerance:
            raise ValueError(
                f"{where}: box (x0={x0:g}, y0={y0:g}, x1={x1:g}, y1={y1:g}) lies outside the "
                f"{width}x{height} image"
            )


def read_image_size(path: Path, image_id: str) -> tuple[int, int]:
    """``(width, height)`` from the image header; errors name the image id and file."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {image_id}: file not found: {path}")
    try:
        with Image.open(path) as image:
            return int(image.width), int(image.height)
    except Exception as error:  # PIL raises several types for undecodable files
        raise ValueError(f"image {image_id}: cannot decode {path}: {error}") from error
