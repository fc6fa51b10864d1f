"""Rerun the benchmarks and rewrite the measured tables of the documentation.

Every figure that changes from machine to machine lives in ``README.md`` or ``docs/*.md`` between two
comments, ``<!-- begin: NAME -->`` and ``<!-- end: NAME -->``. This script runs the command that makes
table NAME (each benchmark script once, however many tables it gives), then replaces everything
between the comments with that command and its fresh table, in every page that holds NAME. Nothing is
written unless every requested benchmark succeeded, and each page is replaced atomically.

    python benchmarks/regenerate_docs.py --list                   # the tables, their pages and commands
    python benchmarks/regenerate_docs.py aggregator-speed         # one table (its benchmark runs once)
    python benchmarks/regenerate_docs.py --all --dry-run          # what would run, and which pages change
    python benchmarks/regenerate_docs.py --all                    # every table (hours on a 2-core CPU)

The commands run in a temporary folder with this checkout first on ``PYTHONPATH``; ``python`` is the
interpreter running this script, and ``wsl-video`` / ``wsl-image`` are run as ``python -m wsl_video`` /
``python -m wsl_image``.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Sequence

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!-- (begin|end): ([a-z0-9-]+) -->")


@dataclass(frozen=True)
class Table:
    """A measured table: the shell command that makes it, and where its markdown ends up.

    ``output`` is the file (relative to the command's working folder) holding the table, or None for
    the command's standard output; ``index`` picks the table among those found there (0 = the first).
    """

    name: str
    command: str
    description: str
    output: str | None = None
    index: int = 0


TABLES: Dict[str, Table] = {table.name: table for table in (
    Table("aggregator-speed", "python benchmarks/aggregators.py",
          "forward+backward time and memory of every aggregator, as ratios to a weighted sum"),
    Table("maa-weights-scaling", "python benchmarks/aggregators.py",
          "time of the MAA weights per position, exact and truncated rule", index=1),
    Table("maa-truncation", "python benchmarks/maa_truncation.py",
          "accuracy of the truncated quadrature rule for a grid of (K, L)"),
    Table("evaluation", "OMP_NUM_THREADS=1 python benchmarks/evaluation.py",
          "detection evaluation at ActivityNet scale: vectorised, reference loops, the whole command"),
    Table("wsol-evaluator", "OMP_NUM_THREADS=1 python benchmarks/wsol_evaluator.py",
          "score-map evaluation (MaxBoxAcc/V2 on 10,000 maps, PxAP on 5,000) against wsolevaluation's evaluator"),
    Table("extraction", "OMP_NUM_THREADS=1 python benchmarks/extraction.py --threads 1",
          "feature extraction speed per stage, one CPU thread"),
    Table("video-demo", "OMP_NUM_THREADS=1 wsl-video demo --seeds 0 1 2 --out demo_out",
          "wsl-video demo over three seeds (about a minute per seed)", output="demo_out/table.md"),
    Table("image-demo", "wsl-image demo --out wsl-image-demo",
          "wsl-image demo, seed 0, both map scores (about 3 minutes)", output="wsl-image-demo/table.md"),
    Table("image-demo-seeds",
          "OMP_NUM_THREADS=1 python benchmarks/image_demo_seeds.py --seeds 0 1 2 --out image_demo_seeds",
          "wsl-image demo over three seeds (about 10 minutes)", output="image_demo_seeds/table.md"),
    Table("tune-transfer", "OMP_NUM_THREADS=1 python benchmarks/tune_transfer.py --out tune_transfer --jobs 2",
          "tuned against default settings on unseen simulated features (about 50 minutes)",
          output="tune_transfer/table.md"),
    Table("video-recipe-iteration",
          "OMP_NUM_THREADS=1 python benchmarks/video_recipes.py --batch-size 2 --threads 1 --repeats 3",
          "one training iteration of every video recipe as ratios to MAAN's (about a minute)"),
    Table("video-recipe-steps",
          "OMP_NUM_THREADS=1 python benchmarks/video_recipes.py --batch-size 2 --threads 1 --repeats 3",
          "the steps of one training iteration of every video recipe (same run)", index=1),
    Table("video-recipe-runs", "python benchmarks/video_recipe_runs.py --iterations 3 --threads 2",
          "whole wsl-video train runs of every video method on THUMOS14-sized data (about 15 minutes)"),
    Table("methods-table", "OMP_NUM_THREADS=1 python benchmarks/methods_table.py --out methods_table --jobs 2",
          "every video method x {original pooling, maa}, tuned, 3 seeds, on two simulated distributions (hours)",
          output="methods_table/table.md"),
    Table("image-methods-table",
          "OMP_NUM_THREADS=1 python benchmarks/image_methods_table.py --out image_methods_table --jobs 2",
          "every image method x {mean, weighted_sum, maa} on cub-sim and openimages-sim, tuned on train-fullsup, "
          "3 seeds (hours)", output="image_methods_table/table.md"),
)}


def default_pages() -> List[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def find_markers(text: str, source: str = "text") -> List[str]:
    """Names of the marked tables of ``text``, in order; ValueError for an unbalanced or nested marker."""
    names, open_name = [], None
    for match in MARKER.finditer(text):
        kind, name = match.groups()
        line = text.count("\n", 0, match.start()) + 1
        if kind == "begin":
            if open_name is not None:
                raise ValueError(f"{source}:{line}: begin: {name} inside begin: {open_name}")
            open_name = name
        else:
            if name != open_name:
                raise ValueError(f"{source}:{line}: end: {name} without begin: {name}")
            names.append(name)
            open_name = None
    if open_name is not None:
        raise ValueError(f"{source}: begin: {open_name} has no end: {open_name}")
    return names


def table_block(command: str, table: str) -> str:
    """What goes between the markers: the command that made the table, then the table."""
    return f"\n```bash\n{command}\n```\n\n{table.strip()}\n"


def replace_tables(text: str, blocks: Mapping[str, str], source: str = "text") -> str:
    """``text`` with the content between each ``begin: NAME`` / ``end: NAME`` pair in ``blocks`` replaced."""
    find_markers(text, source)  # balanced, not nested
    for name, block in blocks.items():
        pattern = re.compile(rf"(<!-- begin: {re.escape(name)} -->\n).*?(<!-- end: {re.escape(name)} -->)", re.S)
        body = block.lstrip("\n").replace("\\", "\\\\")  # a replacement template: keep backslashes
        text = pattern.sub(rf"\g<1>{body}\g<2>", text)
    return text


def markdown_tables(text: str) -> List[str]:
    """Every markdown table of ``text`` (runs of lines starting with ``|``, with a ``|---`` rule)."""
    tables, current = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append(line.rstrip())
            continue
        if len(current) >= 2 and re.match(r"^\|\s*:?-{3}", current[1]):
            tables.append("\n".join(current))
        current = []
    return tables


def shell_argv(command: str) -> tuple[Dict[str, str], List[str]]:
    """``(environment additions, argv)`` to run ``command`` from any folder with this checkout's code."""
    words = shlex.split(command)
    env = {}
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    tools = {"wsl-video": "wsl_video", "wsl-image": "wsl_image"}
    if words[0] in tools:
        argv = [sys.executable, "-m", tools[words[0]], *words[1:]]
    elif words[0] in ("python", "python3"):
        argv = [sys.executable, *[str(ROOT / word) if word.startswith("benchmarks/") else word for word in words[1:]]]
    else:
        raise ValueError(f"cannot run {command!r}: not python, wsl-video or wsl-image")
    return env, argv


def run_command(command: str, workdir: Path) -> str:
    """Run ``command`` in ``workdir``; its standard output (also echoed). RuntimeError when it fails."""
    env_add, argv = shell_argv(command)
    env = {**os.environ, **env_add, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    print(f"$ {command}", flush=True)
    result = subprocess.run(argv, cwd=workdir, env=env, stdout=subprocess.PIPE, text=True)
    sys.stdout.write(result.stdout)
    if result.returncode != 0:
        raise RuntimeError(f"{command!r} failed with exit status {result.returncode}")
    return result.stdout


def produce_tables(names: Sequence[str], workdir: Path,
                   run: Callable[[str, Path], str] = run_command) -> Dict[str, str]:
    """name -> fresh markdown table, running each distinct command once in ``workdir``."""
    outputs: Dict[str, str] = {}
    tables = {}
    for name in names:
        table = TABLES[name]
        if table.command not in outputs:
            outputs[table.command] = run(table.command, workdir)
        source = (workdir / table.output).read_text(encoding="utf-8") if table.output else outputs[table.command]
        found = markdown_tables(source)
        if len(found) <= table.index:
            raise RuntimeError(f"{table.command!r} gave {len(found)} table(s); {name} is table {table.index + 1}")
        tables[name] = found[table.index]
    return tables


def pages_with(pages: Iterable[Path]) -> Dict[Path, List[str]]:
    """page -> the marked table names it holds (pages without markers left out)."""
    found = {}
    for page in pages:
        names = find_markers(page.read_text(encoding="utf-8"), str(page))
        if names:
            found[page] = names
    return found


def regenerate(names: Sequence[str], pages: Sequence[Path], *, run: Callable[[str, Path], str] = run_command,
               dry_run: bool = False) -> List[Path]:
    """Rerun the tables ``names`` and rewrite every page of ``pages`` that holds one; the pages changed."""
    from wsl.utils.io import atomic_write_text

    unknown = [name for name in names if name not in TABLES]
    if unknown:
        raise ValueError(f"unknown table(s) {', '.join(unknown)}; known: {', '.join(TABLES)}")
    holders = {page: [n for n in found if n in names] for page, found in pages_with(pages).items()}
    holders = {page: found for page, found in holders.items() if found}
    missing = [name for name in names if not any(name in found for found in holders.values())]
    if missing:
        raise ValueError(f"no page holds the marker(s) of {', '.join(missing)}")
    if dry_run:
        for command in dict.fromkeys(TABLES[name].command for name in names):
            print(f"would run: {command}")
        for page, found in holders.items():
            print(f"would rewrite {page}: {', '.join(found)}")
        return []
    with tempfile.TemporaryDirectory(prefix="wsl-docs-") as workdir:
        tables = produce_tables(names, Path(workdir), run)
    blocks = {name: table_block(TABLES[name].command, table) for name, table in tables.items()}
    new_texts = {page: replace_tables(page.read_text(encoding="utf-8"), blocks, str(page)) for page in holders}
    for page, text in new_texts.items():  # every table made before any page is touched
        atomic_write_text(page, text)
        print(f"rewrote {page}: {', '.join(holders[page])}")
    return list(new_texts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", nargs="*", metavar="NAME", help="tables to regenerate (see --list)")
    parser.add_argument("--all", action="store_true", help="every table")
    parser.add_argument("--list", action="store_true", help="name, pages and command of every table, then exit")
    parser.add_argument("--dry-run", action="store_true", help="say what would run and change; write nothing")
    args = parser.parse_args(argv)
    pages = default_pages()
    if args.list:
        holders = pages_with(pages)
        for table in TABLES.values():
            where = [page.relative_to(ROOT).as_posix() for page, found in holders.items() if table.name in found]
            print(f"{table.name}: {table.description}\n    pages: {', '.join(where) or '(none)'}\n"
                  f"    command: {table.command}")
        return 0
    names = list(TABLES) if args.all else args.tables
    if not names:
        parser.error("name the tables to regenerate, or pass --all or --list")
    try:
        regenerate(names, pages, dry_run=args.dry_run)
    except (ValueError, RuntimeError) as error:
        print(f"regenerate_docs: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
