"""Error rates of the claim tests: false positives on null tables, power on known effects.

    python benchmarks/bench_calibration.py                      # synthetic tables only
    python benchmarks/bench_calibration.py --results results    # also nulls built from each task's own noise

Synthetic tables (alignlib.calibration.synthetic_panel): pair value = mean + u_a + u_b + e_ab,
member effect u and pair noise e with sd 0.05 each, every grid point its own members.
Null tables from a task: each grid point's pairs centred on one common mean (the task's own
member-level noise, no effect), SNR labels shuffled at every n. Every rate is a mean over
seeded repetitions; the +- column is its binomial standard error.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from alignlib.calibration import (
    claim1_positive,
    claim1_rises,
    claim2_holds,
    null_panel_from,
    rejection_rates,
    synthetic_panel,
    thresholds_at,
)

NS = np.array([10, 20, 30, 40, 45, 50, 55, 60, 75, 100, 200, 500, 1000])


def _dip(depth, k=13, at=5, width=1.5):
    return 0.5 - depth * np.exp(-0.5 * ((np.arange(k) - at) / width) ** 2)


def _row(rows, test, table, members, rate, reps):
    rate = float(np.mean(rate))
    rows.append((test, table, members, rate, np.sqrt(max(rate * (1 - rate), 1e-12) / reps), reps))


def synthetic(rows, reps):
    for S in (6, 8):
        for K in (5, 7):
            flat = np.full((K, 13), 0.5)
            _row(rows, "claim 1: any n called 'increases' (Holm over 13 n)", f"flat, {K} SNR x 13 n", S,
                 rejection_rates(lambda r: synthetic_panel(flat, S, r), claim1_positive, reps, seed=1), reps)
        single = np.full((7, 1), 0.5)
        _row(rows, "claim 1: one n, uncorrected", "flat, 7 SNR", S,
             rejection_rates(lambda r: synthetic_panel(single, S, r), claim1_positive, reps, seed=2), reps)
        for step in (0.02, 0.05):
            means = 0.5 + step * np.arange(7)[:, None] + np.zeros((7, 13))
            _row(rows, "claim 1: power per n (Holm over 13 n)", f"rise {step} per SNR step, 7 SNR", S,
                 rejection_rates(lambda r: synthetic_panel(means, S, r), claim1_rises, reps // 2, seed=3),
                 reps // 2)
    th = thresholds_at(np.geomspace(0.1, 100, 7), NS, 5)
    reps2 = max(reps // 5, 20)
    for S in (6, 8):
        _row(rows, "claim 2: 'holds' per SNR (Holm over 7 SNR)", "flat, 7 SNR x 13 n", S,
             rejection_rates(lambda r: synthetic_panel(np.full((7, 13), 0.5), S, r, ns=NS),
                             lambda p: claim2_holds(p, th, n_boot=100), reps2, seed=4), reps2 * 7)
        for depth in (0.1, 0.2, 0.3):
            _row(rows, "claim 2: power per SNR", f"dip of {depth} at the threshold", S,
                 rejection_rates(lambda r: synthetic_panel(np.tile(_dip(depth), (7, 1)), S, r, ns=NS),
                                 lambda p: claim2_holds(p, th, n_boot=100), reps2, seed=5), reps2 * 7)


def from_tasks(rows, results: Path, reps):
    from alignlib.claims import panel
    from alignlib.cubes import read_netcdf
    from alignlib.verdicts import primary_metric

    for path in sorted(results.glob("*/alignment.nc")):
        table = read_netcdf(path)
        metric, layer = primary_metric(table)
        real = panel(table, metric, layer)
        if not np.isfinite(real.values).all():
            continue
        _row(rows, "claim 1: any n called 'increases' (Holm)", f"{path.parent.name} {metric}: own noise, flat",
             real.S, rejection_rates(lambda r: null_panel_from(real, r), claim1_positive, reps, seed=6), reps)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=400)
    parser.add_argument("--results", type=Path)
    args = parser.parse_args()
    t0 = time.perf_counter()
    rows = []
    synthetic(rows, args.reps)
    if args.results:
        from_tasks(rows, args.results, args.reps)
    print("| test | table | members | rate | ± | repetitions |")
    print("|---|---|---:|---:|---:|---:|")
    for test, table, members, rate, se, reps in rows:
        print(f"| {test} | {table} | {members} | {rate:.3f} | {se:.3f} | {reps} |")
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
