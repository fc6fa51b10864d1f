"""Train a CAM model with MAA on a timm backbone with a plain PyTorch loop; localize and score with MaxBoxAccV2.

    python examples/train_image.py [--epochs 15] [--backbone test_resnet] [--data CUB_200_2011]

The pieces, each usable on its own:

* ``wsl_image.sim.make_cub_sim``: ``cub-sim``, small synthetic birds in the exact CUB-200-2011 layout
  (``--data`` takes a real CUB_200_2011 folder instead);
* ``wsl_image.data.load_cub`` / ``CubDataset``: the official train / test split, images and boxes;
* ``timm.create_model(..., num_classes=0, global_pool="")``: any timm CNN as a feature map (B, C, h, w);
* ``wsl.build_aggregator("maa", channels=C)``: marginalized average aggregation over the positions,
  in place of global average pooling;
* ``wsl.class_activation``: the localization map ``p_s * sigmoid(w_c . f_s + b_c)`` (paper Eq. 14);
* ``wsl.metrics.BoxAccuracy(multi_contour=True)``: MaxBoxAccV2 (Choe et al., CVPR 2020).

The model trains from scratch (no pretrained weights), so the dataset is small and easy; ``wsl-image
train`` / ``wsl-image demo`` run the same model with run folders, evaluation protocols and overlays.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F
from torch import nn

import wsl
from wsl.metrics import BoxAccuracy
from wsl_image.data import CubDataset, collate_boxes, load_cub
from wsl_image.sim import make_cub_sim


class MAACam(nn.Module):
    """timm feature map -> aggregator over the positions -> linear classifier; maps by class activation."""

    def __init__(self, backbone: str, num_classes: int, aggregator: str = "maa"):
        super().__init__()
        self.backbone = timm.create_model(backbone, pretrained=False, num_classes=0, global_pool="",
                                          output_stride=16)
        channels = self.backbone.num_features
        self.aggregator = wsl.build_aggregator(aggregator, channels=channels)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (Tensor[B, 3, H, W]) -> logits (Tensor[B, K])."""
        return self.classifier(self.aggregator(self.backbone(images)).pooled)

    @torch.no_grad()
    def localize(self, images: torch.Tensor, classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (Tensor[B, K]) and the maps of ``classes`` (Tensor[B]) at the image size, in [0, 1]."""
        features = self.backbone(images)  # (B, C, h, w)
        logits = self.classifier(self.aggregator(features).pooled)
        attention = self.aggregator.attention_map(features)  # (B, h, w), None for plain pooling
        maps = wsl.class_activation(features, self.classifier.weight, self.classifier.bias, attention)
        maps = maps[torch.arange(len(classes)), classes]  # (B, h, w)
        maps = F.interpolate(maps[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        low = maps.flatten(1).min(1).values[:, None, None]
        high = maps.flatten(1).max(1).values[:, None, None]
        return logits, (maps - low) / (high - low).clamp_min(1e-12)


def center_gaussian(size: int) -> np.ndarray:
    """The classic WSOL baseline: a centred Gaussian map, the same for every image."""
    axis = np.linspace(-1, 1, size)
    return np.exp(-(axis[None, :] ** 2 + axis[:, None] ** 2) / (2 * 0.5**2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="a CUB_200_2011 folder (default: cub-sim in a temp folder)")
    parser.add_argument("--backbone", default="test_resnet", help="timm model, from scratch (default test_resnet)")
    parser.add_argument("--aggregator", default="maa", choices=wsl.list_aggregators(include_aliases=True))
    parser.add_argument("--epochs", type=int, default=15, help="training epochs (default 15)")
    parser.add_argument("--image-size", type=int, default=112, help="input size (default 112)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: the small model gains little from more on a busy CPU)")
    args = parser.parse_args()

    tic = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.data) if args.data else make_cub_sim(scratch, seed=args.seed, wsol_metadata=False)
        meta = load_cub(root)
        train_set = CubDataset(meta.split("train"), train=True, image_size=args.image_size)
        test_set = CubDataset(meta.split("test"), train=False, image_size=args.image_size)
        print(f"{root}: {len(train_set)} training and {len(test_set)} test images, {meta.num_classes} classes")
        generator = torch.Generator().manual_seed(args.seed)
        train_loader = torch.utils.data.DataLoader(train_set, batch_size=32, shuffle=True, drop_last=True,
                                                   generator=generator, collate_fn=collate_boxes)
        test_loader = torch.utils.data.DataLoader(test_set, batch_size=64, collate_fn=collate_boxes)

        model = MAACam(args.backbone, meta.num_classes, args.aggregator)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
        steps = args.epochs * len(train_loader)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
        for epoch in range(1, args.epochs + 1):
            model.train()
            losses, correct = [], 0
            for batch in train_loader:
                logits = model(batch["image"])
                loss = F.cross_entropy(logits, batch["label"])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                losses.append(loss.item())
                correct += (logits.argmax(1) == batch["label"]).sum().item()
            print(f"epoch {epoch}: loss {np.mean(losses):.3f}, train accuracy "
                  f"{100 * correct / (len(train_loader) * 32):.1f}%")

        model.eval()
        maxboxacc, baseline, random_maps = (BoxAccuracy(multi_contour=True) for _ in range(3))
        rng = np.random.default_rng(args.seed)
        grid = model.backbone(torch.zeros(1, 3, args.image_size, args.image_size)).shape[-2:]
        correct = 0
        for batch in test_loader:  # maps of the ground-truth class, as MaxBoxAccV2 prescribes
            logits, maps = model.localize(batch["image"], batch["label"])
            boxes = [b.numpy() for b in batch["boxes"]]
            maxboxacc.update(maps.numpy(), boxes)
            baseline.update([center_gaussian(args.image_size)] * len(boxes), boxes)
            noise = torch.from_numpy(rng.random((len(boxes), 1, *grid)))  # a random map at the model's resolution
            random_maps.update(F.interpolate(noise, size=maps.shape[-2:], mode="bilinear")[:, 0].numpy(), boxes)
            correct += (logits.argmax(1) == batch["label"]).sum().item()

    print(f"\nMaxBoxAccV2 (%) on the {len(test_set)} test images (best CAM threshold, IoU 0.3 / 0.5 / 0.7):")
    print("| map | IoU 0.3 | IoU 0.5 | IoU 0.7 | MaxBoxAccV2 |")
    print("|---|---:|---:|---:|---:|")
    rows = ((f"{args.aggregator} on {args.backbone}, {args.epochs} epochs", maxboxacc),
            ("centre Gaussian (baseline)", baseline), (f"random {grid[0]}x{grid[1]} map (chance)", random_maps))
    for name, metric in rows:
        result = metric.compute()
        print(f"| {name} | {100 * result[0.3]:.1f} | {100 * result[0.5]:.1f} | {100 * result[0.7]:.1f} "
              f"| {100 * result['mean']:.1f} |")
    print("(the centred map is the same for every image: a strong prior where objects are large and central, "
          "as in cub-sim)")
    print(f"top-1 classification accuracy: {100 * correct / len(test_set):.1f}%  ({time.time() - tic:.0f} s)")


if __name__ == "__main__":
    main()
