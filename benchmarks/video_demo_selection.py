"""Select the ``wsl-video demo`` settings of every aggregator without looking at the test split.

The THUMOS14 training subset (the 200 "validation" videos, here of ``thumos14-sim``) is split into
fit videos and ``--held-out`` videos (40 by default) whose temporal annotations serve only to score
settings. Every aggregator gets the same grid: Adam weight decay x L1 weight on the attention
(STPN's sparsity term, applied to every attention-based aggregator) x number of iterations (read
off one run at several checkpoints, continued with exact resumption). The score is the average
mAP@0.1:0.7 on the held-out videos; the best setting of each aggregator is written to
``<out>/selection.json``, the whole grid to ``<out>/grid.json`` (with, per checkpoint, the attention
inside and outside the held-out actions and the mean proposal length, to follow training dynamics).

    OMP_NUM_THREADS=1 python benchmarks/video_demo_selection.py --out demo_selection --jobs 2
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, List

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages first

AGGREGATORS = ("maa", "weighted_sum", "dropout", "norm", "softmax_norm")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_selection", help="output folder (default demo_selection)")
    parser.add_argument("--aggregators", nargs="+", default=list(AGGREGATORS))
    parser.add_argument("--weight-decays", type=float, nargs="+", default=[0.0, 1e-3, 1e-2])
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.0, 0.02, 0.2],
                        help="L1 weights on the attention (default 0 0.02 0.2)")
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[500, 1000, 2000, 3000],
                        help="iterations at which the held-out videos are scored")
    parser.add_argument("--held-out", type=int, default=40, help="held-out training videos (default 40)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the held-out draw (default 0)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds, averaged (default 0)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--sim", action="append", default=[], metavar="KEY=VALUE",
                        help="thumos14-sim simulator override (repeatable)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel training processes (default 1)")
    return parser.parse_args(argv)


def held_out_statistics(model, dataset, prediction, cut: float = 0.2) -> Dict[str, float]:
    """Attention inside / outside the annotated actions, proposal lengths (seconds) and coverage.

    Coverage: the fraction of an annotated class's snippets where a sequence reaches ``cut`` x its
    maximum over the video, for the CAS and for its two factors, the attention ``a_t`` and the class
    score ``sigmoid(w_c . x_t + b_c)`` (fused over streams), averaged over (video, class) pairs.
    """
    import torch

    from wsl.cam import class_activation

    inside, outside = [], []
    coverage: Dict[str, List[float]] = {"cas": [], "attention": [], "class_score": []}
    with torch.no_grad():
        for i, video in enumerate(dataset.videos):
            features = dataset.features(i)
            x = {name: torch.from_numpy(features[name]).T[None] for name in model.stream_names}
            attention = model.fuse({name: model.streams[name].aggregator(x[name]).attention[0]
                                    for name in model.stream_names}) if model.uses_attention else None
            class_score = model.fuse({name: class_activation(x[name], model.streams[name].classifier.weight,
                                                             model.streams[name].classifier.bias)[0].T
                                      for name in model.stream_names}).numpy()
            cas = model.cas({name: torch.from_numpy(features[name])[None] for name in model.stream_names})[0]
            mask = video.snippet_mask(dataset.classes)
            if attention is not None:
                attention = attention.numpy()
                inside.append(attention[mask.any(axis=1)])
                outside.append(attention[~mask.any(axis=1)])
            for k in np.flatnonzero(mask.any(axis=0)):
                sequences = {"cas": cas[:, k].numpy(), "class_score": class_score[:, k]}
                if attention is not None:
                    sequences["attention"] = attention
                for key, sequence in sequences.items():
                    coverage[key].append(float(np.mean(sequence[mask[:, k]] >= cut * sequence.max())))
    lengths = [end - start for rows in prediction.detections.values() for _, start, end, _ in rows]
    truth = [end - start for video in dataset.videos for start, end, _ in video.annotations]
    stats = {"proposal_length_s": float(np.mean(lengths)) if lengths else 0.0,
             "proposals_per_video": len(lengths) / len(dataset),
             "ground_truth_length_s": float(np.mean(truth))}
    stats.update({f"coverage_{key}": float(np.mean(values)) for key, values in coverage.items() if values})
    if inside:
        inside_all, outside_all = np.concatenate(inside), np.concatenate(outside)
        stats.update(attention_inside_median=float(np.median(inside_all)),
                     attention_outside_median=float(np.median(outside_all)),
                     attention_inside_mean=float(inside_all.mean()),
                     attention_outside_mean=float(outside_all.mean()))
    return stats


def run_setting(job: dict) -> List[dict]:
    """Train one (aggregator, weight decay, sparsity, seed) on the fit videos, score every checkpoint."""
    import torch

    from wsl_video.commands.train import parse_overrides
    from wsl_video.config import RunConfig
    from wsl_video.inference import predict_dataset
    from wsl_video.train import evaluate_predictions, load_run, open_data, split_held_out, train

    torch.set_num_threads(1)
    config = RunConfig()
    config.data.dataset = "thumos14-sim"
    config.data.sim = parse_overrides(job["sim"])
    config.model.aggregator = job["aggregator"]
    config.train.weight_decay = job["weight_decay"]
    config.train.sparsity_weight = job["sparsity"]
    config.train.batch_size = job["batch_size"]
    config.train.seed = job["seed"]
    config.train.device = "cpu"
    fit, held_out = split_held_out(open_data(config.resolved(), "train"), job["held_out"], job["split_seed"])
    run_dir = Path(job["run_dir"])
    rows = []
    for k, iterations in enumerate(sorted(job["checkpoints"])):
        config.train.iterations = iterations
        config.train.checkpoint_every = iterations
        config.train.log_every = max(1, iterations // 10)
        train(config.resolved(), run_dir, resume=k > 0, overwrite=k == 0, evaluate=False, progress=False,
              train_set=fit)
        resolved, model, _ = load_run(run_dir)
        prediction = predict_dataset(model, held_out, resolved.inference, resolved.train.num_segments,
                                     progress=False)
        metrics = evaluate_predictions(held_out, prediction, resolved.inference.tiou_thresholds)
        rows.append({key: job[key] for key in ("aggregator", "weight_decay", "sparsity", "seed")}
                    | {"iterations": iterations, "average_mAP_0.1_0.7": metrics["average_mAP_0.1_0.7"],
                       "cls_mAP": metrics["cls_mAP"]}
                    | held_out_statistics(model, held_out, prediction))
    return rows


def select(rows: List[dict]) -> Dict[str, dict]:
    """Per aggregator, the setting with the best seed-averaged held-out average mAP@0.1:0.7."""
    scores: Dict[tuple, List[float]] = {}
    for row in rows:
        key = (row["aggregator"], row["weight_decay"], row["sparsity"], row["iterations"])
        scores.setdefault(key, []).append(row["average_mAP_0.1_0.7"])
    best: Dict[str, dict] = {}
    for (aggregator, weight_decay, sparsity, iterations), values in sorted(scores.items()):
        score = float(np.mean(values))
        if aggregator not in best or score > best[aggregator]["held_out_average_mAP_0.1_0.7"]:
            best[aggregator] = {"iterations": iterations, "weight_decay": weight_decay, "sparsity": sparsity,
                                "held_out_average_mAP_0.1_0.7": score}
    return best


def main(argv=None) -> int:
    from wsl.utils.io import atomic_write_json

    args = parse_args(argv)
    out = Path(args.out)
    jobs = [{"aggregator": a, "weight_decay": wd, "sparsity": sp, "seed": seed, "sim": args.sim,
             "batch_size": args.batch_size, "held_out": args.held_out, "split_seed": args.split_seed,
             "checkpoints": args.checkpoints,
             "run_dir": str(out / "runs" / a / f"wd{wd:g}_l1{sp:g}_seed{seed}")}
            for a, wd, sp, seed in itertools.product(args.aggregators, args.weight_decays, args.sparsities,
                                                     args.seeds)]
    tic, rows = time.time(), []
    pool = ProcessPoolExecutor(max_workers=args.jobs) if args.jobs > 1 else None
    results = pool.map(run_setting, jobs) if pool is not None else map(run_setting, jobs)
    for job, result in zip(jobs, results):
        rows.extend(result)
        print(f"{job['aggregator']:>12} wd {job['weight_decay']:g} l1 {job['sparsity']:g} "
              f"seed {job['seed']}: " + ", ".join(
                  f"{r['iterations']}: {100 * r['average_mAP_0.1_0.7']:.1f}" for r in result)
              + f" ({time.time() - tic:.0f} s)", flush=True)
        atomic_write_json(out / "grid.json", rows)
    if pool is not None:
        pool.shutdown()
    selection = select(rows)
    atomic_write_json(out / "selection.json", {"protocol": {k: v for k, v in vars(args).items() if k != "jobs"},
                                               "selected": selection})
    print(json.dumps(selection, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
