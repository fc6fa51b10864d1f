"""Forward+backward time and memory of every aggregator, as ratios to a plain weighted sum.

Each aggregator pools the same features x (B, C, *S) given the same per-position scores (the attention
head is excluded: it is the same Linear(C -> 256 -> 1) for every attention-based aggregator). The
baseline is the plain weighted sum sum_i a_i x_i over the same x, timed in the same run. Memory is
the size of the tensors autograd keeps for the backward pass (distinct storages, the inputs
included: the weighted sum itself must keep x), plus the peak
allocation on CUDA. The paper's Algorithm 1 (``wsl.reference.maa_recurrence``) is timed at T <= 200.

    python benchmarks/aggregators.py                  # the four standard sizes, CPU
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
from wsl.functional import weighted_pool
from wsl.reference import maa_recurrence

SIZES: List[Tuple[str, Tuple[int, ...]]] = [
    ("B=32, C=2048, T=20", (32, 2048, 20)),
    ("B=4, C=2048, T=750", (4, 2048, 750)),
    ("B=32, C=2048, 7x7", (32, 2048, 7, 7)),
    ("B=16, C=2048, 28x28", (16, 2048, 28, 28)),
]
ORACLE_SIZES: List[Tuple[str, Tuple[int, ...]]] = [
    ("B=32, C=2048, T=20", (32, 2048, 20)),
    ("B=4, C=2048, T=200", (4, 2048, 200)),
]
QUICK_SIZES: List[Tuple[str, Tuple[int, ...]]] = [("B=2, C=8, T=6", (2, 8, 6)), ("B=2, C=8, 3x3", (2, 8, 3, 3))]
AGGREGATORS = ["maa", "weighted_sum", "dropout", "norm", "softmax_norm", "mean", "max", "topk_mean"]


def _pooling_fn(name: str, channels: int, device: torch.device) -> Callable:
    """pool(x, a) for an aggregator, given per-position scores a in (0, 1) (head excluded)."""
    agg = wsl.build_aggregator(name, channels=channels).to(device).train(name == "dropout")
    if getattr(agg, "uses_attention", False):
        return lambda x, a: agg.pool(x, a, torch.logit(a, eps=1e-6), None).pooled
    return lambda x, a: agg(x).pooled


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step(fn: Callable, x: torch.Tensor, a: torch.Tensor, grad_out: torch.Tensor) -> None:
    x.grad = a.grad = None
    fn(x, a).backward(grad_out)


def _timed(fn: Callable, x: torch.Tensor, a: torch.Tensor, grad_out: torch.Tensor) -> float:
    _synchronize(x.device)
    start = time.perf_counter()
    _step(fn, x, a, grad_out)
    _synchronize(x.device)
    return time.perf_counter() - start


def _saved_bytes(fn: Callable, x: torch.Tensor, a: torch.Tensor) -> float:
    saved: Dict[Tuple[int, int], int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        saved[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x, a)
    return float(sum(saved.values()))


def _cuda_peak(fn: Callable, x: torch.Tensor, a: torch.Tensor, grad_out: torch.Tensor) -> float:
    if x.device.type != "cuda":
        return 0.0
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(x.device)
    base = torch.cuda.memory_allocated(x.device)
    _step(fn, x, a, grad_out)
    _synchronize(x.device)
    return float(torch.cuda.max_memory_allocated(x.device) - base)


def measure(fn: Callable, baseline: Callable, x: torch.Tensor, a: torch.Tensor, repeats: int) -> Dict[str, float]:
    """Median seconds of forward+backward of ``fn`` and of ``baseline``, timed alternately step by step
    (so that both see the same machine state), bytes saved for backward and the CUDA peak of each."""
    grad_out = torch.randn(x.shape[:2], dtype=x.dtype, device=x.device)
    for _ in range(2):  # warm-up
        _step(fn, x, a, grad_out)
        _step(baseline, x, a, grad_out)
    fn_times, base_times = [], []
    budget = time.perf_counter() + 20.0
    for index in range(repeats):
        base_times.append(_timed(baseline, x, a, grad_out))
        fn_times.append(_timed(fn, x, a, grad_out))
        if index >= 2 and time.perf_counter() > budget:
            break
    return {
        "seconds": statistics.median(fn_times),
        "base_seconds": statistics.median(base_times),
        "saved_bytes": _saved_bytes(fn, x, a),
        "base_saved_bytes": _saved_bytes(baseline, x, a),
        "peak_bytes": _cuda_peak(fn, x, a, grad_out),
    }


def _inputs(shape, generator, dtype, device):
    x = torch.randn(shape, generator=generator, dtype=dtype).to(device).requires_grad_(True)
    a = torch.rand(shape[:1] + shape[2:], generator=generator, dtype=dtype).to(device).requires_grad_(True)
    return x, a


def run(sizes, oracle_sizes, device: torch.device, repeats: int, dtype: torch.dtype) -> List[Dict[str, object]]:
    """Every aggregator at ``sizes``; MAA against the paper's Algorithm 1 at ``oracle_sizes``."""
    rows = []
    generator = torch.Generator().manual_seed(0)
    plan = [(label, shape, AGGREGATORS, False) for label, shape in sizes]
    plan += [(label, shape, ["maa"], True) for label, shape in oracle_sizes]
    with wsl.validation(False):
        for label, shape, names, with_oracle in plan:
            x, a = _inputs(shape, generator, dtype, device)
            for name in names:
                stats = measure(_pooling_fn(name, shape[1], device), weighted_pool, x, a, repeats)
                rows.append({"size": label, "method": name, **stats})
            if with_oracle:
                stats = measure(maa_recurrence, weighted_pool, x, a, max(3, repeats // 10))
                rows.append({"size": label, "method": "algorithm 1 (paper)", **stats})
    return rows


def _mib(value: float) -> str:
    return f"{value / 2**20:.1f}"


def format_table(rows: List[Dict[str, object]], device: torch.device) -> str:
    cuda = device.type == "cuda"
    header = "| size | aggregator | fwd+bwd ms | time ratio | saved for backward MiB | memory ratio |"
    header += " CUDA peak MiB |" if cuda else ""
    lines = [header, "|" + "---|" * (7 if cuda else 6)]
    for row in rows:
        memory_ratio = row["saved_bytes"] / row["base_saved_bytes"]
        time_ratio = row["seconds"] / row["base_seconds"]
        line = (
            f"| {row['size']} | {row['method']} | {row['seconds'] * 1e3:.2f} | {time_ratio:.2f} |"
            f" {_mib(row['saved_bytes'])} | {memory_ratio:.2f} |"
        )
        if cuda:
            line += f" {_mib(row['peak_bytes'])} |"
        lines.append(line)
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=60, help="timed steps per method (at most ~20 s each)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    sizes, oracle_sizes = (QUICK_SIZES, QUICK_SIZES[:1]) if args.quick else (SIZES, ORACLE_SIZES)
    rows = run(sizes, oracle_sizes, device, args.repeats, dtype)
    threads = torch.get_num_threads()
    table = format_table(rows, device)
    print(f"device={device} dtype={args.dtype} torch={torch.__version__} threads={threads} repeats={args.repeats}")
    print("ratios are to the plain weighted sum over the same x in the same run")
    print(table)
    return table


if __name__ == "__main__":
    main()
