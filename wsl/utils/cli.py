"""A tiny sub-command runner shared by ``wsl-video`` and ``wsl-image``.

Each sub-command lives in its own module that defines ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int | None``, and optionally ``REQUIRES`` (optional modules checked before it runs).
Bad input (``ValueError``, ``FileNotFoundError``, ``KeyError``) is reported as one line on stderr with
exit status 2, never as a traceback; so is a missing optional dependency, naming the extra that installs
it (``<prog> <command>: needs the [video] extra (missing module 'av'): pip install "wsl[video]"``);
warnings are printed as one line each (``<prog>: warning: <message>``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from typing import Mapping, Sequence

from wsl.utils.extras import MissingExtra, extra_for, needs_extra, require

__all__ = ["run_cli", "build_parser", "DefaultsHelpFormatter", "format_aggregators"]


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """States the default of every option whose help does not already: `` (default: VALUE)``.

    Options without a default (None), flags (False) and empty lists are left as they are; lists are shown
    space-separated, as they are typed.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (not action.option_strings or "default" in text.lower() or default is None or default is False
                or default == argparse.SUPPRESS or (isinstance(default, (list, tuple)) and not default)):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})".lstrip()


def build_parser(prog: str, description: str, commands: Mapping[str, str]) -> argparse.ArgumentParser:
    """The parser of ``prog`` with one sub-parser per command (``commands``: name -> module path)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_path in commands.items():
        module = importlib.import_module(module_path)
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP,
                                        formatter_class=DefaultsHelpFormatter)
        command_parser.set_defaults(_command_module=module)
        module.add_arguments(command_parser)
    return parser


def run_cli(prog: str, description: str, commands: Mapping[str, str], argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen sub-command.

    Args:
        prog: program name shown in help and error messages.
        description: one-paragraph description for ``--help``.
        commands: sub-command name -> module path (the modules define ``HELP``, ``add_arguments`` and ``run``).
        argv: arguments without the program name; ``sys.argv[1:]`` when None.
    """
    args = build_parser(prog, description, commands).parse_args(argv)
    module = args._command_module
    del args._command_module

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"{prog}: warning: {message}", file=sys.stderr)

    try:
        for name in getattr(module, "REQUIRES", ()):
            require(name, extra_for(name, prog) or "all", f"{prog} {args.command}")
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = show_warning
            status = module.run(args)
    except ModuleNotFoundError as error:
        extra = error.extra if isinstance(error, MissingExtra) else extra_for(error.name, prog)
        if extra is None:
            raise
        print(f"{prog} {args.command}: {needs_extra(error.name.split('.')[0], extra)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, KeyError, OSError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"{prog} {args.command}: error: {message}", file=sys.stderr)
        return 2
    return int(status or 0)


def format_aggregators(records: Sequence[Mapping]) -> str:
    """One line per record of :func:`wsl.aggregators.describe_aggregators`: name (aliases), description, origin."""
    names = [record["name"] + (f" ({', '.join(record['aliases'])})" if record["aliases"] else "")
             for record in records]
    width = max((len(name) for name in names), default=0)
    lines = []
    for name, record in zip(names, records):
        origin = "" if record["origin"] == "built-in" else f" [{record['origin']}]"
        lines.append(f"{name:<{width}}  {record['description'] or '(no description)'}{origin}")
    return "\n".join(lines)
