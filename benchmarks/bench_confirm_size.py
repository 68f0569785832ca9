"""How many members does the held-out run need? Power of claim 2's rule at the curves a run measured.

    python benchmarks/bench_confirm_size.py --results results --members 10 20 30 --draws 3 --reps 100

For every task of the run, the primary metric's mean curves over n (alignment.nc, every SNR: the
Holm correction across SNRs stays as in the run) are taken as the truth, and each grid point's member noise is set
so that its standard error at the run's own member count equals the measured member-jackknife one
(alignlib.claims.calibration.point_se: member effect and pair noise of equal size). Synthetic tables with
m members per draw in K data draws (members nested in draws; no extra spread between draws, which
would lower the power) and the run's threshold bracket (alignlib.claims.calibration.threshold_noise_fit)
then go through the pipeline's claim-2 rule (alignlib.claims.claim_tests.minimum_near_threshold, c = 1.5,
90 % joint bootstrap). Printed: the rates of holds / fails / undecided per task, SNR and size.

Caveats, stated with the table: the measured curve's minimum is a noisy minimum (it overstates
the dip a little), and the run whose curves are used is the exploratory one, so the sizes are a
pilot estimate.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.optimize import brentq

from alignlib.claims.calibration import point_se, threshold_noise_fit
from alignlib.claims.claim_tests import Criteria, minimum_near_threshold, panel
from alignpipe.cubes import read_netcdf
from alignlib.stats.members import pair_index
from alignlib.claims.verdicts import primary_metric


def member_sd_for(se: float, S: int) -> float:
    """The member (and pair) sd that gives a grid point's mean the standard error ``se`` with S members."""
    if not se > 0:
        return 0.0
    return brentq(lambda sd: point_se(S, sd) - se, 1e-9, 10.0)


def nested_panel(base, mean: np.ndarray, sd: np.ndarray, m: int, K: int, rng, brackets: list):
    """A Panel like ``base`` with true means ``mean`` and per-point member sd ``sd`` (snr, n), K draws of m
    members (pairs within draws), and each SNR's threshold in its bracket (None: every member fits)."""
    S = m * K
    draw = np.repeat(np.arange(K), m)
    a, b = np.triu_indices(S, 1)
    keep = draw[a] == draw[b]
    ia, ib, _ = pair_index(a[keep], b[keep], np.arange(S))
    u = rng.standard_normal(mean.shape + (S,)) * sd[..., None]
    e = rng.standard_normal(mean.shape + (len(ia),)) * sd[..., None]
    values = mean[..., None] + u[..., ia] + u[..., ib] + e
    fit = np.concatenate([threshold_noise_fit((1, mean.shape[1]), base.ns, br, S) if br is not None
                          else np.zeros((1, mean.shape[1], S)) for br in brackets])
    return replace(base, values=values, ia=ia, ib=ib, S=S, draw=draw if K > 1 else None, noise_fit=fit,
                   test_error=None)


def tasks(results: Path):
    """(task, panel, mean, se, brackets) of every task's primary metric; a bracket per SNR (None where the
    threshold lies outside the grid)."""
    for path in sorted(results.glob("*/alignment.nc")):
        table = read_netcdf(path)
        metric, layer = primary_metric(table)
        p = panel(table, metric, layer)
        mean, se = p.means()
        brackets = []
        for i in range(len(p.snrs)):
            pos = int(np.cumprod((p.noise_fit[i] <= 0.01).mean(-1) >= 0.5).sum() - 1)
            brackets.append((int(p.ns[pos]), int(p.ns[pos + 1])) if 0 <= pos < len(p.ns) - 1 else None)
        if np.isfinite(mean).all():
            yield path.parent.name, p, mean, se, brackets


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--members", type=int, nargs="+", default=[10, 20, 30], help="members per draw")
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--n-boot", type=int, default=400)
    args = parser.parse_args()
    t0 = time.perf_counter()
    crit = Criteria(n_boot=args.n_boot)
    print(f"| task | SNR | dip D (measured) | threshold bracket | members per draw x {args.draws} draws | holds | fails "
          "| undecided |")
    print("|---|---:|---:|---|---|---:|---:|---:|")
    for task, p, mean, se, brackets in tasks(args.results):
        sd = np.vectorize(lambda v: member_sd_for(v, p.S))(se)
        depth = np.minimum(mean[:, 0], mean[:, -1]) - mean[:, 1:-1].min(-1)
        for m in args.members:
            rng = np.random.default_rng(0)
            calls = np.array([[r["call"] for r in minimum_near_threshold(
                nested_panel(p, mean, sd, m, args.draws, rng, brackets), crit)] for _ in range(args.reps)])
            for i, snr in enumerate(p.snrs):
                if brackets[i] is None:
                    continue
                rate = {c: float((calls[:, i] == c).mean()) for c in ("holds", "fails", "undecided")}
                print(f"| `{task}` | {snr:g} | {depth[i]:.3f} | {brackets[i][0]}–{brackets[i][1]} | {m} x {args.draws} | "
                      f"{rate['holds']:.2f} | {rate['fails']:.2f} | {rate['undecided']:.2f} |", flush=True)
    print(f"\n{time.perf_counter() - t0:.0f} s; {args.reps} tables per row, binomial s.e. <= "
          f"{0.5 / np.sqrt(args.reps):.2f}")


if __name__ == "__main__":
    main()
