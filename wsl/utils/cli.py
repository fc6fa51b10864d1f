"""A tiny sub-command runner shared by ``wsl-video`` and ``wsl-image``.

Each sub-command lives in its own module that defines ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int | None``. Bad input (``ValueError``, ``FileNotFoundError``, ``KeyError``)
is reported as one line on stderr with exit status 2, never as a traceback; warnings are printed as
one line each (``<prog>: warning: <message>``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from typing import Mapping, Sequence

__all__ = ["run_cli"]


def run_cli(prog: str, description: str, commands: Mapping[str, str], argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen sub-command.

    Args:
        prog: program name shown in help and error messages.
        description: one-paragraph description for ``--help``.
        commands: sub-command name -> module path (imported lazily, only the chosen one runs).
        argv: arguments without the program name; ``sys.argv[1:]`` when None.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    modules = {}
    for name, module_path in commands.items():
        module = importlib.import_module(module_path)
        modules[name] = module
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command_parser)
    args = parser.parse_args(argv)

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"{prog}: warning: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = show_warning
            status = modules[args.command].run(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, KeyError, OSError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"{prog} {args.command}: error: {message}", file=sys.stderr)
        return 2
    return int(status or 0)
