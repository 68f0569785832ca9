"""Error rates of the claim tests: false positives on null tables, power on stated effects.

    python benchmarks/bench_calibration.py                      # synthetic tables only (about 8 min on one core)
    python benchmarks/bench_calibration.py --results results    # also the nulls built from each task's own noise

Every table goes through the functions the pipeline calls (alignlib.claims.claim_tests: increases_with_snr,
minimum_near_threshold, grid_step_tests + claim4_cell, error_alignment_coupling; alignlib.stats.threshold:
double_descent_peak), with the criteria fixed in docs/methods.md (alpha 0.05, c = 1.5, a 90 % joint
member-bootstrap interval of 1000 replicates). Tables (alignlib.claims.calibration):

* alignment: pair value = mean + u_a + u_b + e_ab, member effect u and pair noise e with sd 0.05
  each, every grid point its own members; a grid point's mean has s.e. 0.037 with 8 members and
  0.032 with 10 (alignlib.claims.calibration.point_se); "z se" below is in those units;
* claim 1: 7 SNR x 13 n (the linear task's grid) and 3 SNR x 10 n (mlp_classification's);
* claim 2: 3 SNRs with the same curve, on the default n grids: mlp (20 ... 1300, threshold bracket
  [200, 300], t = 245), linear (10 ... 1000, bracket [50, 55], t = 52.4) and the mlp grid refined
  around t (bracket [225, 250]); every member interpolates up to the bracket's lower end and none
  beyond it; the curve is a Gaussian dip in log n (sd 0.4) of depth d with its minimum at t, c t or
  2c t (c = 1.5), or a spike of height d at t between dips of depth d at t / 3 and 3 t;
* claim 4: 3 SNR x 10 n, mean test error falling by a stated number of standard errors of a step's
  difference at every grid step and mean alignment rising by a stated number (perfectly coupled:
  alignment a strictly decreasing function of the error), optionally with one decoupled region
  (at the middle SNR, alignment and error rise together over two n steps, then fall back);
  members' test errors have sd 0.03;
* Spearman rho coverage: the population rho is Spearman's rho between the true mean alignment and
  the true mean test error over the 30 grid points (what the estimate tends to with infinitely
  many members); the true means are a fixed random pattern spread over a stated number of
  standard errors of a grid point's mean;
* the test-error peak: members' test errors (sd 0.03) around a flat curve, a curve falling (linear
  in log n) from 0.6 to 0.2 at n = 150 and flat beyond, and that curve with a peak of stated
  height at n = 300 (3 SNRs, Holm across them; the interval's 100 replicates do not enter the test);
* the task's own noise (``--results DIR``: every DIR/*/alignment.nc, its headline panel; and a
  synthetic task-like panel always): alignlib.claims.calibration.null_panel_from, a wild bootstrap of
  each grid point's members around one common mean with SNR labels shuffled at every n; the
  shrunk-se rows divide the standard errors the tests use by 10 (alignlib.claims.calibration.scaled_se).

A rate is a mean over the repetitions column: tables (familywise rates, claim 4, coverage) or
cells (per n, per SNR: tables x cells). The +- column is its binomial standard error, with the
rate floored at 1 / repetitions (so a rate of 0 is not shown as exact).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from alignlib.claims.calibration import (
    GRIDS,
    LOCATION_CASES,
    SNRS3,
    binomial_se,
    call_rates,
    claim1_calls,
    claim1_means,
    claim2_calls,
    claim4_call,
    claim4_panel,
    error_curve,
    location_panel,
    null_panel_from,
    point_se,
    rho_panel,
    scaled_se,
    synthetic_panel,
    test_error_table,
    threshold_noise_fit,
)

DEPTHS = (0.10, 0.16, 0.26)  # claim 2: about 3, 5 and 8 standard errors of a grid point with 10 members
SNRS7 = np.geomspace(0.1, 100, 7)


def _row(rows, test, table, members, rate, reps):
    rate = float(np.mean(rate))
    rows.append((test, table, members, rate, binomial_se(rate, reps), reps))


def _rate(make, test, reps, seed):
    rng = np.random.default_rng(seed)
    got = [np.asarray(test(make(rng)), dtype=float) for _ in range(reps)]
    return float(np.mean(got)), int(np.size(got))


def _any(call):
    return lambda p: bool((claim1_calls(p) == call).any())


def _decided(p):
    return bool((claim1_calls(p) != "undecided").any())


def claim1(rows, reps):
    for K, N, label in ((7, 13, "7 SNR x 13 n"), (3, 10, "3 SNR x 10 n")):
        for S in (8, 10):
            snrs = SNRS7 if K == 7 else SNRS3
            flat = claim1_means(K, N, "flat")
            make = (lambda M: lambda r: synthetic_panel(M, S, r, snrs=snrs))(flat)
            _row(rows, "claim 1: holds at any n (familywise)", f"flat, {label}", S,
                 *_rate(make, _any("holds"), reps, 1))
            _row(rows, "claim 1: fails at any n (familywise; fall or falling trend)", f"flat, {label}", S,
                 *_rate(make, _any("fails"), reps, 1))
            diff = np.sqrt(2) * point_se(S)
            for step in (0.02, 0.05):
                make = (lambda M: lambda r: synthetic_panel(M, S, r, snrs=snrs))(claim1_means(K, N, "rise", step))
                rates, cells = call_rates(make, claim1_calls, reps // 2, seed=2)
                _row(rows, "claim 1: holds per n (power)",
                     f"rise {step} ({step / diff:.1f} se) per SNR step, {label}", S, rates["holds"], cells)
            for z in (3, 5, 8):
                fall = z * diff
                M = claim1_means(K, N, "rise then fall", 0.05, fall)
                make = (lambda M: lambda r: synthetic_panel(M, S, r, snrs=snrs))(M)
                rates, cells = call_rates(make, claim1_calls, reps // 2, seed=3)
                table = f"rise 0.05 per step, then a fall of {fall:.2f} ({z} se) at the last step, {label}"
                _row(rows, "claim 1: holds per n (false)", table, S, rates["holds"], cells)
                _row(rows, "claim 1: fails per n (power)", table, S, rates["fails"], cells)


def claim2(rows, reps):
    configs = [("mlp", S, case, d) for S in (8, 10) for case in LOCATION_CASES
               for d in ((0.0,) if case == "flat" else DEPTHS)]
    configs += [("linear", 8, case, d) for case in LOCATION_CASES for d in ((0.0,) if case == "flat" else DEPTHS)]
    configs += [("refined", 10, case, 0.16) for case in ("min at t", "min at c t", "min at 2c t", "max at t")]
    for k, (grid, S, case, d) in enumerate(configs):
        ns, bracket = GRIDS[grid]
        rates, cells = call_rates(lambda r: location_panel(grid, case, d, S, r), claim2_calls, reps, seed=10 + k)
        table = (f"{grid} grid (bracket {bracket[0]}-{bracket[1]}), {case}"
                 + (f", d = {d:.2f} ({d / point_se(S):.1f} se)" if d else ""))
        for call in ("holds", "fails", "undecided"):
            _row(rows, f"claim 2: {call} per SNR", table, S, rates[call], cells)
    for case in ("min at t", "min at c t"):  # a close quorum: 3 of 10 members flip at both ends of the bracket
        rates, cells = call_rates(lambda r: location_panel("mlp", case, 0.26, 10, r, close=0.3), claim2_calls, reps,
                                  seed=99)
        table = f"mlp grid, {case}, d = 0.26 (8.0 se), close quorum (3/10 members flip at 200 and 300)"
        for call in ("holds", "fails", "undecided"):
            _row(rows, f"claim 2: {call} per SNR", table, 10, rates[call], cells)


def claim4(rows, reps, cov_reps):
    from alignlib.claims.claim_tests import error_alignment_coupling

    for S in (8, 10):
        cases = [("perfectly coupled: error steps 4 se, alignment steps 4 se", 4, 4, 0, ("holds", "fails")),
                 ("perfectly coupled: error steps 0.3 se, alignment steps 6 se (least favourable)", 0.3, 6, 0,
                  ("holds", "fails")),
                 ("perfectly coupled: error steps 3 se, alignment steps 10 se", 3, 10, 0, ("holds", "fails")),
                 ("coupled (4 se, 4 se) + one decoupled region, its steps 3 se", 4, 4, 3, ("holds",)),
                 ("coupled (4 se, 4 se) + one decoupled region, its steps 4 se", 4, 4, 4, ("holds",)),
                 ("coupled (1 se, 1 se) + one decoupled region, its steps 3 se", 1, 1, 3, ("holds",))]
        for k, (label, ez, az, rz, show) in enumerate(cases):
            rates, tables = call_rates(lambda r: claim4_panel(S, r, ez, az, rz), claim4_call, reps, seed=20 + k)
            for call in show:
                kind = "false" if (call == "holds" and not rz) else "power"
                _row(rows, f"claim 4: {call} ({kind})", label + ", 3 SNR x 10 n", S, rates[call], tables)
    for rho, spread in ((-0.9, 4.0), (-0.5, 4.0), (0.0, 4.0), (-0.5, 10.0)):
        hits, pop = [], np.nan
        rng = np.random.default_rng(30)
        for _ in range(cov_reps):
            p, pop = rho_panel(10, rng, rho, spread_z=spread)
            c = error_alignment_coupling(p)
            hits.append(c["low"] <= pop <= c["high"])
        _row(rows, "claim 4: coverage of the 95 % Spearman rho interval (basic, member bootstrap)",
             f"population rho {pop:.2f}, true means spread {spread:g} se, 3 SNR x 10 n", 10, np.mean(hits), cov_reps)


def peak(rows, reps):
    from alignlib.stats.threshold import double_descent_peak

    ns = GRIDS["mlp"][0]
    for S in (8, 10):
        se = 0.03 / np.sqrt(S)
        for kind, z in (("flat", 0), ("falling then flat", 0), ("peak", 3), ("peak", 5), ("peak", 8)):
            curve = error_curve(ns, kind, z * se)
            rng = np.random.default_rng(40)
            got = [np.isfinite(double_descent_peak(test_error_table(curve, ns, S, rng), n_boot=100)["test_error_peak"])
                   for _ in range(reps)]
            label = {"flat": "flat", "falling then flat": "falling 0.6 -> 0.2 (n = 150), flat beyond",
                     "peak": f"falling then flat + a peak of {z} se ({z * se:.3f}) at n = 300"}[kind]
            _row(rows, "test-error peak: 'peak' per SNR" + (" (false)" if not z else " (power)"),
                 label + ", 3 SNR x 10 n", S, np.mean(got), reps * len(SNRS3))


def own_noise(rows, name: str, real, reps):
    """The task's own-noise null: spread, claim 1's false positives, and the shrunk-se check."""
    _, se = real.means()
    nulls = [null_panel_from(real, np.random.default_rng(1000 + k)) for k in range(reps)]
    m = np.array([q.means()[0] for q in nulls])
    ok = np.isfinite(m).all(0)
    spread = np.sqrt(np.mean((m[:, ok] - np.nanmean(m[:, ok])) ** 2))
    jack = np.sqrt(np.nanmean(se[np.isfinite(se)] ** 2))
    rows.append(("own-noise null: spread of a grid point's pair mean / the task's rms jackknife s.e.",
                 f"{name}: own noise, flat", real.S, spread / jack, np.nan, reps))
    grid = f"{len(real.snrs)} SNR x {len(real.ns)} n"
    for label, scale in (("", 1.0), (", s.e. shrunk 10x", 0.1)):
        panels = nulls if scale == 1 else [scaled_se(q, scale) for q in nulls]
        holds = np.mean([_any("holds")(q) for q in panels])
        decided = np.mean([_decided(q) for q in panels])
        _row(rows, "claim 1: holds at any n (familywise)", f"{name}: own noise, flat{label}, {grid}", real.S,
             holds, reps)
        _row(rows, "claim 1: decided (holds or fails) at any n", f"{name}: own noise, flat{label}, {grid}", real.S,
             decided, reps)
    if real.noise_fit is not None:
        k2 = max(reps // 10, 10)
        calls = np.concatenate([claim2_calls(q) for q in nulls[:k2]])
        _row(rows, "claim 2: holds per SNR (false)", f"{name}: own noise, flat, its own threshold", real.S,
             np.mean(calls == "holds"), len(calls))


def from_tasks(rows, results: Path, reps):
    from alignlib.claims.claim_tests import panel
    from alignpipe.cubes import read_netcdf
    from alignlib.claims.verdicts import primary_metric

    for path in sorted(results.glob("*/alignment.nc")):
        table = read_netcdf(path)
        metric, layer = primary_metric(table)
        real = panel(table, metric, layer)
        if real.S // real.draws < 3:
            continue
        own_noise(rows, f"{path.parent.name} {metric} {layer}", real, reps)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200,
                        help="tables per claim-1, claim-4 and own-noise row; claim 2 uses reps / 5 tables "
                             "(3 SNR cells each), the peak and the rho coverage reps / 2")
    parser.add_argument("--results", type=Path)
    args = parser.parse_args()
    t0 = time.perf_counter()
    rows = []
    for section, run in (("claim 1", lambda: claim1(rows, args.reps)),
                         ("claim 2", lambda: claim2(rows, max(args.reps // 5, 4))),
                         ("claim 4", lambda: claim4(rows, args.reps, max(args.reps // 2, 4))),
                         ("test-error peak", lambda: peak(rows, max(args.reps // 2, 4)))):
        t1 = time.perf_counter()
        run()
        print(f"{section}: {time.perf_counter() - t1:.0f} s", file=sys.stderr, flush=True)
    # a task-like panel (7 SNR x 13 n, 8 members, rising 0.05 per SNR step) for the own-noise null
    ns, bracket = GRIDS["linear"]
    rng = np.random.default_rng(7)
    real = synthetic_panel(claim1_means(7, 13, "rise", 0.05), 8, rng, snrs=SNRS7, ns=ns,
                           noise_fit=threshold_noise_fit((7, 13), ns, bracket, 8, rng))
    own_noise(rows, "synthetic task (rise 0.05 per SNR step)", real, args.reps)
    if args.results:
        from_tasks(rows, args.results, args.reps)
    print("| test | table | members | rate | ± | repetitions |")
    print("|---|---|---:|---:|---:|---:|")
    for test, table, members, rate, se, reps in rows:
        pm = f"{se:.3f}" if np.isfinite(se) else "–"
        print(f"| {test} | {table} | {members} | {rate:.3f} | {pm} | {reps} |")
    print(f"\nrun time {time.perf_counter() - t0:.0f} s (--reps {args.reps})")


if __name__ == "__main__":
    main()
