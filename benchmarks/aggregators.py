"""Forward+backward time and memory of every aggregator, as ratios to a plain weighted sum.

Each aggregator pools the same features x (B, C, *S) given the same per-position scores (the attention
head is excluded: it is the same Linear(C -> 256 -> 1) for every attention-based aggregator, and the
logits it would give, logit(a), are computed once outside the timed steps). The baseline is the plain
weighted sum sum_i a_i x_i over the same x, timed in the same run, alternating step by step. Memory is
the size of the tensors autograd keeps for the backward pass (distinct storages, the inputs
included: the weighted sum itself must keep x), plus the peak
allocation on CUDA. The paper's Algorithm 1 (``wsl.reference.maa_recurrence``) is timed at T <= 200.
Input validation stays at the library's default (on).

The whole measurement is repeated ``--runs`` times (3 by default); each row reports the median time
and the median and range (min-max) of the time ratio over the runs. A second table gives the time of
the MAA weights alone (forward + backward, ``wsl.functional.maa_weights``) per position, for N = 20 to
20,000, with the default rule (exact up to 2K positions, then the linear-time truncated rule) and with
the exact O(N^2) rule.

    python benchmarks/aggregators.py                  # the standard sizes, CPU, 3 runs
    python benchmarks/aggregators.py --device cuda
    python benchmarks/aggregators.py --quick          # tiny sizes, for a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch

import wsl
from wsl.functional import maa_weights, weighted_pool
from wsl.reference import maa_recurrence

SIZES: List[Tuple[str, Tuple[int, ...]]] = [
    ("B=32, C=2048, T=20", (32, 2048, 20)),
    ("B=4, C=2048, T=750", (4, 2048, 750)),
    ("B=32, C=2048, 7x7", (32, 2048, 7, 7)),
    ("B=16, C=2048, 28x28", (16, 2048, 28, 28)),
]
# Large sizes: MAA against the weighted-sum aggregator only (the quadratic term of the exact rule
# would dominate here).
LARGE_SIZES: List[Tuple[str, Tuple[int, ...]]] = [
    ("B=2, C=2048, T=10000", (2, 2048, 10_000)),
    ("B=4, C=512, 100x100", (4, 512, 100, 100)),
]
LARGE_AGGREGATORS = ["maa", "weighted_sum"]
SCALING_POSITIONS = [20, 200, 2_000, 20_000]
SCALING_BATCH = 4
EXACT_SCALING_LIMIT = 5_000  # the exact rule is O(N^2): not timed above this
QUICK_SCALING_POSITIONS = [6, 100]
ORACLE_SIZES: List[Tuple[str, Tuple[int, ...]]] = [
    ("B=32, C=2048, T=20", (32, 2048, 20)),
    ("B=4, C=2048, T=200", (4, 2048, 200)),
]
QUICK_SIZES: List[Tuple[str, Tuple[int, ...]]] = [("B=2, C=8, T=6", (2, 8, 6)), ("B=2, C=8, 3x3", (2, 8, 3, 3))]
AGGREGATORS = ["maa", "weighted_sum", "dropout", "norm", "softmax_norm", "mean", "max", "topk_mean"]


def _pooling_fn(name: str, channels: int, device: torch.device) -> Callable:
    """pool(x, a, logits) for an aggregator, given per-position scores a in (0, 1) and their logits (the
    head's outputs; the head itself is excluded)."""
    agg = wsl.build_aggregator(name, channels=channels).to(device).train(name == "dropout")
    if agg.uses_attention:
        return lambda x, a, logits: agg.pool(x, a, logits, None).pooled
    return lambda x, a, logits: agg(x).pooled


def _weighted_sum(x: torch.Tensor, a: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """The baseline: sum_i a_i x_i."""
    return weighted_pool(x, a)


def _algorithm_1(x: torch.Tensor, a: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    return maa_recurrence(x, a)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step(fn: Callable, x: torch.Tensor, a: torch.Tensor, logits: torch.Tensor, grad_out: torch.Tensor) -> None:
    x.grad = a.grad = None
    fn(x, a, logits).backward(grad_out)


def _timed(fn: Callable, x: torch.Tensor, a: torch.Tensor, logits: torch.Tensor, grad_out: torch.Tensor) -> float:
    _synchronize(x.device)
    start = time.perf_counter()
    _step(fn, x, a, logits, grad_out)
    _synchronize(x.device)
    return time.perf_counter() - start


def _saved_bytes(fn: Callable, x: torch.Tensor, a: torch.Tensor, logits: torch.Tensor) -> float:
    saved: Dict[Tuple[int, int], int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        saved[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x, a, logits)
    return float(sum(saved.values()))


def _cuda_peak(fn: Callable, x: torch.Tensor, a: torch.Tensor, logits: torch.Tensor,
               grad_out: torch.Tensor) -> float:
    if x.device.type != "cuda":
        return 0.0
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(x.device)
    base = torch.cuda.memory_allocated(x.device)
    _step(fn, x, a, logits, grad_out)
    _synchronize(x.device)
    return float(torch.cuda.max_memory_allocated(x.device) - base)


def measure(fn: Callable, baseline: Callable, x: torch.Tensor, a: torch.Tensor, repeats: int,
            budget_seconds: float = 10.0) -> Dict[str, float]:
    """Median seconds of forward+backward of ``fn`` and of ``baseline``, timed alternately step by step
    (so that both see the same machine state), bytes saved for backward and the CUDA peak of each."""
    grad_out = torch.randn(x.shape[:2], dtype=x.dtype, device=x.device)
    logits = torch.logit(a.detach(), eps=1e-6)  # the head's output, not timed
    for _ in range(2):  # warm-up
        _step(fn, x, a, logits, grad_out)
        _step(baseline, x, a, logits, grad_out)
    fn_times, base_times = [], []
    budget = time.perf_counter() + budget_seconds
    for index in range(repeats):
        base_times.append(_timed(baseline, x, a, logits, grad_out))
        fn_times.append(_timed(fn, x, a, logits, grad_out))
        if index >= 2 and time.perf_counter() > budget:
            break
    return {
        "seconds": statistics.median(fn_times),
        "base_seconds": statistics.median(base_times),
        "saved_bytes": _saved_bytes(fn, x, a, logits),
        "base_saved_bytes": _saved_bytes(baseline, x, a, logits),
        "peak_bytes": _cuda_peak(fn, x, a, logits, grad_out),
    }


def _inputs(shape, generator, dtype, device):
    x = torch.randn(shape, generator=generator, dtype=dtype).to(device).requires_grad_(True)
    a = torch.rand(shape[:1] + shape[2:], generator=generator, dtype=dtype).to(device).requires_grad_(True)
    return x, a


def run(sizes, oracle_sizes, device: torch.device, repeats: int, dtype: torch.dtype,
        large_sizes=()) -> List[Dict[str, object]]:
    """Every aggregator at ``sizes``, MAA and the weighted sum at ``large_sizes``, MAA against the paper's
    Algorithm 1 at ``oracle_sizes``."""
    rows = []
    generator = torch.Generator().manual_seed(0)
    plan = [(label, shape, AGGREGATORS, False) for label, shape in sizes]
    plan += [(label, shape, LARGE_AGGREGATORS, False) for label, shape in large_sizes]
    plan += [(label, shape, ["maa"], True) for label, shape in oracle_sizes]
    for label, shape, names, with_oracle in plan:
        x, a = _inputs(shape, generator, dtype, device)
        for name in names:
            stats = measure(_pooling_fn(name, shape[1], device), _weighted_sum, x, a, repeats)
            rows.append({"size": label, "method": name, **stats})
        if with_oracle:
            stats = measure(_algorithm_1, _weighted_sum, x, a, max(3, repeats // 10))
            rows.append({"size": label, "method": "algorithm 1 (paper)", **stats})
    return rows


def run_scaling(positions: List[int], device: torch.device, dtype: torch.dtype, repeats: int) -> List[Dict]:
    """Seconds per position of maa_weights forward + backward, default and exact rule, batch SCALING_BATCH."""
    rows = []
    generator = torch.Generator().manual_seed(1)
    for n in positions:
        p = torch.rand(SCALING_BATCH, n, generator=generator, dtype=dtype).to(device).requires_grad_(True)
        grad = torch.randn(SCALING_BATCH, n, generator=generator, dtype=dtype).to(device)
        row = {"positions": n, "truncated": wsl.functional.maa.use_truncated_rule(n, dtype)}
        for rule, exact in (("default", None), ("exact", True)):
            if exact and n > EXACT_SCALING_LIMIT:
                row[rule] = None
                continue
            maa_weights(p, exact=exact).backward(grad)  # warm-up
            times = []
            budget = time.perf_counter() + 5.0
            for index in range(repeats):
                _synchronize(device)
                start = time.perf_counter()
                maa_weights(p, exact=exact).backward(grad)
                _synchronize(device)
                times.append(time.perf_counter() - start)
                if index >= 2 and time.perf_counter() > budget:
                    break
            row[rule] = statistics.median(times) / n
        rows.append(row)
    return rows


def summarize_runs(runs: List[List[Dict[str, object]]]) -> List[Dict[str, object]]:
    """One row per (size, method): median seconds and memory, and the ratios of every run."""
    merged = []
    for index, first in enumerate(runs[0]):
        same = [run[index] for run in runs]
        merged.append({
            **first,
            "seconds": statistics.median(row["seconds"] for row in same),
            "ratios": [row["seconds"] / row["base_seconds"] for row in same],
        })
    return merged


def _mib(value: float) -> str:
    return f"{value / 2**20:.1f}"


def format_table(rows: List[Dict[str, object]], device: torch.device) -> str:
    cuda = device.type == "cuda"
    header = "| size | aggregator | fwd+bwd ms | time ratio, median [range] | saved for backward MiB | memory ratio |"
    header += " CUDA peak MiB |" if cuda else ""
    lines = [header, "|" + "---|" * (7 if cuda else 6)]
    for row in rows:
        memory_ratio = row["saved_bytes"] / row["base_saved_bytes"]
        ratios = row.get("ratios") or [row["seconds"] / row["base_seconds"]]
        ratio = f"{statistics.median(ratios):.2f}"
        if len(ratios) > 1:
            ratio += f" [{min(ratios):.2f}–{max(ratios):.2f}]"
        line = (
            f"| {row['size']} | {row['method']} | {row['seconds'] * 1e3:.2f} | {ratio} |"
            f" {_mib(row['saved_bytes'])} | {memory_ratio:.2f} |"
        )
        if cuda:
            line += f" {_mib(row['peak_bytes'])} |"
        lines.append(line)
    return "\n".join(lines)


def format_scaling(runs: List[List[Dict]]) -> str:
    """Median over runs of the MAA-weights time per position, in nanoseconds."""
    lines = [f"| N (B={SCALING_BATCH}) | default rule | default µs per call | default ns / position |"
             " exact rule ns / position |",
             "|---|---|---|---|---|"]

    def cell(values, scale=1e9, positions=1):
        values = [value for value in values if value is not None]
        return f"{statistics.median(values) * scale * positions:,.0f}" if values else "—"

    for index, first in enumerate(runs[0]):
        same = [run[index] for run in runs]
        rule = "truncated (K nodes)" if first["truncated"] else "exact"
        lines.append(f"| {first['positions']:,} | {rule} |"
                     f" {cell([r['default'] for r in same], 1e6, first['positions'])} |"
                     f" {cell(r['default'] for r in same)} | {cell(r['exact'] for r in same)} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=100, help="timed steps per method (at most ~10 s each)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions of the whole measurement (default 3)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    if args.quick:
        sizes, large, oracle_sizes, positions = QUICK_SIZES, QUICK_SIZES[1:], QUICK_SIZES[:1], QUICK_SCALING_POSITIONS
    else:
        sizes, large, oracle_sizes, positions = SIZES, LARGE_SIZES, ORACLE_SIZES, SCALING_POSITIONS
    runs = [run(sizes, oracle_sizes, device, args.repeats, dtype, large) for _ in range(args.runs)]
    scaling = [run_scaling(positions, device, dtype, args.repeats) for _ in range(args.runs)]
    threads = torch.get_num_threads()
    table = format_table(summarize_runs(runs), device)
    print(f"device={device} dtype={args.dtype} torch={torch.__version__} threads={threads} repeats={args.repeats}"
          f" runs={args.runs}")
    print("ratios are to the plain weighted sum over the same x in the same run; median [min–max] over the runs")
    print(table)
    print()
    print("MAA weights alone (maa_weights forward + backward), median over the runs")
    scaling_table = format_scaling(scaling)
    print(scaling_table)
    return table + "\n\n" + scaling_table


if __name__ == "__main__":
    main()
