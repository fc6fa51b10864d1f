"""The wsolevaluation metadata layout (Choe et al., CVPR 2020).

``metadata/CUB/{train,val,test}/`` each hold comma-separated files keyed by the image path relative
to the image root (e.g. ``001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg``):

* ``image_ids.txt``: ``<path>``
* ``class_labels.txt``: ``<path>,<label>`` (0-based)
* ``image_sizes.txt``: ``<path>,<width>,<height>``
* ``localization.txt``: ``<path>,<x0>,<y0>,<x1>,<y1>`` (one line per box, integer pixels)

The ``val`` split of CUB is CUBV2 (5 new images per class), used to choose the CAM threshold and
hyper-parameters without touching the test set.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Sequence, Union

import numpy as np

from wsl.utils.io import atomic_write_text
from wsl_image.data.metadata import SPLITS, CubMetadata, check_boxes_inside, read_image_size, read_lines

__all__ = ["load_wsol_metadata", "write_wsol_metadata", "WSOL_FILES", "PROXY_IDS"]

PathLike = Union[str, Path]

WSOL_FILES = ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt")
PROXY_IDS = "image_ids_proxy.txt"  # ILSVRC: a smaller training list, used instead of image_ids.txt on request


def _parse_rows(path: Path, columns: int, expected: str, ids: dict[str, int]) -> list[tuple[str, list[str]]]:
    rows = []
    for number, line in read_lines(path, path.name):
        parts = line.split(",")
        if len(parts) != columns:
            raise ValueError(f"{path}:{number}: malformed line {line!r}; expected {expected!r}")
        if parts[0] not in ids:
            raise ValueError(f"{path}:{number}: image {parts[0]!r} is not listed in image_ids.txt")
        rows.append((parts[0], parts[1:]))
    return rows


def _parse_ints(path: Path, image_id: str, values: list[str], expected: str) -> list[int]:
    numbers = []
    for value in values:
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not np.isfinite(number) or not number.is_integer():
            raise ValueError(
                f"{path}: image {image_id!r}: malformed values {','.join(values)!r}; expected {expected!r}"
            )
        numbers.append(int(number))
    return numbers


def _read_ids(ids_file: Path) -> dict[str, int]:
    image_ids: dict[str, int] = {}
    for number, line in read_lines(ids_file, ids_file.name):
        if "," in line:
            raise ValueError(f"{ids_file}:{number}: malformed line {line!r}; expected '<path>'")
        if line in image_ids:
            raise ValueError(f"{ids_file}:{number}: image {line!r} appears twice")
        image_ids[line] = len(image_ids)
    return image_ids


def _load_split(split_dir: Path, image_root: Path, verify_images: bool, *, proxy: bool = False,
                boxes_file: bool = True) -> dict:
    ids_file = split_dir / "image_ids.txt"
    image_ids = _read_ids(ids_file)
    keep = image_ids
    if proxy:
        proxy_file = split_dir / PROXY_IDS
        if not proxy_file.is_file():
            raise FileNotFoundError(f"{proxy_file}: the proxy image list is missing")
        keep = _read_ids(proxy_file)
        for number, line in read_lines(proxy_file, proxy_file.name):
            if line not in image_ids:
                raise ValueError(f"{proxy_file}:{number}: image {line!r} is not listed in image_ids.txt")

    labels: dict[str, int] = {}
    labels_file = split_dir / "class_labels.txt"
    for image_id, values in _parse_rows(labels_file, 2, "<path>,<label>", image_ids):
        if image_id in labels:
            raise ValueError(f"{labels_file}: image {image_id!r} appears twice")
        (label,) = _parse_ints(labels_file, image_id, values, "<path>,<label>")
        if label < 0:
            raise ValueError(f"{labels_file}: image {image_id!r} has a negative label {label}")
        labels[image_id] = label
    missing = [key for key in keep if key not in labels]
    if missing:
        raise ValueError(f"image {missing[0]!r} is in {ids_file} but missing from {labels_file}")

    sizes: dict[str, tuple[int, int]] | None = None
    sizes_file = split_dir / "image_sizes.txt"
    if sizes_file.is_file():
        sizes = {}
        for image_id, values in _parse_rows(sizes_file, 3, "<path>,<width>,<height>", image_ids):
            width, height = _parse_ints(sizes_file, image_id, values, "<path>,<width>,<height>")
            if width <= 0 or height <= 0:
                raise ValueError(f"{sizes_file}: image {image_id!r} has size {width}x{height}")
            sizes[image_id] = (width, height)
        missing = [key for key in keep if key not in sizes]
        if missing:
            raise ValueError(f"image {missing[0]!r} is in {ids_file} but missing from {sizes_file}")

    boxes: dict[str, list[list[int]]] = {key: [] for key in image_ids}
    boxes_path = split_dir / "localization.txt"
    has_boxes = boxes_file and boxes_path.is_file()
    if has_boxes:
        for image_id, values in _parse_rows(boxes_path, 5, "<path>,<x0>,<y0>,<x1>,<y1>", image_ids):
            boxes[image_id].append(_parse_ints(boxes_path, image_id, values, "<path>,<x0>,<y0>,<x1>,<y1>"))
        missing = [key for key in keep if not boxes[key]]
        if missing:
            raise ValueError(f"image {missing[0]!r} is in {ids_file} but missing from {boxes_path}")
    boxes_file = boxes_path

    keys = list(keep)
    paths = [image_root / PurePosixPath(key) for key in keys]
    size_list = [sizes[key] for key in keys] if sizes is not None else None
    if verify_images:
        actual = [read_image_size(path, key) for key, path in zip(keys, paths)]
        if size_list is not None:
            for key, given, real in zip(keys, size_list, actual):
                if tuple(given) != tuple(real):
                    raise ValueError(
                        f"{sizes_file}: image {key!r} is listed as {given[0]}x{given[1]} "
                        f"but the file is {real[0]}x{real[1]}"
                    )
        size_list = actual
    box_arrays = [np.asarray(boxes[key], dtype=np.float64).reshape(-1, 4) for key in keys]
    if size_list is not None and has_boxes:
        for key, box, size in zip(keys, box_arrays, size_list):
            check_boxes_inside(box, size, f"{boxes_file}: image {key!r}")
    return {
        "image_ids": keys,
        "paths": paths,
        "labels": [labels[key] for key in keys],
        "boxes": box_arrays,
        "sizes": size_list,
    }


def load_wsol_metadata(
    metadata_dir: PathLike, image_root: PathLike, *, verify_images: bool = True,
    splits: Sequence[str] | None = None, proxy_train: bool = False, boxes: bool = True,
) -> CubMetadata:
    """Read wsolevaluation metadata.

    Args:
        metadata_dir: a folder with ``train/``, ``val/``, ``test/`` sub-folders (those present are read),
            or a single split folder holding ``image_ids.txt``.
        image_root: folder the image ids are relative to (``dataset/CUB`` in wsolevaluation).
        verify_images: check that every image exists and decodes, and that its size matches
            ``image_sizes.txt``.
        splits: read only these sub-folders (each must exist); the others, their images included, are
            never opened: ``splits=("train",)`` works with the test split absent.
        proxy_train: the train split lists the images of ``train/image_ids_proxy.txt`` (the benchmark's
            proxy training set of ILSVRC) instead of ``image_ids.txt``; the rows of the other files for
            the images left out are checked and skipped.
        boxes: read ``localization.txt`` as boxes; False for mask datasets (OpenImages), whose images then
            have no box (:mod:`wsl_image.data.masks` reads their masks).

    Returns:
        :class:`CubMetadata` with ``splits`` set and ``is_train`` = (split == "train"). Class names are the
        image folders (``001.Black_footed_Albatross``) when every class sits in one folder.
    """
    metadata_dir, image_root = Path(metadata_dir), Path(image_root)
    if not metadata_dir.is_dir():
        raise FileNotFoundError(f"metadata folder not found: {metadata_dir}")
    if not image_root.is_dir():
        raise FileNotFoundError(f"image root not found: {image_root}")
    if splits is not None:
        unknown = sorted(set(splits) - set(SPLITS))
        if unknown or not splits:
            raise ValueError(f"wsolevaluation splits are {', '.join(SPLITS)}, got {list(splits)}")
    if (metadata_dir / "image_ids.txt").is_file():
        name = metadata_dir.name if metadata_dir.name in SPLITS else "test"
        split_dirs = [(name, metadata_dir)]
    elif splits is not None:
        split_dirs = [(name, metadata_dir / name) for name in SPLITS if name in splits]
        for name, folder in split_dirs:
            if not (folder / "image_ids.txt").is_file():
                raise FileNotFoundError(f"{folder}: the {name} split of the wsolevaluation metadata is missing "
                                        "(no image_ids.txt)")
    else:
        split_dirs = [(name, metadata_dir / name) for name in SPLITS if (metadata_dir / name).is_dir()]
        if not split_dirs:
            raise FileNotFoundError(
                f"{metadata_dir} holds neither image_ids.txt nor train/, val/ or test/ sub-folders"
            )
    fields = ("image_ids", "paths", "labels", "boxes", "sizes", "splits")
    merged: dict[str, list] = {key: [] for key in fields}
    all_sizes_known = True
    seen: dict[str, str] = {}
    for name, folder in split_dirs:
        part = _load_split(folder, image_root, verify_images, proxy=proxy_train and name == "train",
                           boxes_file=boxes)
        for key in part["image_ids"]:
            if key in seen:
                raise ValueError(f"image {key!r} is listed in both the {seen[key]} and the {name} split")
            seen[key] = name
        for field in ("image_ids", "paths", "labels", "boxes"):
            merged[field].extend(part[field])
        if part["sizes"] is None:
            all_sizes_known = False
        else:
            merged["sizes"].extend(part["sizes"])
        merged["splits"].extend([name] * len(part["image_ids"]))

    num_classes = max(merged["labels"], default=-1) + 1
    folders: dict[int, set[str]] = {}
    for key, label in zip(merged["image_ids"], merged["labels"]):
        folders.setdefault(label, set()).add(str(PurePosixPath(key).parent))
    class_names = []
    for label in range(num_classes):
        names = sorted(folders.get(label, set()))
        single_folder = len(names) == 1 and names[0] != "."
        class_names.append(names[0] if single_folder else f"class_{label:03d}")
    splits = np.asarray(merged["splits"], dtype=object)
    return CubMetadata(
        image_ids=merged["image_ids"],
        paths=merged["paths"],
        labels=np.asarray(merged["labels"], dtype=np.int64),
        boxes=merged["boxes"],
        is_train=splits == "train",
        class_names=class_names,
        sizes=np.asarray(merged["sizes"], dtype=np.int64) if all_sizes_known else None,
        splits=splits,
    )


def write_wsol_metadata(meta: CubMetadata, metadata_dir: PathLike) -> Path:
    """Write ``meta`` as wsolevaluation metadata, one sub-folder per split (files written atomically).

    Image ids are written as given; they must be paths relative to the image root. Boxes are rounded to
    integer pixels. Needs ``meta.splits`` and ``meta.sizes``.
    """
    metadata_dir = Path(metadata_dir)
    if meta.splits is None or meta.sizes is None:
        raise ValueError("write_wsol_metadata needs metadata with splits and sizes")
    for name in meta.available_splits():
        part = meta.split(name)
        folder = metadata_dir / name
        atomic_write_text(folder / "image_ids.txt", "".join(f"{key}\n" for key in part.image_ids))
        atomic_write_text(
            folder / "class_labels.txt",
            "".join(f"{key},{int(label)}\n" for key, label in zip(part.image_ids, part.labels)),
        )
        atomic_write_text(
            folder / "image_sizes.txt",
            "".join(f"{key},{int(w)},{int(h)}\n" for key, (w, h) in zip(part.image_ids, part.sizes)),
        )
        lines = []
        for key, boxes in zip(part.image_ids, part.boxes):
            for x0, y0, x1, y1 in np.rint(boxes).astype(np.int64):
                lines.append(f"{key},{x0},{y0},{x1},{y1}\n")
        atomic_write_text(folder / "localization.txt", "".join(lines))
    return metadata_dir
