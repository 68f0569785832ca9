"""Coverage of the probe intervals of ``alignlib.stats.bootstrap_probes_pair``, by simulation.

Two members share a Gaussian latent: ``a = z W_a + sigma e_a``, ``b = z W_b + sigma e_b`` with
z ~ N(0, I_k) per probe (k = 4), fixed W (drawn once per width d) and independent unit noise.
Their covariances are known, so the metrics' population values (infinitely many probes) are
closed forms:

* cka_linear: ``||S_ab||_F^2 / (||S_aa||_F ||S_bb||_F)``
* procrustes: ``||S_ab||_* / sqrt(tr S_aa tr S_bb)``
* linear_predictivity (symmetric): the mean of ``tr(S_ba S_aa^-1 S_ab) / tr S_bb`` and its mirror
  (the best linear prediction's variance-weighted R^2; a ridge chosen by cross-validation
  vanishes as n grows)

(checked against the metrics at 200000 probes at the start of each run). Each repetition draws
n probes, computes the interval (``n_boot`` subsamples) and records whether it covers the
population value, and whether it covers the metric's expected value at n (the mean of the
estimate over the repetitions and extra draws): the first is what a reader of "95 % interval"
may expect, the second is what a probe-resampling interval can deliver for a metric that is
biased in n. ``+-`` is the Monte-Carlo margin, 1.96 sqrt(c (1 - c) / reps).

    python benchmarks/bench_probe_intervals.py --jobs 2          # the full table: 62 min on 2 shared cores
    python benchmarks/bench_probe_intervals.py --reps 40 --cv-reps 10 --boot 50 --jobs 2   # a quick look

The table of the full run is in docs/library.md and in the docstring of
``alignlib.stats.bootstrap_probes_pair``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

K_LATENT = 4
SIGMA = 1.0
#: Metric -> the options it is run with (predictivity twice: least squares and the default CV ridge).
SETTINGS = {
    "cka_linear": ("cka_linear", {}),
    "procrustes": ("procrustes", {}),
    "linear_predictivity": ("linear_predictivity", {"ridge": 0.0}),
    "linear_predictivity_cv": ("linear_predictivity", {}),
}


def weights(d: int) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(1000 + d)
    return g.normal(size=(K_LATENT, d)), g.normal(size=(K_LATENT, d))


def population(metric: str, d: int) -> float:
    wa, wb = weights(d)
    saa = wa.T @ wa + SIGMA ** 2 * np.eye(d)
    sbb = wb.T @ wb + SIGMA ** 2 * np.eye(d)
    sab = wa.T @ wb
    if metric == "cka_linear":
        return float(np.sum(sab ** 2) / (np.linalg.norm(saa) * np.linalg.norm(sbb)))
    if metric == "procrustes":
        return float(np.linalg.svd(sab, compute_uv=False).sum() / np.sqrt(np.trace(saa) * np.trace(sbb)))
    r_ab = np.trace(sab.T @ np.linalg.solve(saa, sab)) / np.trace(sbb)
    r_ba = np.trace(sab @ np.linalg.solve(sbb, sab.T)) / np.trace(saa)
    return float(0.5 * (r_ab + r_ba))


def draw(n: int, d: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    wa, wb = weights(d)
    z = rng.normal(size=(n, K_LATENT))
    return z @ wa + SIGMA * rng.normal(size=(n, d)), z @ wb + SIGMA * rng.normal(size=(n, d))


def _init() -> None:
    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")


def one_interval(task) -> tuple[float, float, float]:
    """(estimate, low, high) of one repetition."""
    from alignlib.stats import bootstrap_probes_pair

    key, n, d, boot, fraction, seed = task
    metric, options = SETTINGS[key]
    a, b = draw(n, d, np.random.default_rng(seed))
    res = bootstrap_probes_pair(a, b, metric, n_boot=boot, seed=seed + 1, fraction=fraction, **options)
    return res.estimate, res.low, res.high


def one_estimate(task) -> float:
    from alignlib.metrics import compare

    key, n, d, seed = task
    metric, options = SETTINGS[key]
    a, b = draw(n, d, np.random.default_rng(seed))
    return compare(a, b, metric, **options)


def check_closed_forms(keys, d: int) -> None:
    _init()
    for key in keys:
        big = one_estimate((key, 200_000, d, 7))
        pop = population(SETTINGS[key][0], d)
        print(f"closed form check, d = {d}: {key} population {pop:.4f}, metric at 200000 probes {big:.4f}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--metrics", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--n", nargs="+", type=int, default=[100, 500])
    p.add_argument("--d", type=int, default=16)
    p.add_argument("--reps", type=int, default=400)
    p.add_argument("--cv-reps", type=int, default=100, help="repetitions for linear_predictivity_cv (slow)")
    p.add_argument("--boot", type=int, default=200)
    p.add_argument("--cv-boot", type=int, default=100, help="subsamples for linear_predictivity_cv")
    p.add_argument("--extra", type=int, default=1000, help="estimate-only draws for the mean at n")
    p.add_argument("--fraction", type=float, default=None, help="probes per subsample (default: the function's)")
    p.add_argument("--level", type=float, default=0.95)
    p.add_argument("--jobs", type=int, default=os.cpu_count())
    args = p.parse_args(argv)
    if args.level != 0.95:
        raise SystemExit("the interval functions are run at their default level, 0.95")
    check_closed_forms(args.metrics, args.d)
    rows = []
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs, initializer=_init) as pool:
        for key in args.metrics:
            reps = args.cv_reps if key.endswith("_cv") else args.reps
            boot = args.cv_boot if key.endswith("_cv") else args.boot
            extra = args.extra // 4 if key.endswith("_cv") else args.extra
            for n in args.n:
                t0 = time.perf_counter()
                seeds = [10_000 * n + 7 * r for r in range(reps)]
                res = np.array(list(pool.map(one_interval, [(key, n, args.d, boot, args.fraction, s) for s in seeds],
                                             chunksize=max(1, reps // (4 * args.jobs)))))
                more = np.array(list(pool.map(one_estimate, [(key, n, args.d, 1 + 10_000 * n + 7 * (reps + r))
                                                             for r in range(extra)], chunksize=max(1, extra // (4 * args.jobs)))))
                est, low, high = res.T
                pop = population(SETTINGS[key][0], args.d)
                mean_n = float(np.concatenate([est, more]).mean())
                cov_pop = float(np.mean((low <= pop) & (pop <= high)))
                cov_n = float(np.mean((low <= mean_n) & (mean_n <= high)))
                rows.append((key, n, args.d, reps, boot, cov_pop, cov_n, pop, mean_n, float(np.mean(high - low)),
                             time.perf_counter() - t0))
                print_row(rows[-1], args.level, flush=True)
    print()
    print(f"probe intervals: subsample (fraction {args.fraction or 'default'} of the probes, without replacement), "
          f"{args.boot} subsamples each ({args.cv_boot} for linear_predictivity_cv); "
          f"k = {K_LATENT} latent, sigma = {SIGMA}; {time.perf_counter() - start:.0f} s on {args.jobs} processes")
    print(header(args.level))
    for row in rows:
        print(line(row, args.level))


def margin(c: float, reps: int) -> float:
    return 1.96 * float(np.sqrt(max(c * (1 - c), 1e-12) / reps))


def header(level: float) -> str:
    return ("| metric | n | d | reps | subsamples | nominal | coverage of population value | coverage of mean at n | "
            "population value | mean estimate at n | mean width |\n|---|---|---|---|---|---|---|---|---|---|---|")


def line(row, level: float) -> str:
    key, n, d, reps, boot, cov_pop, cov_n, pop, mean_n, width, _ = row
    return (f"| {key} | {n} | {d} | {reps} | {boot} | {level:.2f} | {cov_pop:.3f} +- {margin(cov_pop, reps):.3f} | "
            f"{cov_n:.3f} +- {margin(cov_n, reps):.3f} | {pop:.4f} | {mean_n:.4f} | {width:.4f} |")


def print_row(row, level: float, flush: bool = False) -> None:
    print(line(row, level) + f"  ({row[-1]:.0f} s)", flush=flush)


if __name__ == "__main__":
    main()
