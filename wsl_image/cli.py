"""The ``wsl-image`` command: weakly-supervised object localization (CAM with MAA)."""

from __future__ import annotations

from typing import Sequence

from wsl.utils.cli import GENERIC_COMMANDS, run_cli

COMMANDS = {
    "train": "wsl_image.commands.train",
    "evaluate": "wsl_image.commands.evaluate",
    "localize": "wsl_image.commands.localize",
    "demo": "wsl_image.commands.demo",
    "make-sim": "wsl_image.commands.make_sim",
    "tune": "wsl_image.commands.tune",
    "evaluate-maps": "wsl_image.commands.evaluate_maps",
    **GENERIC_COMMANDS,
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(
        "wsl-image",
        "Weakly-supervised object localization: CAM with marginalized average aggregation on timm backbones.",
        COMMANDS,
        argv,
        package="wsl_image",
    )
