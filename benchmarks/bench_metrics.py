"""Benchmark: ``alignlib.metrics.pairwise`` against a pair-by-pair loop of ``compare``.

    python benchmarks/bench_metrics.py            # S = 16 members, n = 1000 probes, d = 256 units
    python benchmarks/bench_metrics.py --quick    # S = 8, n = 300, d = 64
    python benchmarks/bench_metrics.py --metrics cka_linear,mutual_knn --markdown

The loop is the fair one: ``compare(reps[i], reps[j])`` for the S(S-1)/2 pairs i < j of a
symmetric metric (mirrored), and for all S(S-1) ordered pairs i != j of an asymmetric one.
Times are the best of ``--repeat`` runs of ``pairwise`` and of ``--loop-repeat`` runs of
the loop (default 3 and 1), interleaved, after a warm-up. The last column is the largest |pairwise - loop|
entry (must be below 1e-10). Other jobs on the machine distort timings: the header
prints the load average; ``--threads 1`` makes contended runs more repeatable.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alignlib.metrics import METRICS, compare, metric_names, pairwise

FAMILY = {
    "cka_linear": "CKA", "cka_linear_debiased": "CKA", "cka_rbf": "CKA",
    "information_imbalance": "k-NN", "neighborhood_overlap": "k-NN", "mutual_knn": "k-NN",
    "procrustes": "Procrustes", "cca": "CCA", "svcca": "CCA", "pwcca": "CCA", "rsa": "RSA",
    "cosine_end_to_end": "cosine", "linear_predictivity": "regression", "soft_matching": "matching",
}
TARGET = {"CKA": 10.0, "k-NN": 10.0}


def make_ensemble(S: int, n: int, d: int, seed: int = 0) -> np.ndarray:
    """S members sharing a 32-dimensional latent, plus member-specific noise."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 32))
    return np.stack([z @ rng.normal(size=(32, d)) + rng.normal(size=(n, d)) for _ in range(S)])


def reps_for(metric: str, acts: np.ndarray) -> np.ndarray:
    if METRICS[metric].needs == "end_to_end":
        return acts[:, : acts.shape[2], :]          # (S, d, d) "end-to-end maps"
    return acts


def loop_pairs(reps, metric: str) -> tuple[np.ndarray, int]:
    """The pair-by-pair baseline: ``compare`` for i < j (mirrored) or for all i != j."""
    S = len(reps)
    out = np.eye(S)
    symmetric = METRICS[metric].symmetric
    pairs = [(i, j) for i in range(S) for j in range(S) if (i < j if symmetric else i != j)]
    for i, j in pairs:
        out[i, j] = compare(reps[i], reps[j], metric)
        if symmetric:
            out[j, i] = out[i, j]
    return out, len(pairs)


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def measure(reps, metric: str, repeat: int, loop_repeat: int):
    """Best times of ``pairwise`` and of the loop, their runs interleaved so that both see the
    same background load; one warm-up call first."""
    pairwise(reps[:2], metric)
    t_pw = t_loop = np.inf
    m_pw = m_loop = None
    n_pairs = 0
    for r in range(max(repeat, loop_repeat)):
        if r < repeat:
            t, m_pw = timed(pairwise, reps, metric)
            t_pw = min(t_pw, t)
        if r < loop_repeat:
            t, (m_loop, n_pairs) = timed(loop_pairs, reps, metric)
            t_loop = min(t_loop, t)
    return t_pw, m_pw, t_loop, m_loop, n_pairs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="S=8, n=300, d=64")
    p.add_argument("--S", type=int, default=None)
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--d", type=int, default=None)
    p.add_argument("--metrics", default=",".join(metric_names()), help="comma-separated names")
    p.add_argument("--repeat", type=int, default=3, help="pairwise runs (best is reported)")
    p.add_argument("--loop-repeat", type=int, default=1, help="loop runs (best is reported)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = p.parse_args(argv)
    S, n, d = (8, 300, 64) if args.quick else (16, 1000, 256)
    S, n, d = args.S or S, args.n or n, args.d or d
    if args.threads:
        torch.set_num_threads(args.threads)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    acts = make_ensemble(S, n, d)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# S={S} n={n} d={d} | torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()} | load avg {load:.2f}",
          flush=True)
    rows = []
    for metric in metrics:
        reps = reps_for(metric, acts)
        t_pw, m_pw, t_loop, m_loop, n_pairs = measure(reps, metric, args.repeat, args.loop_repeat)
        diff = float(np.abs(m_pw - m_loop).max())
        rows.append((metric, FAMILY.get(metric, ""), t_pw, t_loop, n_pairs, t_loop / t_pw, diff))
        if not args.markdown:
            print(f"{metric:24s} {FAMILY.get(metric, ''):10s} pairwise {t_pw:8.3f} s   loop {t_loop:8.3f} s "
                  f"({n_pairs} pairs)   speedup {t_loop / t_pw:6.1f}x   max|diff| {diff:.1e}", flush=True)
    if args.markdown:
        print("| metric | family | pairwise (s) | loop of `compare` (s) | pairs | speedup | max abs diff |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for metric, fam, t_pw, t_loop, n_pairs, speed, diff in rows:
            print(f"| `{metric}` | {fam} | {t_pw:.3f} | {t_loop:.2f} | {n_pairs} | {speed:.1f}x | {diff:.0e} |")
    failed = [r[0] for r in rows if r[6] > 1e-10]
    short = [r[0] for r in rows if r[5] < TARGET.get(r[1], 0.0)]
    if failed:
        print(f"# pairwise != loop beyond 1e-10 for: {failed}")
    if short and (S, n, d) == (16, 1000, 256):
        print(f"# below the 10x target: {short}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
