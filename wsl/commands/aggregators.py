"""``aggregators``: the registered aggregator names (plugins included), one line each."""

from __future__ import annotations

import argparse

HELP = "list the aggregators (built-in and plugins) with a one-line description; aliases in parentheses"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    from wsl.aggregators import describe_aggregators
    from wsl.utils.cli import format_aggregators

    print(format_aggregators(describe_aggregators()))
    return 0
