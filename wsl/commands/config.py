"""``config``: the tool's default configuration as commented YAML, to start a ``--config`` file from."""

from __future__ import annotations

import argparse
import importlib

HELP = "print the default configuration as YAML with a comment per key (start a --config file from it)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    config = importlib.import_module(f"{args.tool.package}.config")
    print(config.config_yaml(), end="")
    return 0
