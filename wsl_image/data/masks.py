"""Ground-truth masks in the wsolevaluation metadata layout (OpenImages30k).

``localization.txt`` of a mask dataset has one row per instance mask:

    <image_id>,<mask path>,<ignore mask path>

An image may have several rows (one per instance); its ignore mask is given on exactly one of them
and left empty (``<image_id>,<mask path>,``) on the others. Paths are relative to the mask root
(``dataset/OpenImages`` in the benchmark). For evaluation every mask is read as grey levels, resized to
the score-map size with nearest-neighbour interpolation, and thresholded at 0.5; the instances are
united and the ignore region is the ignore mask minus the foreground (:func:`wsl.metrics.compose_mask`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from wsl_image.data.metadata import read_lines

__all__ = ["MaskEntry", "MaskSet", "read_mask_localization", "load_eval_mask", "check_mask_files", "read_mask_set",
           "EVAL_SIZE"]

EVAL_SIZE = 224


@dataclass
class MaskEntry:
    """The masks of one image: instance mask paths, the ignore mask path (or None) and their metadata lines."""

    masks: list[str] = field(default_factory=list)
    ignore: str | None = None
    lines: list[int] = field(default_factory=list)
    ignore_line: int | None = None


def read_mask_localization(path: str | Path, image_ids: Sequence[str]) -> dict[str, MaskEntry]:
    """Parse a mask ``localization.txt``; every image of ``image_ids`` needs at least one mask.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a malformed row, an image not in ``image_ids``, an ignore mask given twice, or an
            image without a mask; the message names the file and line.
    """
    path = Path(path)
    known = set(image_ids)
    entries: dict[str, MaskEntry] = {}
    for number, line in read_lines(path, "localization.txt"):
        parts = line.split(",")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            raise ValueError(f"{path}:{number}: malformed line {line!r}; expected '<image>,<mask>,<ignore mask>'")
        image_id, mask, ignore = (part.strip() for part in parts)
        if image_id not in known:
            raise ValueError(f"{path}:{number}: image {image_id!r} is not listed in image_ids.txt")
        entry = entries.setdefault(image_id, MaskEntry())
        entry.masks.append(mask)
        entry.lines.append(number)
        if ignore:
            if entry.ignore is not None:
                raise ValueError(f"{path}:{number}: the ignore mask of image {image_id!r} is given twice "
                                 f"(first on line {entry.ignore_line})")
            entry.ignore, entry.ignore_line = ignore, number
    for image_id in image_ids:
        if image_id not in entries:
            raise ValueError(f"{path}: image {image_id!r} of image_ids.txt has no mask")
    return entries


def _read_grey(path: Path, where: str) -> np.ndarray:
    import cv2

    if not path.is_file():
        raise FileNotFoundError(f"{where}: mask file not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"{where}: cannot read {path} as an image")
    return image


def load_eval_mask(mask_root: str | Path, entry: MaskEntry, image_id: str, metadata: str | Path = "localization.txt",
                   size: int = EVAL_SIZE) -> np.ndarray:
    """The evaluation mask of one image, ndarray[size, size] uint8: 1 foreground, 255 ignored, 0 background.

    Raises:
        FileNotFoundError: a mask file is missing (named with its metadata line).
        ValueError: a mask cannot be decoded, or the masks of the image differ in size.
    """
    import cv2

    from wsl.metrics.pixel import compose_mask

    root = Path(mask_root)
    files = [(root / mask, line) for mask, line in zip(entry.masks, entry.lines)]
    if entry.ignore is not None:
        files.append((root / entry.ignore, entry.ignore_line))
    images, shape = [], None
    for file, line in files:
        image = _read_grey(file, f"{metadata}:{line}")
        if shape is None:
            shape = image.shape
        elif image.shape != shape:
            raise ValueError(f"{metadata}:{line}: mask {file} is {image.shape[1]}x{image.shape[0]} but the other "
                             f"masks of image {image_id!r} are {shape[1]}x{shape[0]}")
        resized = cv2.resize(image.astype(np.float32), (size, size), interpolation=cv2.INTER_NEAREST)
        images.append(resized > 0.5)
    count = len(entry.masks)
    return compose_mask(images[:count], images[count] if entry.ignore is not None else None)


def check_mask_files(mask_root: str | Path, entries: dict[str, MaskEntry],
                     metadata: str | Path = "localization.txt") -> None:
    """Check, from the file headers only, that every mask exists, is an image, and has the size of the other
    masks of its image; the errors are those of :func:`load_eval_mask` (file and line named)."""
    from PIL import Image

    root = Path(mask_root)
    for image_id, entry in entries.items():
        files = [(mask, line) for mask, line in zip(entry.masks, entry.lines)]
        if entry.ignore is not None:
            files.append((entry.ignore, entry.ignore_line))
        shape = None
        for name, line in files:
            file = root / name
            if not file.is_file():
                raise FileNotFoundError(f"{metadata}:{line}: mask file not found: {file}")
            try:
                with Image.open(file) as image:
                    size = (int(image.height), int(image.width))
            except Exception:  # PIL raises several types for undecodable files
                raise ValueError(f"{metadata}:{line}: cannot read {file} as an image") from None
            if shape is None:
                shape = size
            elif size != shape:
                raise ValueError(f"{metadata}:{line}: mask {file} is {size[1]}x{size[0]} but the other "
                                 f"masks of image {image_id!r} are {shape[1]}x{shape[0]}")


@dataclass
class MaskSet:
    """The masks of one split: ``root`` (mask paths are relative to it), ``entries`` by image id and the
    ``metadata`` file they come from; :meth:`load` gives an image's evaluation mask."""

    root: Path
    entries: dict[str, MaskEntry]
    metadata: Path

    def load(self, image_id: str, size: int = EVAL_SIZE) -> np.ndarray:
        """ndarray[size, size] uint8 of :func:`load_eval_mask`."""
        if image_id not in self.entries:
            raise KeyError(f"{self.metadata}: image {image_id!r} has no mask")
        return load_eval_mask(self.root, self.entries[image_id], image_id, self.metadata, size)


def read_mask_set(split_dir: str | Path, mask_root: str | Path, image_ids: Sequence[str], *,
                  check_files: bool = True) -> MaskSet:
    """The masks of a split folder of the metadata (its ``localization.txt``), checked against ``image_ids``
    and, with ``check_files``, against the mask files (:func:`check_mask_files`)."""
    metadata = Path(split_dir) / "localization.txt"
    root = Path(mask_root)
    if not root.is_dir():
        raise FileNotFoundError(f"mask root not found: {root}")
    entries = read_mask_localization(metadata, image_ids)
    if check_files:
        check_mask_files(root, entries, metadata)
    return MaskSet(root, entries, metadata)
