"""``methods``: the registered training methods of the tool (plugins included), one line each."""

from __future__ import annotations

import argparse
import importlib

HELP = "list the training methods (built-in and plugins) with a one-line description; aliases in parentheses"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    from wsl.utils.cli import format_aggregators

    methods = importlib.import_module(f"{args.tool.package}.methods")
    print(format_aggregators(methods.describe_methods()))
    return 0
