"""``cub-sim``: a small synthetic dataset in the exact CUB-200-2011 layout.

Every image shows one "bird" on a cluttered background. The bird is a body (a large textured ellipse
with a wing and a tail) drawn from one shared distribution, plus a small head that tells the classes
apart by shape, colour and texture together. As in real birds the rest of the body carries a weaker,
noisy cue too (``body_cue``: the wing shows the class's own marking with probability ``body_cue`` and
any marking otherwise; body hue and wing shade lean slightly per class, buried in per-image noise).
A classifier can reach high accuracy while looking at the head alone, and a map that covers only the
head localizes badly: the head box has an IoU of roughly 0.05-0.2 with the bird's box.

Images have varied sizes (75-100 % of ``image_size`` per side), positions and scales; the boxes are
the exact extent of the drawn bird. Everything is deterministic by ``seed``: each image has its own
random stream keyed by ``(seed, split, class, index)``.

Written files (all atomically)::

    <out>/CUB_200_2011/images/<NNN.Class_name>/<Class_Name>_<NNNN>_<id>.jpg
    <out>/CUB_200_2011/{images,image_class_labels,train_test_split,bounding_boxes,classes}.txt
    <out>/CUB_200_2011/sim_part_boxes.txt   # <image_id> <x> <y> <w> <h> of the distinctive head
    <out>/CUB_200_2011/sim_config.json
    <out>/metadata/CUB/{train,val,test}/     # wsolevaluation metadata (``wsol_metadata=True``)

Validation images (the counterpart of CUBV2) live in the same class folders but are listed only in
the wsolevaluation ``val`` split, never in the official text files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

__all__ = ["make_cub_sim", "render_sample", "sample_rng", "class_spec", "SimSample", "SHAPES", "COLOURS",
           "TEXTURES"]

PathLike = Union[str, Path]

SHAPES = ("circle", "triangle", "square", "diamond", "star", "cross")
# name, RGB: saturated hues that the muted background and the earthy body never use.
COLOURS = (
    ("Red", (220, 30, 40)),
    ("Blue", (30, 70, 230)),
    ("Yellow", (240, 215, 20)),
    ("Green", (30, 190, 60)),
    ("Magenta", (215, 40, 200)),
    ("Cyan", (20, 210, 225)),
)
TEXTURES = ("plain", "striped", "dotted", "checkered", "ringed", "barred")
_SPLIT_CODES = {"train": 0, "test": 1, "val": 2}


@dataclass
class SimSample:
    """One rendered image: ``image`` (ndarray[H, W, 3] uint8 RGB), ``object_mask`` and ``part_mask``
    (ndarray[H, W] bool) of the whole bird and of its head."""

    image: np.ndarray
    object_mask: np.ndarray
    part_mask: np.ndarray

    @staticmethod
    def _xywh(mask: np.ndarray) -> tuple[int, int, int, int]:
        ys, xs = np.nonzero(mask)
        return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)

    @property
    def box_xywh(self) -> tuple[int, int, int, int]:
        """CUB ``(x, y, width, height)`` of the bird."""
        return self._xywh(self.object_mask)

    @property
    def part_box_xywh(self) -> tuple[int, int, int, int]:
        """CUB ``(x, y, width, height)`` of the head."""
        return self._xywh(self.part_mask)


def class_spec(class_index: int) -> dict:
    """Head shape, colour and texture of a class; the (shape, colour) pair is unique for up to 36 classes."""
    if not 0 <= class_index < len(SHAPES) * len(COLOURS):
        raise ValueError(f"class_index must lie in [0, {len(SHAPES) * len(COLOURS)}), got {class_index}")
    cycle = class_index // len(SHAPES)
    colour_name, rgb = COLOURS[(class_index + cycle) % len(COLOURS)]
    shape = SHAPES[class_index % len(SHAPES)]
    texture = TEXTURES[(class_index + 2 * cycle) % len(TEXTURES)]
    return {
        "shape": shape,
        "colour": colour_name,
        "rgb": rgb,
        "texture": texture,
        "wing_marking": TEXTURES[(class_index + 3) % len(TEXTURES)],
        # where the class's body colour leans inside the shared range, in [-1, 1]
        "body_offset": float(((class_index * 0.6180339887) % 1.0) * 2.0 - 1.0),
        "name": f"{class_index + 1:03d}.{colour_name}_{shape}_{texture}",
    }


def sample_rng(seed: int, split: str, class_index: int, index: int) -> np.random.Generator:
    """The random stream of one image."""
    return np.random.default_rng([int(seed), _SPLIT_CODES[split], int(class_index), int(index)])


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    import colorsys

    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v)) * 255.0


def _background(rng: np.random.Generator, width: int, height: int, clutter: int) -> np.ndarray:
    import cv2

    c0 = _hsv_to_rgb(rng.random(), rng.uniform(0.05, 0.35), rng.uniform(0.35, 0.85))
    c1 = _hsv_to_rgb(rng.random(), rng.uniform(0.05, 0.35), rng.uniform(0.35, 0.85))
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (np.cos(angle) * xx / width + np.sin(angle) * yy / height)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    image = (1 - ramp)[..., None] * c0 + ramp[..., None] * c1
    blotches = cv2.resize(rng.normal(0, 16, (5, 5, 3)).astype(np.float32), (width, height),
                          interpolation=cv2.INTER_CUBIC)
    image = image + blotches
    for _ in range(clutter):
        colour = _hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.4), rng.uniform(0.2, 0.9)).tolist()
        kind = rng.integers(0, 4)
        canvas = np.ascontiguousarray(np.clip(image, 0, 255).astype(np.uint8))
        if kind == 0:  # branch-like line
            p0 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(canvas, p0, p1, colour, int(rng.integers(1, 4)), cv2.LINE_AA)
        elif kind == 1:  # leaf / pebble
            centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            axes = (int(rng.integers(2, max(3, width // 8))), int(rng.integers(2, max(3, height // 10))))
            cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
        elif kind == 2:  # rock polygon
            centre = np.array([rng.integers(0, width), rng.integers(0, height)])
            points = centre + rng.integers(-width // 8, width // 8 + 1, (int(rng.integers(3, 7)), 2))
            cv2.fillPoly(canvas, [points.astype(np.int32)], colour, cv2.LINE_AA)
        else:  # ring
            centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.circle(canvas, centre, int(rng.integers(3, max(4, width // 7))), colour, 1, cv2.LINE_AA)
        image = canvas.astype(np.float32)
    image = image + rng.normal(0, 6, image.shape)
    return image.astype(np.float32)


def _texture(kind: str, rng: np.random.Generator, shape: tuple[int, int], period: float) -> np.ndarray:
    """A pattern in [0, 1] (1 = pattern colour) of ``shape`` (H, W)."""
    height, width = shape
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    u = np.cos(angle) * xx + np.sin(angle) * yy
    v = -np.sin(angle) * xx + np.cos(angle) * yy
    phase = rng.uniform(0, period)
    if kind == "plain":
        return np.zeros(shape, np.float32)
    if kind == "striped":
        return (((u + phase) % period) < period / 2).astype(np.float32)
    if kind == "barred":
        return (((u + phase) % (1.6 * period)) < period / 3).astype(np.float32) * 1.0
    if kind == "checkered":
        return ((((u + phase) // (period / 2)) + ((v + phase) // (period / 2))) % 2).astype(np.float32)
    if kind == "dotted":
        du = ((u + phase) % period) - period / 2
        dv = ((v + phase) % period) - period / 2
        return ((du**2 + dv**2) < (period / 3.2) ** 2).astype(np.float32)
    if kind == "ringed":
        cy, cx = height / 2, width / 2
        radius = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        return (((radius + phase) % period) < period / 2).astype(np.float32)
    raise ValueError(f"unknown texture {kind!r}")


def _shape_mask(shape: str, centre: tuple[float, float], radius: float, angle: float, size: tuple[int, int]):
    import cv2

    height, width = size
    mask = np.zeros((height, width), np.uint8)
    cx, cy = centre
    if shape == "circle":
        cv2.circle(mask, (int(round(cx)), int(round(cy))), max(2, int(round(radius))), 1, -1)
        return mask.astype(bool)
    if shape == "triangle":
        corners = [(1.0, a) for a in (0, 2 * np.pi / 3, 4 * np.pi / 3)]
    elif shape == "square":
        corners = [(1.0, a) for a in np.arange(4) * np.pi / 2 + np.pi / 4]
    elif shape == "diamond":
        corners = [(1.0 if k % 2 == 0 else 0.6, k * np.pi / 2) for k in range(4)]
    elif shape == "star":
        corners = [(1.0 if k % 2 == 0 else 0.45, k * np.pi / 5) for k in range(10)]
    elif shape == "cross":
        corners = []
        for k in range(4):
            base = k * np.pi / 2
            corners += [(1.0, base - 0.33), (1.0, base + 0.33), (0.47, base + np.pi / 4)]
    else:
        raise ValueError(f"unknown shape {shape!r}")
    points = np.array([(cx + radius * r * np.cos(a + angle), cy + radius * r * np.sin(a + angle))
                       for r, a in corners])
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask.astype(bool)


def _bird_layers(
    rng: np.random.Generator, spec: dict, width: int, height: int, scale: float, body_cue: float
):
    """Colour layer, bird mask and head mask of a bird centred in a (height, width) canvas."""
    import cv2

    size = (height, width)
    cx, cy = width / 2.0, height / 2.0
    semi_major = scale * min(width, height) / 2.0
    semi_minor = semi_major * rng.uniform(0.42, 0.6)
    angle = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])

    def ellipse(centre, axes, theta):
        mask = np.zeros(size, np.uint8)
        cv2.ellipse(mask, (int(round(centre[0])), int(round(centre[1]))),
                    (max(1, int(round(axes[0]))), max(1, int(round(axes[1])))),
                    float(np.degrees(theta)), 0, 360, 1, -1)
        return mask.astype(bool)

    body = ellipse((cx, cy), (semi_major, semi_minor), angle)
    side = rng.choice([-1.0, 1.0])
    wing_centre = np.array([cx, cy]) + normal * side * semi_minor * 0.25 - direction * semi_major * 0.1
    wing = ellipse(wing_centre, (semi_major * 0.7, semi_minor * 0.55), angle + side * 0.15)
    tail_root = np.array([cx, cy]) - direction * semi_major * 0.8
    tail_tip = tail_root - direction * semi_major * rng.uniform(0.35, 0.55)
    spread = normal * semi_minor * rng.uniform(0.35, 0.6)
    tail = np.zeros(size, np.uint8)
    cv2.fillPoly(tail, [np.round([tail_root + spread * 0.3, tail_tip + spread, tail_tip - spread,
                                  tail_root - spread * 0.3]).astype(np.int32)], 1)
    tail = tail.astype(bool)
    head_radius = semi_minor * rng.uniform(0.6, 0.78)
    head_centre = np.array([cx, cy]) + direction * (semi_major + head_radius * 0.45)
    head = _shape_mask(spec["shape"], tuple(head_centre), head_radius, rng.uniform(0, 2 * np.pi), size)

    # Body: earthy hues and soft feather stripes for every class; with body_cue > 0 each class leans
    # towards its own part of the hue range and wing shade, a weak cue buried in per-image noise.
    hue = 0.095 + 0.045 * body_cue * spec["body_offset"] + rng.normal(0.0, 0.02)
    plumage = _hsv_to_rgb(float(np.clip(hue, 0.03, 0.16)), rng.uniform(0.35, 0.7), rng.uniform(0.35, 0.7))
    feathers = _texture("striped", rng, size, period=rng.uniform(3.0, 5.0))
    layer = plumage * (0.85 + 0.3 * feathers[..., None])
    wing_colour = plumage * float(np.clip(0.65 + 0.1 * body_cue * spec["body_offset"] + rng.normal(0, 0.05),
                                          0.45, 0.85))
    # Wing markings: the class's own marking with probability body_cue, otherwise any marking.
    marking = spec["wing_marking"] if rng.random() < body_cue else TEXTURES[int(rng.integers(len(TEXTURES)))]
    marks = _texture(marking, rng, size, period=max(3.0, semi_minor * 0.45))
    wing_layer = wing_colour * (0.9 + 0.2 * feathers[..., None])
    cream = np.array([235.0, 225.0, 200.0])
    wing_layer = wing_layer * (1 - 0.45 * marks[..., None]) + cream * 0.45 * marks[..., None]
    layer = np.where(wing[..., None], wing_layer, layer)
    layer = np.where(tail[..., None], plumage * 0.6, layer)
    # Head: the class's colour and texture.
    class_rgb = np.clip(np.asarray(spec["rgb"], np.float64) + rng.normal(0, 10, 3), 0, 255)
    pattern = _texture(spec["texture"], rng, size, period=max(3.0, head_radius * 0.55))
    contrast = np.array([25.0, 25.0, 25.0])
    head_layer = class_rgb * (1 - 0.75 * pattern[..., None]) + contrast * 0.75 * pattern[..., None]
    layer = np.where(head[..., None], head_layer, layer)
    eye = np.zeros(size, np.uint8)
    eye_centre = head_centre + direction * head_radius * 0.25 + normal * side * head_radius * 0.3
    eye_xy = (int(round(eye_centre[0])), int(round(eye_centre[1])))
    cv2.circle(eye, eye_xy, max(1, int(head_radius * 0.15)), 1, -1)
    layer = np.where((eye.astype(bool) & head)[..., None], np.array([250.0, 250.0, 250.0]), layer)
    bird = body | wing | tail | head
    return layer.astype(np.float32), bird, head


def render_sample(
    rng: np.random.Generator,
    class_index: int,
    width: int,
    height: int,
    *,
    clutter: int = 10,
    body_cue: float = 0.5,
) -> SimSample:
    """Render one image of class ``class_index`` of size ``width x height`` (see the module docstring)."""
    if width < 32 or height < 32:
        raise ValueError(f"images must be at least 32x32, got {width}x{height}")
    spec = class_spec(class_index)
    image = _background(rng, width, height, clutter)
    scale = rng.uniform(0.42, 0.8)
    for _ in range(20):
        layer, bird, head = _bird_layers(rng, spec, width, height, scale, body_cue)
        ys, xs = np.nonzero(bird)
        inside = xs.min() > 0 and ys.min() > 0 and xs.max() < width - 1 and ys.max() < height - 1
        if inside and head.any():
            break
        scale *= 0.85
    else:  # pragma: no cover - the scale shrinks geometrically, a fit is always found
        raise RuntimeError("could not fit the bird inside the image")
    # Move the bird to a random position by an integer shift, keeping it inside the image.
    dx = int(rng.integers(-xs.min(), width - 1 - xs.max() + 1))
    dy = int(rng.integers(-ys.min(), height - 1 - ys.max() + 1))
    layer, bird, head = (np.roll(a, (dy, dx), axis=(0, 1)) for a in (layer, bird, head))
    image = np.where(bird[..., None], layer, image)
    image = image + rng.normal(0, 4, image.shape)
    return SimSample(np.clip(np.rint(image), 0, 255).astype(np.uint8), bird, head)


def _encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    import cv2

    bgr = np.ascontiguousarray(image[:, :, ::-1])
    ok, buffer = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover
        raise RuntimeError("JPEG encoding failed")
    return buffer.tobytes()


def make_cub_sim(
    out_dir: PathLike,
    *,
    seed: int = 0,
    num_classes: int = 5,
    train_per_class: int = 48,
    test_per_class: int = 24,
    val_per_class: int = 6,
    image_size: int = 112,
    clutter: int = 10,
    body_cue: float = 0.5,
    wsol_metadata: bool = True,
    jpeg_quality: int = 92,
    progress: bool = False,
) -> Path:
    """Write a cub-sim dataset under ``out_dir`` and return its ``CUB_200_2011`` folder.

    Args:
        out_dir: output folder (created).
        seed: random seed; the same arguments give byte-identical files.
        num_classes: 2 to 36 classes.
        train_per_class / test_per_class: images per class in the official train / test split.
        val_per_class: validation images per class (wsolevaluation ``val`` split only); 0 for none.
        image_size: largest image side; each side is drawn in ``[0.75, 1] * image_size``.
        clutter: background clutter elements per image.
        body_cue: strength in ``[0, 1]`` of the weak class cue in the body colour (0: the body is
            identical in distribution for every class; the head always decides).
        wsol_metadata: also write ``metadata/CUB/{train,val,test}`` in the wsolevaluation layout.
        jpeg_quality: JPEG quality (1-100).
        progress: show a progress bar.
    """
    from tqdm import tqdm

    from wsl.utils.io import atomic_write_json, atomic_write_text, atomic_writer

    if not 2 <= num_classes <= len(SHAPES) * len(COLOURS):
        raise ValueError(f"num_classes must lie in [2, {len(SHAPES) * len(COLOURS)}], got {num_classes}")
    if train_per_class < 1 or test_per_class < 1 or val_per_class < 0:
        raise ValueError(
            "train_per_class and test_per_class must be >= 1 and val_per_class >= 0, got "
            f"{train_per_class}, {test_per_class}, {val_per_class}"
        )
    if image_size < 48:
        raise ValueError(f"image_size must be >= 48, got {image_size}")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must lie in [1, 100], got {jpeg_quality}")
    if clutter < 0:
        raise ValueError(f"clutter must be >= 0, got {clutter}")
    if not 0.0 <= body_cue <= 1.0:
        raise ValueError(f"body_cue must lie in [0, 1], got {body_cue}")
    out_dir = Path(out_dir)
    root = out_dir / "CUB_200_2011"
    specs = [class_spec(k) for k in range(num_classes)]

    jobs = []  # (split, class, index within class and split)
    for k in range(num_classes):
        for split, count in (("train", train_per_class), ("test", test_per_class), ("val", val_per_class)):
            jobs += [(split, k, i) for i in range(count)]

    official, val_rows, part_rows = [], [], []
    next_id = 1
    for split, k, i in tqdm(jobs, desc="cub-sim", disable=not progress):
        rng = sample_rng(seed, split, k, i)
        low = int(round(0.75 * image_size))
        width, height = int(rng.integers(low, image_size + 1)), int(rng.integers(low, image_size + 1))
        sample = render_sample(rng, k, width, height, clutter=clutter, body_cue=body_cue)
        folder = specs[k]["name"]
        title = "_".join(part.capitalize() for part in folder.split(".", 1)[1].split("_"))
        if split == "val":
            file_name = f"{seed % 1000:03d}{k:03d}{i:05d}.jpg"  # CUBV2-style numeric name
        else:
            file_name = f"{title}_{i + 1:04d}_{next_id}.jpg"
        relative = f"{folder}/{file_name}"
        with atomic_writer(root / "images" / folder / file_name, "wb") as handle:
            handle.write(_encode_jpeg(sample.image, jpeg_quality))
        row = (relative, k, sample.box_xywh, (width, height), split)
        if split == "val":
            val_rows.append(row)
        else:
            official.append((next_id, *row))
            part_rows.append((next_id, sample.part_box_xywh))
            next_id += 1

    official.sort(key=lambda r: (r[2], r[0]))  # by class, then id, as in CUB
    atomic_write_text(root / "classes.txt", "".join(f"{k + 1} {s['name']}\n" for k, s in enumerate(specs)))
    atomic_write_text(root / "images.txt", "".join(f"{r[0]} {r[1]}\n" for r in official))
    atomic_write_text(root / "image_class_labels.txt", "".join(f"{r[0]} {r[2] + 1}\n" for r in official))
    atomic_write_text(
        root / "train_test_split.txt", "".join(f"{r[0]} {int(r[5] == 'train')}\n" for r in official)
    )
    atomic_write_text(
        root / "bounding_boxes.txt",
        "".join(f"{r[0]} {r[3][0]:.1f} {r[3][1]:.1f} {r[3][2]:.1f} {r[3][3]:.1f}\n" for r in official),
    )
    atomic_write_text(
        root / "sim_part_boxes.txt",
        "".join(f"{i} {x:.1f} {y:.1f} {w:.1f} {h:.1f}\n" for i, (x, y, w, h) in sorted(part_rows)),
    )
    config = {
        "generator": "wsl_image.sim.make_cub_sim",
        "seed": seed, "num_classes": num_classes, "train_per_class": train_per_class,
        "test_per_class": test_per_class, "val_per_class": val_per_class, "image_size": image_size,
        "clutter": clutter, "body_cue": body_cue, "jpeg_quality": jpeg_quality,
        "classes": [{k: v for k, v in s.items() if k != "rgb"} for s in specs],
    }
    atomic_write_json(root / "sim_config.json", config)

    if wsol_metadata:
        meta_root = out_dir / "metadata" / "CUB"
        groups = {"train": [r[1:] for r in official if r[5] == "train"],
                  "test": [r[1:] for r in official if r[5] == "test"], "val": val_rows}
        for split, rows in groups.items():
            if not rows:
                continue
            folder = meta_root / split
            atomic_write_text(folder / "image_ids.txt", "".join(f"{r[0]}\n" for r in rows))
            atomic_write_text(folder / "class_labels.txt", "".join(f"{r[0]},{r[1]}\n" for r in rows))
            atomic_write_text(
                folder / "image_sizes.txt", "".join(f"{r[0]},{r[3][0]},{r[3][1]}\n" for r in rows)
            )
            atomic_write_text(
                folder / "localization.txt",
                "".join(f"{r[0]},{x},{y},{x + w},{y + h}\n" for r in rows for x, y, w, h in [r[2]]),
            )
    return root
