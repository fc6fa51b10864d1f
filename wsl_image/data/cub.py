"""The official CUB-200-2011 layout (Wah et al., 2011).

``CUB_200_2011/`` holds ``images/<class folder>/<file>.jpg`` and, all with 1-based ids separated by spaces:

* ``images.txt``: ``<image_id> <relative path under images/>``
* ``image_class_labels.txt``: ``<image_id> <class_id>``
* ``train_test_split.txt``: ``<image_id> <is_training_image>`` (1 = train, 0 = test)
* ``bounding_boxes.txt``: ``<image_id> <x> <y> <width> <height>`` (float pixels)
* ``classes.txt``: ``<class_id> <class_name>``

Boxes become ``(x, y, x + width, y + height)``, the same conversion as the wsolevaluation metadata
(image 1: ``60 27 325 304`` -> ``60,27,385,331``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence, TypeVar, Union

import numpy as np

from wsl_image.data.metadata import CubMetadata, check_boxes_inside, read_image_size, read_lines

__all__ = ["load_cub", "CUB_FILES"]

PathLike = Union[str, Path]
T = TypeVar("T")

CUB_FILES = {
    "images": "images.txt",
    "labels": "image_class_labels.txt",
    "split": "train_test_split.txt",
    "boxes": "bounding_boxes.txt",
    "classes": "classes.txt",
}


def _parse_id_file(
    path: Path, fields: int, parse: Callable[[list[str]], T], expected: str, *, multi: bool = False,
    keep: set[int] | None = None,
) -> dict[int, list[T]]:
    """Parse ``<id> <fields...>`` lines into ``{id: [value, ...]}`` in file order (only ``keep`` ids when given:
    the other lines are skipped without reading their fields)."""
    table: dict[int, list[T]] = {}
    for number, line in read_lines(path, path.name):
        parts = line.split(maxsplit=fields)
        if keep is not None:
            try:
                if int(parts[0]) not in keep:
                    continue
            except ValueError:
                pass  # reported below
        if len(parts) != fields + 1:
            raise ValueError(f"{path}:{number}: malformed line {line!r}; expected {expected!r}")
        try:
            key = int(parts[0])
            value = parse(parts[1:])
        except ValueError as error:
            raise ValueError(f"{path}:{number}: malformed line {line!r}; expected {expected!r}") from error
        if key in table and not multi:
            raise ValueError(f"{path}:{number}: id {key} appears twice")
        table.setdefault(key, []).append(value)
    return table


def _check_same_ids(reference: dict, other: dict, reference_name: str, other_name: str) -> None:
    missing = [key for key in reference if key not in other]
    if missing:
        raise ValueError(f"image id {missing[0]} is in {reference_name} but missing from {other_name}")
    extra = [key for key in other if key not in reference]
    if extra:
        raise ValueError(f"image id {extra[0]} is in {other_name} but not in {reference_name}")


def _parse_flag(parts: list[str]) -> bool:
    if parts[0] not in ("0", "1"):
        raise ValueError(parts[0])
    return parts[0] == "1"


def _parse_xywh(parts: list[str]) -> list[float]:
    x, y, w, h = (float(v) for v in parts[0].split())
    if not all(np.isfinite([x, y, w, h])) or w < 0 or h < 0:
        raise ValueError("negative or non-finite box")
    return [x, y, x + w, y + h]


def load_cub(root: PathLike, *, verify_images: bool = True, splits: Sequence[str] | None = None) -> CubMetadata:
    """Read the official ``CUB_200_2011`` layout.

    Args:
        root: the ``CUB_200_2011`` folder (or its parent).
        verify_images: read every image header to record ``sizes`` and check that each box lies inside
            its image (about a second for the 11,788 CUB images).
        splits: keep only these of ``"train"``, ``"test"`` (default both). The lines of the other
            images are skipped unread in every file but ``train_test_split.txt``, and their image files
            are never opened: ``splits=("train",)`` works with the test images and annotations absent.

    Returns:
        :class:`CubMetadata` with ``is_train`` from ``train_test_split.txt`` and one box per image.
    """
    root = Path(root)
    if not (root / CUB_FILES["images"]).is_file() and (root / "CUB_200_2011").is_dir():
        root = root / "CUB_200_2011"
    if not root.is_dir():
        raise FileNotFoundError(f"CUB root not found: {root}")
    files = {key: root / name for key, name in CUB_FILES.items()}

    classes = _parse_id_file(files["classes"], 1, lambda p: p[0], "<class_id> <class_name>")
    class_ids = sorted(classes)
    if class_ids != list(range(1, len(class_ids) + 1)):
        raise ValueError(f"{files['classes']}: class ids must be 1..{len(class_ids)}, got {class_ids[:5]}...")
    class_names = [classes[k][0] for k in class_ids]

    split = _parse_id_file(files["split"], 1, _parse_flag, "<image_id> <is_training_image 0|1>")
    keep = None
    if splits is not None:
        unknown = sorted(set(splits) - {"train", "test"})
        if unknown or not splits:
            raise ValueError(f"splits of the official CUB layout are 'train' and 'test', got {list(splits)}")
        keep = {key for key, (flag,) in split.items() if ("train" if flag else "test") in splits}
        split = {key: value for key, value in split.items() if key in keep}
    images = _parse_id_file(files["images"], 1, lambda p: p[0], "<image_id> <image_name>", keep=keep)
    labels = _parse_id_file(files["labels"], 1, lambda p: int(p[0]), "<image_id> <class_id>", keep=keep)
    boxes = _parse_id_file(
        files["boxes"], 1, _parse_xywh, "<image_id> <x> <y> <width> <height>", multi=True, keep=keep
    )
    if keep is not None:
        _check_same_ids(split, images, CUB_FILES["split"], CUB_FILES["images"])
    for name, table in (("labels", labels), ("split", split), ("boxes", boxes)):
        _check_same_ids(images, table, CUB_FILES["images"], CUB_FILES[name])

    image_keys = list(images)
    label_array = np.empty(len(image_keys), dtype=np.int64)
    for index, key in enumerate(image_keys):
        class_id = labels[key][0]
        if not 1 <= class_id <= len(class_names):
            raise ValueError(
                f"{files['labels']}: image id {key} has class id {class_id}, "
                f"outside 1..{len(class_names)} of {CUB_FILES['classes']}"
            )
        label_array[index] = class_id - 1

    paths = [root / "images" / images[key][0] for key in image_keys]
    box_list = [np.asarray(boxes[key], dtype=np.float64).reshape(-1, 4) for key in image_keys]
    sizes = None
    if verify_images:
        sizes = np.empty((len(image_keys), 2), dtype=np.int64)
        for index, key in enumerate(image_keys):
            sizes[index] = read_image_size(paths[index], str(key))
            check_boxes_inside(
                box_list[index], tuple(sizes[index]), f"{files['boxes']}: image id {key} ({images[key][0]})"
            )
    return CubMetadata(
        image_ids=[str(key) for key in image_keys],
        paths=paths,
        labels=label_array,
        boxes=box_list,
        is_train=np.array([split[key][0] for key in image_keys], dtype=bool),
        class_names=class_names,
        sizes=sizes,
    )
