"""Replace global average pooling in a timm CNN with marginalized average aggregation (MAA).

    python examples/plug_into_your_model.py [--backbone resnet18] [--steps 5]

The backbone returns its feature map (B, C, h, w); MAA pools it with a learned per-position
probability p, and the same p times the class scores gives a localization map (CAM).
"""

from __future__ import annotations

import argparse

import timm
import torch
from torch import nn

import wsl


class MAAClassifier(nn.Module):
    """timm backbone -> MAA over the spatial positions -> linear classifier."""

    def __init__(self, backbone: str, num_classes: int, aggregator: str = "maa"):
        super().__init__()
        self.backbone = timm.create_model(backbone, pretrained=False, num_classes=0, global_pool="")
        channels = self.backbone.num_features
        self.aggregator = wsl.build_aggregator(aggregator, channels=channels)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(images)  # (B, C, h, w)
        out = self.aggregator(features)  # pooled (B, C), attention (B, h, w)
        logits = self.classifier(out.pooled)  # (B, K)
        cams = wsl.class_activation(features, self.classifier.weight, self.classifier.bias, out.attention)
        return logits, cams  # cams (B, K, h, w)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--aggregator", default="maa", choices=wsl.list_aggregators(include_aliases=True))
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = MAAClassifier(args.backbone, num_classes=10, aggregator=args.aggregator)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images, labels = torch.randn(8, 3, 96, 96), torch.randint(0, 10, (8,))
    for step in range(args.steps):
        logits, cams = model(images)
        loss = nn.functional.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"step {step}: loss {loss.item():.3f}")
    print(f"logits {tuple(logits.shape)}, class activation maps {tuple(cams.shape)}")


if __name__ == "__main__":
    main()
