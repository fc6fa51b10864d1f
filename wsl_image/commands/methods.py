"""``wsl-image methods``: the registered training methods (plugins included), one line each."""

from __future__ import annotations

import argparse

HELP = "list the training methods (built-in and plugins) with a one-line description; aliases in parentheses"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    from wsl.utils.cli import format_aggregators
    from wsl_image.methods import describe_methods

    print(format_aggregators(describe_methods()))
    return 0
