"""Train the paper's model on thumos14-sim with several aggregators and report detection mAP.

A small self-contained check of the simulator (not the project's training code): per stream an attention
head + aggregator + Linear classifier, T=20 sampled snippets, BCE, Adam 5e-4; at test time video scores on
20 uniformly spaced snippets, class rejection at 0.1, CAS = attention * sigmoid(w x + b) averaged over the
two streams, proposals where CAS >= 0.2 max, scored by their mean CAS; ActivityNet-style AP per class.

    OMP_NUM_THREADS=1 python benchmarks/thumos14_sim_learnability.py --iterations 1000 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch import nn

import wsl
from wsl.cam import class_activation
from wsl_video.data import open_dataset, sample_snippets, uniform_snippets

IOUS = np.round(np.arange(0.1, 0.75, 0.1), 2)


class Model(nn.Module):
    def __init__(self, aggregator: str, channels: int, classes: int) -> None:
        super().__init__()
        self.aggregator = wsl.build_aggregator(aggregator, channels=channels)
        self.classifier = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (B, C, T) -> logits (B, K)
        return self.classify(x)[0]

    def classify(self, x: torch.Tensor):
        out = self.aggregator(x)
        return self.classifier(out.pooled), out.attention


def train(ds, stream: str, aggregator: str, iterations: int, batch: int, segments: int, seed: int,
          sparsity: float = 0.0) -> Model:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    feats = [ds.features(i)[stream] for i in range(len(ds))]
    labels = torch.from_numpy(ds.label_matrix())
    model = Model(aggregator, feats[0].shape[1], len(ds.classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4, weight_decay=5e-4)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(iterations):
        chosen = rng.choice(len(feats), size=min(batch, len(feats)), replace=False)
        x = np.stack([feats[i][sample_snippets(len(feats[i]), segments, rng)] for i in chosen])
        logits, attention = model.classify(torch.from_numpy(x).transpose(1, 2))
        loss = loss_fn(logits, labels[chosen])
        if sparsity and attention is not None:  # STPN's L1 sparsity loss on the attention
            loss = loss + sparsity * attention.abs().sum(dim=1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@torch.no_grad()
def infer(model: Model, x: np.ndarray, segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Video scores (K,) on uniform snippets and CAS (K, T) on all snippets."""
    full = torch.from_numpy(x).T[None]  # (1, C, T)
    sub = full[..., torch.from_numpy(uniform_snippets(x.shape[0], segments))]
    scores = torch.sigmoid(model(sub))[0].numpy()
    attention = model.aggregator(full).attention
    cas = class_activation(full, model.classifier.weight, model.classifier.bias, attention)[0].numpy()
    return scores, cas


def proposals(cas: np.ndarray, seconds_per_snippet: float, ratio: float = 0.2):
    """[(start_s, end_s, score)] from one class's CAS (T,)."""
    keep = cas >= ratio * cas.max()
    out, t = [], 0
    while t < len(cas):
        if keep[t]:
            start = t
            while t < len(cas) and keep[t]:
                t += 1
            out.append((start * seconds_per_snippet, t * seconds_per_snippet, float(cas[start:t].mean())))
        else:
            t += 1
    return out


def average_precision(detections, ground_truth, iou: float) -> float:
    """ActivityNet-style AP of one class. detections [(video, s, e, score)], ground_truth {video: [(s, e)]}."""
    positives = sum(len(v) for v in ground_truth.values())
    if positives == 0:
        return float("nan")
    detections = sorted(detections, key=lambda d: -d[3])
    used = {video: np.zeros(len(v), bool) for video, v in ground_truth.items()}
    tp = np.zeros(len(detections))
    for i, (video, s, e, _) in enumerate(detections):
        gts = ground_truth.get(video, [])
        if not gts:
            continue
        g = np.asarray(gts)
        inter = np.clip(np.minimum(e, g[:, 1]) - np.maximum(s, g[:, 0]), 0, None)
        ious = inter / (np.maximum(e, g[:, 1]) - np.minimum(s, g[:, 0]))
        for j in np.argsort(-ious):
            if ious[j] < iou:
                break
            if not used[video][j]:
                used[video][j] = True
                tp[i] = 1
                break
    if len(detections) == 0:
        return 0.0
    ctp = np.cumsum(tp)
    recall = ctp / positives
    precision = ctp / np.arange(1, len(detections) + 1)
    mprec = np.concatenate([[0], precision, [0]])
    mrec = np.concatenate([[0], recall, [1]])
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = np.where(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def evaluate(models: dict, test, segments: int) -> dict:
    detections = {c: [] for c in range(len(test.classes))}
    ground_truth = {c: {} for c in range(len(test.classes))}
    attention_in, attention_out = [], []
    for i, video in enumerate(test.videos):
        feats = test.features(i)
        outs = {stream: infer(model, feats[stream], segments) for stream, model in models.items()}
        scores = np.mean([o[0] for o in outs.values()], axis=0)
        cas = np.mean([o[1] for o in outs.values()], axis=0)
        mask = video.snippet_mask(test.classes).any(axis=1)
        attn = models["rgb"].aggregator(torch.from_numpy(feats["rgb"]).T[None]).attention
        if attn is not None:
            attn = attn[0].detach().numpy()
            attention_in.extend(attn[mask])
            attention_out.extend(attn[~mask])
        kept = np.where(scores >= 0.1)[0]
        if len(kept) == 0:
            kept = [int(scores.argmax())]
        for c in kept:
            for s, e, score in proposals(cas[c], video.seconds_per_snippet):
                detections[c].append((video.name, s, e, score))
        for s, e, label in video.annotations:
            ground_truth[test.classes.index(label)].setdefault(video.name, []).append((s, e))
    aps = np.array([[average_precision(detections[c], ground_truth[c], iou) for iou in IOUS]
                    for c in range(len(test.classes))])
    maps = np.nanmean(aps, axis=0)
    return {
        "mAP@IoU": dict(zip(map(float, IOUS), np.round(100 * maps, 2).tolist())),
        "avg_mAP": round(100 * float(maps.mean()), 2),
        "median_attention_in": float(np.median(attention_in)) if attention_in else None,
        "median_attention_out": float(np.median(attention_out)) if attention_out else None,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aggregators", nargs="+", default=["maa", "weighted_sum", "dropout", "norm", "softmax_norm"])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--segments", type=int, default=20)
    parser.add_argument("--sparsity", type=float, default=0.01,
                        help="STPN's L1 attention loss weight, for weighted_sum and dropout only")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--train-videos", type=int, default=None, help="train on the first N training videos")
    parser.add_argument("--test-videos", type=int, default=None, help="evaluate on the first N test videos")
    parser.add_argument("--sim", type=json.loads, default={}, help="SimConfig overrides as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    train_sim = dict(args.sim, videos=args.train_videos) if args.train_videos else args.sim
    train_ds = open_dataset("thumos14-sim", "train", sim=train_sim)
    test_sim = dict(args.sim, videos=args.test_videos) if args.test_videos else args.sim
    test_ds = open_dataset("thumos14-sim", "test", sim=test_sim)
    summary = {}
    for name in args.aggregators:
        results = []
        for seed in args.seeds:
            start = time.time()
            models = {s: train(train_ds, s, name, args.iterations, args.batch, args.segments, seed,
                            args.sparsity if name in ("weighted_sum", "dropout") else 0.0)
                      for s in ("rgb", "flow")}
            result = evaluate(models, test_ds, args.segments)
            result["seconds"] = round(time.time() - start, 1)
            results.append(result)
            print(name, seed, json.dumps(result), flush=True)
        avg = [r["avg_mAP"] for r in results]
        summary[name] = results
        print(f"== {name}: avg mAP(0.1:0.7) {np.mean(avg):.2f} +- {np.std(avg):.2f} over {len(avg)} seed(s)",
              flush=True)
    return summary


if __name__ == "__main__":
    main()
