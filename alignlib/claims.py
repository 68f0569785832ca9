"""The paper's claims, tested on a task's alignment table.

Each function returns plain rows (dicts) for ``results/summary.csv``; nothing here
decides what is plotted. Tolerances are explicit arguments.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .alignment import linear_input_dim, pair_mean, primary_layer


def _panels(ds):
    for metric in [str(m) for m in ds["metric"].values]:
        layer = primary_layer(ds, metric)
        values = ds["alignment"].sel(metric=metric, layer=layer)
        if bool(np.isfinite(values).any()):
            yield metric, layer, values


def pair_matrix(values: xr.DataArray, seed_a, seed_b, seeds) -> np.ndarray:
    """The (S, S) member matrix of one grid point from its pair values (diagonal 1)."""
    index = {s: i for i, s in enumerate(seeds)}
    m = np.eye(len(seeds))
    for v, a, b in zip(values, seed_a, seed_b):
        m[index[a], index[b]] = m[index[b], index[a]] = v
    return m


def increases_with_snr(ds: xr.Dataset, level: float = 0.95, n_boot: int = 200) -> list[dict]:
    """Claim 1: at every n, mean alignment does not decrease from one SNR to the next.

    A decrease counts as a tie when the two SNRs' bootstrap intervals (members resampled,
    alignlib.stats.bootstrap_members, seeded) overlap.
    """
    from .stats import bootstrap_members

    rows = []
    seeds, sa, sb = ds["seed"].values, ds["seed_a"].values, ds["seed_b"].values
    for metric, layer, values in _panels(ds):
        values = values.sortby("snr")
        for n in ds["n"].values:
            intervals = []
            for snr in values["snr"].values:
                pairs = values.sel(snr=snr, n=n).values
                if not np.isfinite(pairs).all():
                    intervals.append(None)
                    continue
                intervals.append(bootstrap_members(pair_matrix(pairs, sa, sb, seeds), n_boot=n_boot, level=level,
                                                   seed=0))
            worst, holds, detail = 0.0, True, "no decrease"
            for lo_snr, hi_snr, a, b in zip(values["snr"].values, values["snr"].values[1:], intervals, intervals[1:]):
                if a is None or b is None:
                    continue
                drop = a.estimate - b.estimate
                if drop > worst:
                    worst = drop
                    tie = b.high >= a.low
                    holds = holds and tie
                    detail = (f"largest drop {drop:.4f} from SNR {lo_snr:g} to {hi_snr:g}; {level:.0%} bootstrap "
                              f"intervals [{a.low:.3f}, {a.high:.3f}] vs [{b.low:.3f}, {b.high:.3f}]"
                              + (" overlap (tie)" if tie else " do not overlap"))
                elif drop > 0 and b.high < a.low:
                    holds = False
            rows.append(dict(claim="alignment increases with SNR", metric=metric, layer=layer, snr="all",
                             n=int(n), holds=bool(holds), value=float(worst), detail=detail))
    return rows


def minimum_over_n(ds: xr.Dataset, threshold, bounds=(0.85, 1.15)) -> list[dict]:
    """Claim 2: at every SNR, alignment is lowest near the interpolation threshold.

    ``threshold``: a number (e.g. d), or a DataArray/dict over snr (NaN/None: no threshold).
    The claim holds at an SNR when the minimising n lies in [bounds[0] * t, bounds[1] * t]
    and the minimum is below the alignment at both the smallest and the largest n.
    Rows for an SNR without a threshold say so and have holds = None.
    """
    rows = []
    ns = ds["n"].values
    for metric, layer, values in _panels(ds):
        mean, _ = pair_mean(values)
        for snr in ds["snr"].values:
            if isinstance(threshold, xr.DataArray):
                t = float(threshold.sel(snr=snr))
            elif isinstance(threshold, dict):
                t = threshold.get(float(snr))
            else:
                t = threshold
            t = None if t is None or not np.isfinite(t) else float(t)
            curve = mean.sel(snr=snr).values
            k = int(np.nanargmin(curve))
            n_min = int(ns[k])
            dip = bool(curve[k] < curve[0] and curve[k] < curve[-1])
            near = t is not None and bounds[0] * t <= n_min <= bounds[1] * t
            rows.append(dict(claim="alignment minimal near the interpolation threshold", metric=metric,
                             layer=layer, snr=float(snr), n=n_min,
                             holds=None if t is None else bool(dip and near), value=float(curve[k]),
                             detail=(f"argmin n = {n_min}, threshold = {t:g}, window {bounds[0]:g}-{bounds[1]:g} x threshold, "
                                     f"below both ends: {dip}") if t is not None else
                                    f"argmin n = {n_min}; no interpolation threshold detected at this SNR"))
    return rows


def equal_error_different_alignment(ds: xr.Dataset, rel_error_tol: float = 0.1,
                                    min_gap: float = 0.1) -> tuple[list[dict], dict]:
    """Claim 4: grid points with (nearly) equal test error but clearly different alignment.

    For each metric, among all pairs of (snr, n) grid points whose mean test errors differ
    by at most ``rel_error_tol`` (relative), pick the pair with the largest alignment gap.
    Returns summary rows and {metric: [((snr, n), (snr, n))]} for the figure.
    """
    err = ds["test_error"].mean("seed")
    points = [(float(s), int(n)) for s in ds["snr"].values for n in ds["n"].values]
    e = np.array([float(err.sel(snr=s, n=n)) for s, n in points])
    rows, highlight = [], {}
    for metric, layer, values in _panels(ds):
        mean, _ = pair_mean(values)
        a = np.array([float(mean.sel(snr=s, n=n)) for s, n in points])
        close = np.abs(e[:, None] - e[None, :]) <= rel_error_tol * np.minimum(e[:, None], e[None, :])
        gap = np.where(close, np.abs(a[:, None] - a[None, :]), -np.inf)
        i, j = np.unravel_index(int(np.argmax(gap)), gap.shape)
        best = float(gap[i, j])
        holds = best >= min_gap
        lo, hi = (i, j) if a[i] < a[j] else (j, i)
        if holds:
            highlight[metric] = [(points[lo], points[hi])]
        rows.append(dict(claim="equal test error, different alignment", metric=metric, layer=layer,
                         snr=f"{points[lo][0]:g} vs {points[hi][0]:g}", n=f"{points[lo][1]} vs {points[hi][1]}",
                         holds=bool(holds), value=best,
                         detail=f"test error {e[lo]:.4g} vs {e[hi]:.4g}; alignment {a[lo]:.3f} vs {a[hi]:.3f}"))
    return rows, highlight


def task_claims(table: xr.Dataset) -> list[dict]:
    """Every check of one task's alignment table, each row tagged with the task.

    The minimum over n is judged against n = d to within 15 % for a linear network, and
    against the detected interpolation threshold to within a factor 2 otherwise.
    """
    d = linear_input_dim(table)
    if d is not None:
        minimum = minimum_over_n(table, float(d), bounds=(0.85, 1.15))
    else:
        minimum = minimum_over_n(table, table["interpolation_threshold"], bounds=(0.5, 2.0))
    rows = increases_with_snr(table) + minimum + equal_error_different_alignment(table)[0]
    return [{"task": table.attrs["task"], **row} for row in rows]
