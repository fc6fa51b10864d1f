"""Accuracy of MAA's truncated quadrature rule against the exact rule, for a grid of (K nodes, L e-folds).

The truncated rule integrates c_i = int_0^a prod_{k != i} (1 - p_k v) dv with K Gauss-Legendre nodes,
a = min(1, L / (S - 1)); the exact rule uses floor(N / 2) + 1 nodes on [0, 1] (see
``wsl.functional.maa``). For each (K, L) this prints the largest relative difference of lambda over the
eight families of ``wsl.reference.probability_families`` and N = 200 ... ``--max-n``, in float64
(against the exact float64 rule) and in float32 (against the exact float64 rule). The rule the library
uses, ``wsl.functional.maa.TRUNCATED_RULE``, is marked. This measures accuracy only, no timings.

    python benchmarks/maa_truncation.py              # N up to 20,000 (a few minutes: the exact rule is O(N^2))
    python benchmarks/maa_truncation.py --max-n 2000
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Dict, Iterator, List, Optional, Tuple

import torch

import wsl.functional.maa as maa_module
from wsl.functional import maa_weights
from wsl.reference import probability_families

GRID: List[Tuple[int, float]] = [(8, 16.0), (12, 17.0), (16, 20.0), (16, 24.0), (24, 30.0), (32, 36.0), (48, 40.0),
                                 (64, 40.0)]
SIZES = [200, 1_000, 5_000, 20_000]


@contextlib.contextmanager
def truncated_rule(dtype: torch.dtype, nodes: int, efolds: float) -> Iterator[None]:
    previous = maa_module.TRUNCATED_RULE[dtype]
    maa_module.TRUNCATED_RULE[dtype] = (nodes, efolds)
    try:
        yield
    finally:
        maa_module.TRUNCATED_RULE[dtype] = previous


def _max_relative(approx: torch.Tensor, exact: torch.Tensor) -> float:
    nonzero = exact != 0
    worst = ((approx - exact).abs()[nonzero] / exact[nonzero]).max().item() if nonzero.any() else 0.0
    return max(worst, approx[~nonzero].abs().max().item() if (~nonzero).any() else 0.0)


def measure(sizes: List[int], grid: List[Tuple[int, float]]) -> List[Dict[str, object]]:
    rows = {(nodes, efolds): {"K": nodes, "L": efolds, "float64": 0.0, "float32": 0.0, "worst": ""}
            for nodes, efolds in grid}
    for n in sizes:
        families = probability_families(n, seed=n)
        p = torch.stack(list(families.values()))
        exact = maa_weights(p, exact=True)
        for (nodes, efolds), row in rows.items():
            for dtype, key in ((torch.float64, "float64"), (torch.float32, "float32")):
                with truncated_rule(dtype, nodes, efolds):
                    approx = maa_weights(p.to(dtype), exact=False).double()
                for index, name in enumerate(families):
                    error = _max_relative(approx[index], exact[index])
                    if error > row[key]:
                        row[key] = error
                        if key == "float64":
                            row["worst"] = f"{name}, N={n:,}"
    return list(rows.values())


def format_table(rows: List[Dict[str, object]]) -> str:
    chosen = {dtype: rule for dtype, rule in maa_module.TRUNCATED_RULE.items()}
    lines = ["| K | L | float64 max rel. error | float32 max rel. error | worst float64 case | used for |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        used = [str(dtype).replace("torch.", "") for dtype, rule in chosen.items() if rule == (row["K"], row["L"])]
        lines.append(f"| {row['K']} | {row['L']:g} | {row['float64']:.1e} | {row['float32']:.1e} | {row['worst']} |"
                     f" {', '.join(used)} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-n", type=int, default=SIZES[-1], help="largest N (default 20,000)")
    args = parser.parse_args(argv)
    sizes = [n for n in SIZES if n <= args.max_n] or [args.max_n]
    table = format_table(measure(sizes, GRID))
    print(f"N in {sizes}, eight families of p; errors relative to the exact float64 rule")
    print(table)
    return table


if __name__ == "__main__":
    main()
