"""``wsl-image localize``: boxes and overlays of a trained model on your own images."""

from __future__ import annotations

import argparse

HELP = "predict the class and the object box of your own images with a trained run (JSON + overlay PNGs)"
REQUIRES = ("timm", "torchvision", "PIL", "cv2")  # optional modules, checked before the command runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run folder written by `wsl-image train`")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, ...)")
    parser.add_argument("--out", required=True, help="output folder: boxes.json and one overlay PNG per image")
    parser.add_argument(
        "--cam-threshold", type=float, help="CAM threshold (default: the run's val-chosen one, else 0.2)"
    )
    parser.add_argument("--topk", type=int, default=1, help="localize the top-k predicted classes (default 1)")
    parser.add_argument("--multi-contour", action="store_true", help="one box per contour instead of the largest")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="device (default auto)")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from wsl.utils.device import resolve_device
    from wsl.utils.io import atomic_write_json
    from wsl_image.run import load_run

    if args.topk < 1:
        raise ValueError(f"--topk must be >= 1, got {args.topk}")
    missing = [image for image in args.images if not Path(image).is_file()]
    if missing:
        raise FileNotFoundError(f"image not found: {missing[0]}")
    run_dir = Path(args.run)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    device = resolve_device(args.device)
    model, config = load_run(run_dir, device)
    threshold = args.cam_threshold
    if threshold is None:
        threshold = config.cam_threshold
        metrics_path = run_dir / "metrics.json"
        if metrics_path.is_file():
            chosen = json.loads(metrics_path.read_text(encoding="utf-8")).get("val_cam_threshold")
            threshold = chosen if chosen is not None else threshold
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"--cam-threshold must be in [0, 1], got {threshold}")
    out = Path(args.out)
    results = localize_images(
        model,
        args.images,
        out,
        image_size=config.image_size,
        cam_threshold=threshold,
        topk=args.topk,
        multi_contour=args.multi_contour,
        device=device,
        class_names=getattr(model, "class_names", None),
    )
    atomic_write_json(out / "boxes.json", results)
    for result in results:
        best = result["predictions"][0]
        name = best["class_name"] if best["class_name"] is not None else f"class {best['class']}"  # old runs
        print(f"{result['image']}: {name} (p={best['probability']:.2f}) box {best['boxes'][0]}")
    print(f"wrote {out / 'boxes.json'} and {len(results)} overlay(s)")
    return 0


def localize_images(
    model,
    paths,
    out,
    *,
    image_size,
    cam_threshold,
    topk=1,
    multi_contour=False,
    device="cpu",
    class_names=None,
) -> list:
    """Predict, localize and draw each image; returns one JSON-ready record per image.

    Boxes are ``(x0, y0, x1, y1)`` in pixels of the original image.
    """
    from pathlib import Path

    import cv2
    import numpy as np
    from tqdm import tqdm

    from wsl.localization import boxes_from_map
    from wsl_image.data import build_transforms, load_rgb
    from wsl_image.overlay import GREEN, draw_boxes, overlay_heatmap, save_png

    transform = build_transforms(False, image_size)
    images = [load_rgb(path, Path(path).name) for path in paths]  # fail before any work on a bad file
    results = []
    out = Path(out)
    used_names: set = set()
    for path, image in tqdm(list(zip(paths, images)), desc="localize", disable=len(images) < 2, leave=False):
        tensor = transform(image).unsqueeze(0).to(device)
        image = np.asarray(image, dtype=np.uint8)
        height, width = image.shape[:2]
        logits, maps = model.localize(tensor, topk=topk)
        probabilities = logits.float().softmax(dim=1)[0]
        classes = probabilities.topk(min(topk, probabilities.numel())).indices
        predictions = []
        canvas = None
        for rank, class_index in enumerate(classes.tolist()):
            heatmap = cv2.resize(maps[0, rank].cpu().numpy(), (width, height), interpolation=cv2.INTER_LINEAR)
            heatmap = np.clip(heatmap, 0.0, 1.0)
            boxes = boxes_from_map(heatmap, cam_threshold, multi_contour=multi_contour)
            predictions.append(
                {
                    "class": int(class_index),
                    "class_name": class_names[class_index] if class_names else None,
                    "probability": float(probabilities[class_index]),
                    "boxes": np.asarray(boxes, dtype=float).reshape(-1, 4).round(1).tolist(),
                }
            )
            if rank == 0:
                canvas = draw_boxes(overlay_heatmap(image, heatmap), boxes, GREEN)
        name = Path(path).stem
        stem = name
        suffix = 1
        while stem in used_names:
            suffix += 1
            stem = f"{name}_{suffix}"
        used_names.add(stem)
        overlay_path = save_png(out / f"{stem}_overlay.png", canvas)
        results.append(
            {
                "image": str(path),
                "width": width,
                "height": height,
                "cam_threshold": cam_threshold,
                "predictions": predictions,
                "overlay": str(overlay_path),
            }
        )
    return results
