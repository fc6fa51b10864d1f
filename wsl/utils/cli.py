"""The command-line grammar shared by ``wsl-video`` and ``wsl-image``.

Each sub-command lives in its own module that defines ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int | None``, and optionally ``REQUIRES`` (optional modules checked before it runs);
``args.tool`` names the tool that runs it (:class:`Tool`), so one module serves both tools (the generic
commands of :data:`GENERIC_COMMANDS`).

The grammar: ``--out`` for every output, ``--device`` (:func:`add_device_argument`), ``--threads``
(:func:`add_threads_argument`, applied before the command runs), ``--quiet`` (progress off, the final
result still printed), ``--version``. A bad command line is reported in one line
(``wsl-video train: error: argument --dataset: invalid choice: 'thumos' (...); did you mean 'thumos14'?``)
with exit status 2, and so is bad input (``ValueError``, ``FileNotFoundError``, ``KeyError``, ``OSError``),
never a traceback; so is a missing optional dependency, naming the extra that installs it
(``<prog> <command>: needs the [video] extra (missing module 'av'): pip install "wsl[video]"``);
warnings are printed as one line each (``<prog>: warning: <message>``).
"""

from __future__ import annotations

import argparse
import copy
import difflib
import importlib
import os
import re
import sys
import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

from wsl.utils.extras import MissingExtra, extra_for, needs_extra, require
from wsl.utils.suggest import did_you_mean

__all__ = ["run_cli", "build_parser", "Tool", "GENERIC_COMMANDS", "CommandParser", "DefaultsHelpFormatter",
           "AliasedStore", "add_device_argument", "device_type", "add_threads_argument", "default_threads",
           "apply_threads", "did_you_mean", "parse_key_values", "format_aggregators"]

# Commands defined once in ``wsl.commands`` and registered in both tools (name -> module path).
GENERIC_COMMANDS = {
    "config": "wsl.commands.config",
    "aggregators": "wsl.commands.aggregators",
    "methods": "wsl.commands.methods",
}

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


@dataclass(frozen=True)
class Tool:
    """The tool a command runs in: ``prog`` (``wsl-video``) and its Python ``package`` (``wsl_video``).

    A generic command finds the tool's parts through ``package``: ``<package>.config.config_yaml()``.
    """

    prog: str
    package: str


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """States the default of every option whose help does not already: `` (default: VALUE)``.

    Options without a default (None), flags (False) and empty lists are left as they are; lists are shown
    space-separated, as they are typed. Deprecated spellings (:class:`AliasedStore`) are not shown.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (not action.option_strings or "default" in text.lower() or default is None or default is False
                or default == argparse.SUPPRESS or (isinstance(default, (list, tuple)) and not default)):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})".lstrip()

    def _format_action_invocation(self, action: argparse.Action) -> str:
        hidden = getattr(action, "aliases", ())
        if hidden:
            action = copy.copy(action)
            action.option_strings = [flag for flag in action.option_strings if flag not in hidden]
        return super()._format_action_invocation(action)


class AliasedStore(argparse.Action):
    """Stores the value like ``store``; the spellings in ``aliases`` still work, unlisted, with a warning.

    ``parser.add_argument("--out", "--output", action=AliasedStore, aliases=("--output",))``.
    """

    def __init__(self, option_strings, dest, aliases: Sequence[str] = (), **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.aliases = tuple(aliases)

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string in self.aliases:
            print(f"{parser.prog}: warning: {option_string} is deprecated; use {self.option_strings[0]}",
                  file=sys.stderr)
        setattr(namespace, self.dest, values)


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage block) and suggest the closest choice."""

    def error(self, message: str):
        for action in self._actions:  # "--out/--output" -> "--out": deprecated spellings stay unnamed
            hidden = getattr(action, "aliases", ())
            if hidden:
                shown = [flag for flag in action.option_strings if flag not in hidden]
                message = message.replace("/".join(action.option_strings), "/".join(shown))
        self.exit(2, f"{self.prog}: error: {message}\n")

    def _check_value(self, action: argparse.Action, value) -> None:
        if action.choices is not None and value not in action.choices:
            choices = ", ".join(map(repr, action.choices))
            message = f"invalid choice: {value!r} (choose from {choices}){did_you_mean(value, action.choices)}"
            raise argparse.ArgumentError(action, message)


def device_type(value: str) -> str:
    """argparse type of ``--device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (returned unchanged)."""
    if not _DEVICE_PATTERN.match(value):
        raise argparse.ArgumentTypeError(
            f"invalid device {value!r} (choose from {', '.join(DEVICE_CHOICES)})"
            f"{did_you_mean(value, ('auto', 'cpu', 'cuda'))}")
    return value


def add_device_argument(parser: argparse.ArgumentParser, default: str | None = "auto", **kwargs) -> argparse.Action:
    """``--device``: auto (CUDA when available, else CPU), cpu, cuda, cuda:N; ``default=None`` keeps the config's."""
    shown = "auto" if default is None else default
    return parser.add_argument(
        "--device", type=device_type, default=default, metavar="DEVICE",
        help=f"auto (CUDA when available, else CPU), cpu, cuda or cuda:N (default: {shown})", **kwargs)


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def default_threads() -> int:
    """Torch CPU threads when ``--threads`` is not given: ``$OMP_NUM_THREADS`` when set to a positive integer,
    else min(4, half the CPU cores this process may use, at least 1), so that a shared machine is not
    oversubscribed (the small models of this project gain little from more threads)."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return min(4, max(1, cores // 2))


def add_threads_argument(parser: argparse.ArgumentParser) -> argparse.Action:
    """``--threads N``: torch CPU threads (intra-op), applied by :func:`run_cli` before the command runs."""
    return parser.add_argument(
        "--threads", type=_positive_int, default=None, metavar="N",
        help="CPU threads for torch, per process (default: $OMP_NUM_THREADS when set, else min(4, half the CPU "
        f"cores), {default_threads()} here; more threads rarely help these small models and slow a busy machine)")


def apply_threads(threads: int | None) -> int:
    """Use ``threads`` torch CPU threads (``default_threads()`` when None), in this process and in processes it
    starts (``OMP_NUM_THREADS``); the inter-op pool too where it can still be sized. Returns the number."""
    import torch

    threads = default_threads() if threads is None else int(threads)
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # only possible before the first inter-op work; later calls keep the existing pool
        pass
    os.environ["OMP_NUM_THREADS"] = str(threads)
    return threads


def _add_version(parser: argparse.ArgumentParser, prog: str) -> None:
    from wsl import __version__

    parser.add_argument("--version", action="version", version=f"{prog} {__version__}",
                        help="print the version and exit")


def build_parser(prog: str, description: str, commands: Mapping[str, str],
                 package: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``prog`` with one sub-parser per command (``commands``: name -> module path).

    ``package`` (default: ``prog`` with ``-`` -> ``_``) is the tool's Python package, given to the commands as
    ``args.tool``.
    """
    tool = Tool(prog, package or prog.replace("-", "_"))
    parser = CommandParser(prog=prog, description=description)
    _add_version(parser, prog)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    parser.set_defaults(_command_parsers=sub.choices)
    for name, module_path in commands.items():
        module = importlib.import_module(module_path)
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP,
                                        formatter_class=DefaultsHelpFormatter)
        command_parser.set_defaults(_command_module=module, tool=tool)
        module.add_arguments(command_parser)
    return parser


def _unknown_arguments(parser: argparse.ArgumentParser, unknown: Sequence[str]) -> None:
    flags = [flag for action in parser._actions for flag in action.option_strings
             if flag not in getattr(action, "aliases", ())]
    first = unknown[0].split("=", 1)[0]
    names = {flag.lstrip("-"): flag for flag in flags}  # compared without the dashes, which every option shares
    close = difflib.get_close_matches(first.lstrip("-"), list(names), n=1, cutoff=0.6) if first.startswith("-") else []
    hint = f"; did you mean {names[close[0]]!r}?" if close else ""
    parser.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")


def run_cli(prog: str, description: str, commands: Mapping[str, str], argv: Sequence[str] | None = None,
            package: str | None = None) -> int:
    """Parse ``argv`` and run the chosen sub-command.

    Args:
        prog: program name shown in help and error messages.
        description: one-paragraph description for ``--help``.
        commands: sub-command name -> module path (the modules define ``HELP``, ``add_arguments`` and ``run``).
        argv: arguments without the program name; ``sys.argv[1:]`` when None.
        package: the tool's Python package (default: ``prog`` with ``-`` -> ``_``).

    Returns:
        the exit status: the command's, 0 after ``--help``/``--version``, 2 for a bad command line or bad input.
    """
    try:
        args, unknown = build_parser(prog, description, commands, package).parse_known_args(argv)
        if unknown:  # reported by the command's parser, with the closest of its options
            _unknown_arguments(args._command_parsers[args.command], unknown)
    except SystemExit as exit_:  # --help, --version, a bad command line: the status, not an exception
        return exit_.code if isinstance(exit_.code, int) else 2
    module = args._command_module
    del args._command_module, args._command_parsers

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"{prog}: warning: {message}", file=sys.stderr)

    try:
        for name in getattr(module, "REQUIRES", ()):
            require(name, extra_for(name, prog) or "all", f"{prog} {args.command}")
        if "threads" in vars(args):
            apply_threads(args.threads)
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


def parse_key_values(items: Sequence[str], flag: str = "--sim") -> dict:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (values parsed as YAML scalars); ``ValueError`` naming ``flag``
    for an item without ``=``."""
    import yaml

    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} expects KEY=VALUE, got {item!r}")
        values[key.strip()] = yaml.safe_load(value)
    return values


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
