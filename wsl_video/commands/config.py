"""``wsl-video config``: the default run configuration as commented YAML, to start a ``--config`` file from."""

from __future__ import annotations

import argparse

HELP = "print the default run configuration as YAML with a comment per key (start a --config file from it)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    from wsl_video.config import config_yaml

    print(config_yaml(), end="")
    return 0
