"""The documentation's examples work as written.

Every ``python`` block of README.md and docs/*.md runs: the blocks of one page in order, in one namespace
and one empty working directory, as a reader would paste them into a session. A block preceded by a
``<!-- not run: REASON -->`` comment (it needs files no test can have, such as real I3D weights and a
video) is compiled and its imports are executed. Every ``wsl-video`` / ``wsl-image`` command line of a
``bash`` or ``console`` block is parsed by the tool's own argument parser, so a renamed or removed option
fails here.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest

from wsl.utils.cli import build_parser
from wsl_image import cli as image_cli
from wsl_video import cli as video_cli

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
NOT_RUN = re.compile(r"<!--\s*not run:\s*(.+?)\s*-->\s*$")
TOOLS = {"wsl-video": video_cli, "wsl-image": image_cli}
MODULES = {"wsl_video": "wsl-video", "wsl_image": "wsl-image"}
OPERATORS = {"&&", "||", "|", ";", "&"}


def code_blocks(page: Path) -> list[dict]:
    """Every fenced block of ``page``: language, code, first line number, and the reason it is not run."""
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        reason = NOT_RUN.search(before)
        blocks.append({"language": match.group(1), "code": match.group(2),
                       "line": text.count("\n", 0, match.start()) + 2, "not_run": reason and reason.group(1)})
    return blocks


def command_lines(code: str) -> list[tuple[str, list[str]]]:
    """``(tool, argv)`` of every ``wsl-video`` / ``wsl-image`` invocation in a shell block.

    Continuation lines are joined, comments and ``$`` prompts dropped, ``VAR=value`` prefixes skipped, and
    ``python -m wsl_video`` / ``torchrun ... -m wsl_image`` count as the tools.
    """
    joined = re.sub(r"\\\n", " ", code)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("$ "):
            line = line[2:]
        if "<<" in line:  # a here-document: its body is not a command line
            break
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            continue
        command: list[str] = []
        for token in [*tokens, ";"]:
            if token not in OPERATORS:
                command.append(token)
                continue
            while command and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", command[0]):
                command.pop(0)
            if command and command[0] in TOOLS:
                found.append((command[0], command[1:]))
            elif "-m" in command and command.index("-m") + 1 < len(command):
                module = command[command.index("-m") + 1]
                if module in MODULES and command[0] in ("python", "python3", "torchrun"):
                    found.append((MODULES[module], command[command.index("-m") + 2:]))
            command = []
    return found


def parse_command(tool: str, argv: list[str]) -> None:
    """Parse ``argv`` with ``tool``'s parser; AssertionError with argparse's message when it refuses."""
    parser = build_parser(tool, "", TOOLS[tool].COMMANDS)
    for sub in [parser, *parser._subparsers._group_actions[0].choices.values()]:
        sub.allow_abbrev = False  # the docs spell every option in full: --out must not pass for --output
    try:
        parser.parse_args(argv)
    except SystemExit as exit_:
        if exit_.code == 0 and ("--help" in argv or "-h" in argv):
            return
        raise AssertionError(f"{tool} {shlex.join(argv)}: refused by the parser (exit {exit_.code})") from None


PYTHON_PAGES = [page for page in PAGES if any(b["language"] == "python" for b in code_blocks(page))]
SHELL_BLOCKS = [(page, block) for page in PAGES for block in code_blocks(page)
                if block["language"] in ("bash", "console", "sh", "shell")]


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=lambda page: page.relative_to(REPO).as_posix())
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace = {"__name__": f"docs_{page.stem}"}
    name = page.relative_to(REPO).as_posix()
    for block in code_blocks(page):
        if block["language"] != "python":
            continue
        where = f"{name}, block at line {block['line']}"
        tree = ast.parse(block["code"], filename=where)  # every block compiles
        if block["not_run"]:
            imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
            exec(compile(ast.Module(body=imports, type_ignores=[]), where, "exec"), {})
            continue
        exec(compile(tree, where, "exec"), namespace)


@pytest.mark.parametrize("page, block", SHELL_BLOCKS,
                         ids=[f"{page.relative_to(REPO).as_posix()}:{block['line']}" for page, block in SHELL_BLOCKS])
def test_command_lines_parse(page, block):
    for tool, argv in command_lines(block["code"]):
        parse_command(tool, argv)


def test_every_page_is_checked():
    """The docs show both tools at work, and the blocks that are not run are few and say why."""
    commands = [command for _, block in SHELL_BLOCKS for command in command_lines(block["code"])]
    assert {tool for tool, _ in commands} == set(TOOLS)
    assert len(commands) >= 40
    assert {argv[0] for tool, argv in commands if tool == "wsl-video"} >= {"train", "detect", "evaluate", "demo",
                                                                           "extract", "localize", "tune", "plot"}
    skipped = [(page.name, block["line"]) for page in PAGES for block in code_blocks(page) if block["not_run"]]
    assert len(skipped) <= 3, skipped
    untagged = [(page.name, block["line"]) for page in PAGES for block in code_blocks(page)
                if not block["language"]]
    assert not untagged, f"code blocks without a language (say text for output or synopses): {untagged}"


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of the headings of ``page``: lower case, punctuation dropped, spaces to hyphens."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"^#+ (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(REPO).as_posix())
def test_links_resolve(page):
    """Every relative link of the docs names a file of the repository, and its #anchor a heading there."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: link to missing {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{page.name}: no heading for #{anchor} in {linked.name}"


def test_command_checker_catches_renamed_options():
    """The checker itself: a misspelt option, an unknown command or a bad choice is refused."""
    good = command_lines("OMP_NUM_THREADS=1 wsl-video train --dataset thumos14-sim \\\n    --out runs/x  # a run\n")
    assert good == [("wsl-video", ["train", "--dataset", "thumos14-sim", "--out", "runs/x"])]
    parse_command(*good[0])
    assert command_lines("torchrun --nproc_per_node=8 -m wsl_image train --out r && echo done") == [
        ("wsl-image", ["train", "--out", "r"])]
    for line in ("wsl-video train --dataset thumos14-sim --outt runs/x", "wsl-video trian --out runs/x",
                 "wsl-video train --dataset thumos14-sim --ou runs/x",
                 "wsl-image train --data-root D --aggregator maa --grid 5 --out r"):
        (tool, argv), = command_lines(line)
        with pytest.raises(AssertionError, match="refused by the parser"):
            parse_command(tool, argv)
