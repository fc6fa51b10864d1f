"""The ``wsl-video`` command: weakly-supervised temporal action localization."""

from __future__ import annotations

from typing import Sequence

from wsl.utils.cli import GENERIC_COMMANDS, run_cli

COMMANDS = {
    "train": "wsl_video.commands.train",
    "detect": "wsl_video.commands.detect",
    "evaluate": "wsl_video.commands.evaluate",
    "demo": "wsl_video.commands.demo",
    "plot": "wsl_video.commands.plot",
    "make-sim": "wsl_video.commands.make_sim",
    "tune": "wsl_video.commands.tune",
    "extract": "wsl_video.commands.extract",
    "localize": "wsl_video.commands.localize",
    **GENERIC_COMMANDS,
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(
        "wsl-video",
        "Weakly-supervised temporal action localization (MAAN and baselines) from I3D features or video files.",
        COMMANDS,
        argv,
        package="wsl_video",
    )
