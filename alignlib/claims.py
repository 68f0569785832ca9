"""The paper's claims, each as a test with a named statistic and null, on a task's alignment table.

The unit of replication is the member: a grid point's mean over member pairs gets its
standard error from the delete-one-member jackknife and its bootstrap distribution from
resampling members (alignlib.members). Members at different grid points are independent
(each has its own noise and initialisation), so grid points are resampled independently.

* Claim 1, :func:`snr_trend`: at one n, alignment rises with SNR.
  Statistic: the linear contrast of the pair means in SNR rank, T = sum_k c_k m_k with
  c_k = rank(snr_k) - mean rank, reported as the mean rise per SNR step T / sum c_k^2.
  Null: no rise, E[T] <= 0. T / se(T), se^2 = sum c_k^2 se_k^2 (jackknife), is referred to
  a t distribution with Welch-Satterthwaite degrees of freedom; one-sided p for a rise (and,
  separately, for a fall), each Holm-corrected across the n of the grid (:func:`increases_with_snr`).
* Claim 2, :func:`dip_test` and :func:`minimum_location`: at one SNR, alignment is lowest
  at an interior n near the interpolation threshold. Statistic: the depth of the dip,
  D = min(m_first, m_last) - min over interior n of m_n. Null: a monotone curve in n (no
  dip), at its least favourable (one end far above, the interior at the other end's level),
  with the observed per-point jackknife errors, D simulated; Holm-corrected across SNRs. The minimising n has a member-bootstrap percentile
  interval (ties broken at random, never towards a grid edge).
* Claim 4, :func:`equal_error_different_alignment` and :func:`error_alignment_coupling`:
  pairs of grid points whose mean test errors are equivalent (two one-sided t tests, margin
  ``margin`` x their mean error) while their alignments differ by more than the grid-wide
  monotone relation between alignment and test error predicts (two-sided jackknife t test on
  the residuals of an isotonic fit of alignment on error, Holm-corrected across the equivalent
  pairs); and Spearman's rank correlation between alignment and test error over the grid with
  a member-bootstrap (basic) interval.

Every function returns plain rows (dicts); :mod:`alignlib.verdicts` turns them into
verdicts. Tolerances and levels are explicit arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy import stats as sps

from .members import bootstrap_pair_means, holm, jackknife_pair_mean, pair_index, resample_members

ALPHA = 0.05


@dataclass(frozen=True)
class Panel:
    """One metric at one layer: pair values (snr, n, pair) on sorted grids, and the member indices."""

    metric: str
    layer: str
    values: np.ndarray
    snrs: np.ndarray
    ns: np.ndarray
    ia: np.ndarray
    ib: np.ndarray
    S: int

    def means(self):
        """Jackknife (mean, se) over pairs, each (snr, n); se is NaN with fewer than 3 members."""
        if self.S < 3:
            return self.values.mean(-1), np.full(self.values.shape[:-1], np.nan)
        return jackknife_pair_mean(self.values, self.ia, self.ib, self.S)


def panel(ds: xr.Dataset, metric: str, layer: str) -> Panel:
    values = ds["alignment"].sel(metric=metric, layer=layer).transpose("snr", "n", "pair").sortby("snr").sortby("n")
    ia, ib, S = pair_index(ds["seed_a"].values, ds["seed_b"].values, ds["seed"].values)
    return Panel(metric, str(layer), values.values.astype(np.float64), values["snr"].values,
                 values["n"].values, ia, ib, S)


def _random_argmin(x: np.ndarray, rng: np.random.Generator, axis: int = -1) -> np.ndarray:
    """argmin along ``axis`` with ties broken uniformly at random (NaN never wins; all-NaN -> -1)."""
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    finite = np.isfinite(x)
    lowest = np.min(np.where(finite, x, np.inf), axis=-1, keepdims=True)
    keys = np.where(finite & (x == lowest), rng.random(x.shape), -1.0)
    out = np.argmax(keys, axis=-1)
    return np.where(finite.any(-1), out, -1)


# ---------------------------------------------------------------- claim 1


def snr_trend(means: np.ndarray, ses: np.ndarray, snrs: np.ndarray, members: int) -> dict:
    """Trend of the pair means over SNR at one n (see module docstring); NaN points are dropped.

    Returns slope (mean rise per SNR step), its standard error, t, the Welch-Satterthwaite degrees
    of freedom (the grid points' errors differ, by up to two orders of magnitude on the linear
    task) and the one-sided p-values of a rise (``p_up``) and of a fall (``p_down``); p is NaN
    when fewer than 3 SNRs have a finite mean, or when the contrast has no sampling error.
    """
    keep = np.isfinite(means) & np.isfinite(ses)
    out = dict(slope=np.nan, se=np.nan, t=np.nan, df=np.nan, p_up=np.nan, p_down=np.nan, snrs_used=int(keep.sum()))
    if keep.sum() < 3 or members < 2:
        return out
    m, se = means[keep], ses[keep]
    ranks = sps.rankdata(np.asarray(snrs)[keep])
    c = ranks - ranks.mean()
    scale = float((c * c).sum())
    terms = (c * c) * (se * se)
    T, V = float(c @ m), float(terms.sum())
    out.update(slope=T / scale, snrs_used=int(keep.sum()))
    if not V > 0:  # no sampling error to judge the contrast by: no test
        return out
    df = V * V / float((terms * terms).sum() / (members - 1))
    t = T / np.sqrt(V)
    out.update(se=np.sqrt(V) / scale, t=float(t), df=float(df), p_up=float(sps.t.sf(t, df)),
               p_down=float(sps.t.cdf(t, df)))
    return out


def trend_call(p_up_adjusted: float, p_down_adjusted: float, alpha: float = ALPHA) -> str:
    """``increases`` / ``decreases`` when the one-sided (Holm-adjusted) p is below alpha, else ``flat``."""
    if not (np.isfinite(p_up_adjusted) and np.isfinite(p_down_adjusted)):
        return "undecided"
    if p_up_adjusted < alpha:
        return "increases"
    if p_down_adjusted < alpha:
        return "decreases"
    return "flat"


def increases_with_snr(p: Panel, alpha: float = ALPHA) -> list[dict]:
    """Claim 1 at every n: rows with the trend per SNR step, its one-sided p for a rise (raw, and Holm
    across n; likewise for a fall) and the call."""
    mean, se = p.means()
    tests = [snr_trend(mean[:, j], se[:, j], p.snrs, p.S) for j in range(len(p.ns))]
    up, down = holm([t["p_up"] for t in tests]), holm([t["p_down"] for t in tests])
    rows = []
    for n, t, q_up, q_down in zip(p.ns, tests, up, down):
        call = trend_call(q_up, q_down, alpha)
        half = sps.t.ppf(1 - alpha / 2, t["df"]) * t["se"] if np.isfinite(t["df"]) else np.nan
        rows.append(dict(claim=1, metric=p.metric, layer=p.layer, snr="all", n=int(n), call=call,
                         statistic="rise per SNR step (rank contrast)", estimate=t["slope"],
                         ci_low=t["slope"] - half, ci_high=t["slope"] + half, p_value=t["p_up"], p_holm=q_up,
                         p_holm_decrease=q_down, members=p.S,
                         detail=f"t = {t['t']:.2f} on {t['df']:.1f} df, {t['snrs_used']} SNRs"))
    return rows


# ---------------------------------------------------------------- claim 2


def dip_depth(curves: np.ndarray) -> np.ndarray:
    """D = min(first, last) - min(interior) along the last axis (NaN points ignored in the interior)."""
    interior = np.nanmin(curves[..., 1:-1], axis=-1)
    return np.minimum(curves[..., 0], curves[..., -1]) - interior


def dip_test(mean: np.ndarray, se: np.ndarray, rng: np.random.Generator, n_null: int = 4000) -> tuple[float, float]:
    """(D, one-sided p) of a dip in one curve against the least favourable monotone curve.

    Among curves without a dip (monotone in n) D is largest in distribution when one end lies far
    above and every interior point sits at the level of the other end: then D = z_end - min of the
    interior z, with z the per-point errors (N(0, se_k^2), the observed jackknife errors). The p is
    the larger of the two choices of end, so the test keeps its level on every monotone curve: flat,
    falling, or falling then levelling off (a flat null calls 10 % of those dips). Needs finite ends
    and at least one finite interior point (else (NaN, NaN)).
    """
    mean, se = np.asarray(mean, float), np.asarray(se, float)
    if len(mean) < 3 or not (np.isfinite(mean[[0, -1]]).all() and np.isfinite(mean[1:-1]).any()):
        return np.nan, np.nan
    ok = np.isfinite(mean) & np.isfinite(se)
    if not (ok[0] and ok[-1] and ok[1:-1].any()) or not (se[ok] > 0).any():
        return np.nan, np.nan
    D = float(dip_depth(np.where(ok, mean, np.nan)))
    z = rng.standard_normal((n_null, len(mean))) * np.where(ok, se, np.nan)
    interior = np.nanmin(z[:, 1:-1], axis=1)
    p = max(float((1 + np.sum(z[:, end] - interior >= D)) / (1 + n_null)) for end in (0, -1))
    return D, p


def minimum_location(values: np.ndarray, ia, ib, S: int, rng: np.random.Generator, n_boot: int = 1000,
                     level: float = 0.95) -> tuple[int, int, int]:
    """Grid positions (argmin, low, high) of the minimising n of one curve (values: (n, pairs)),
    the interval a member-bootstrap percentile interval; (-1, -1, -1) when the curve is all NaN."""
    mean = np.where(np.isfinite(values).all(-1), values.mean(-1), np.nan)
    k = int(_random_argmin(mean, rng))
    if k < 0:
        return -1, -1, -1
    idx = resample_members(rng, (values.shape[0], n_boot), S)
    boot = bootstrap_pair_means(values, ia, ib, S, idx)  # (n, B)
    ks = _random_argmin(boot, rng, axis=0)
    ks = ks[ks >= 0]
    a = (1 - level) / 2
    return k, int(np.quantile(ks, a, method="lower")), int(np.quantile(ks, 1 - a, method="higher"))


def _interval_overlap(a_lo, a_hi, b_lo, b_hi) -> bool:
    lo = [-np.inf if not np.isfinite(v) else v for v in (a_lo, b_lo)]
    hi = [np.inf if not np.isfinite(v) else v for v in (a_hi, b_hi)]
    return max(lo) <= min(hi)


def minimum_near_threshold(p: Panel, thresholds: xr.Dataset, alpha: float = ALPHA, seed: int = 0,
                           n_boot: int = 1000) -> list[dict]:
    """Claim 2 at every SNR: the dip (D, p, Holm across SNRs), the minimising n with its interval, and
    the call against the threshold interval ``thresholds`` (alignlib.threshold.task_thresholds).

    holds: significant dip and the n_min interval overlaps the threshold interval; fails: significant
    dip whose n_min interval misses the threshold interval; undecided: no threshold inside the grid,
    no significant dip, or no finite curve (the detail says which).
    """
    rng = np.random.default_rng(seed)
    mean, se = p.means()
    tests = [dip_test(mean[i], se[i], rng) for i in range(len(p.snrs))]
    adjusted = holm([t[1] for t in tests])
    rows = []
    for i, snr in enumerate(p.snrs):
        D, pv = tests[i]
        k, lo, hi = minimum_location(p.values[i], p.ia, p.ib, p.S, rng, n_boot=n_boot)
        th = thresholds.sel(snr=snr)
        t, t_lo, t_hi = (float(th[v]) for v in ("interpolation_threshold", "interpolation_threshold_low",
                                                  "interpolation_threshold_high"))
        t_next = float(th["first_non_interpolating_n"])
        row = dict(claim=2, metric=p.metric, layer=p.layer, snr=float(snr), n="all", members=p.S,
                   statistic="dip depth min(ends) - min(interior)", estimate=D, p_value=pv, p_holm=adjusted[i],
                   n_min=np.nan, ci_low=np.nan, ci_high=np.nan, threshold_low=t_lo, threshold_high=t_hi)
        if k < 0:
            rows.append(dict(row, call="undecided", detail="no finite alignment at this SNR"))
            continue
        n_min, n_lo, n_hi = (float(p.ns[j]) for j in (k, lo, hi))
        row.update(n_min=n_min, ci_low=n_lo, ci_high=n_hi)
        where = f"n_min = {n_min:g} [{n_lo:g}, {n_hi:g}]"
        band = f"threshold interval [{_fmt(t_lo, 'below grid')}, {_fmt(t_hi, 'beyond grid')}]"
        if not np.isfinite(t):
            call, why = "undecided", "no n of the grid interpolates: threshold below the grid"
        elif not np.isfinite(t_next):
            call, why = "undecided", "every n of the grid interpolates: threshold beyond the grid"
        elif not np.isfinite(adjusted[i]):
            call, why = "undecided", "curve too short or ends not finite"
        elif adjusted[i] >= alpha:
            call, why = "undecided", f"no significant dip (Holm p = {adjusted[i]:.3g})"
        elif _interval_overlap(n_lo, n_hi, t_lo, t_hi):
            call, why = "holds", f"significant dip (Holm p = {adjusted[i]:.3g}) overlapping the threshold"
        else:
            call, why = "fails", f"significant dip (Holm p = {adjusted[i]:.3g}) away from the threshold"
        rows.append(dict(row, call=call, detail=f"{why}; {where}; {band}"))
    return rows


def _fmt(v, missing):
    return f"{v:g}" if np.isfinite(v) else missing


# ---------------------------------------------------------------- claim 4


def _member_stats(test_error: xr.DataArray, snrs, ns):
    te = test_error.transpose("snr", "n", "seed").sel(snr=snrs, n=ns).values.astype(float)
    return te.mean(-1), te.var(-1, ddof=1) / te.shape[-1], te


def error_alignment_coupling(p: Panel, test_error: xr.DataArray, n_boot: int = 1000, level: float = 0.95,
                             seed: int = 0) -> dict:
    """Spearman's rank correlation over grid points between mean alignment and mean test error, with a
    member-bootstrap basic interval (the same resampled members for both)."""
    mean, _ = p.means()
    err, _, te = _member_stats(test_error, p.snrs, p.ns)
    ok = np.isfinite(mean) & np.isfinite(err)
    if ok.sum() < 3:
        return dict(rho=np.nan, low=np.nan, high=np.nan, points=int(ok.sum()))
    rho = float(sps.spearmanr(mean[ok], err[ok])[0])
    rng = np.random.default_rng(seed)
    idx = resample_members(rng, mean.shape + (n_boot,), p.S)  # (snr, n, B, S)
    boot_a = bootstrap_pair_means(p.values, p.ia, p.ib, p.S, idx)  # (snr, n, B)
    boot_e = np.take_along_axis(te[:, :, None, :], idx, axis=-1).mean(-1)
    a, e = boot_a[ok].T, boot_e[ok].T  # (B, points)
    ra, re_ = sps.rankdata(a, axis=1), sps.rankdata(e, axis=1)
    ra -= ra.mean(1, keepdims=True)
    re_ -= re_.mean(1, keepdims=True)
    samples = (ra * re_).sum(1) / np.sqrt((ra * ra).sum(1) * (re_ * re_).sum(1))
    q_lo, q_hi = np.nanquantile(samples, [(1 - level) / 2, (1 + level) / 2])
    # basic interval: resampling members adds noise to both means, which pulls the replicates'
    # rho towards 0; reflecting the percentiles about the estimate corrects that shift
    lo, hi = np.clip([2 * rho - q_hi, 2 * rho - q_lo], -1.0, 1.0)
    return dict(rho=rho, low=float(lo), high=float(hi), points=int(ok.sum()))


def coupling_residuals(alignment: np.ndarray, error: np.ndarray) -> np.ndarray:
    """Alignment minus what the grid-wide monotone relation with test error predicts (isotonic
    regression of alignment on error, rising or falling, whichever fits better)."""
    from sklearn.isotonic import IsotonicRegression

    fits = [IsotonicRegression(increasing=inc).fit(error, alignment).predict(error) for inc in (True, False)]
    best = min(fits, key=lambda f: float(np.sum((alignment - f) ** 2)))
    return alignment - best


def equal_error_different_alignment(p: Panel, test_error: xr.DataArray, margin: float = 0.1,
                                    alpha: float = ALPHA) -> list[dict]:
    """Pairs of grid points with equivalent mean test error and alignments that differ beyond the coupling.

    Equivalent: the (1 - 2 alpha) t interval (2 (S - 1) df) of the difference of mean test errors
    lies within +- margin x the two points' mean error (two one-sided tests). Different: the
    difference of the points' alignment residuals (alignment minus the isotonic fit of alignment on
    test error over the grid, :func:`coupling_residuals`) is significant in a two-sided jackknife
    t test, Holm-corrected across all equivalent pairs: two points whose errors differ by a few
    per cent do not count merely because alignment follows error. Pairs without a sampling error
    (fewer than 3 members, or identical pair values) are not tested. Returns the surviving pairs,
    largest alignment gap first.
    """
    mean, se = p.means()
    err, err_var, _ = _member_stats(test_error, p.snrs, p.ns)
    points = [(i, j) for i in range(len(p.snrs)) for j in range(len(p.ns))
              if np.isfinite(mean[i, j]) and np.isfinite(err[i, j]) and np.isfinite(se[i, j])]
    if len(points) < 3 or p.S < 3:
        return []
    a = np.array([mean[q] for q in points])
    s = np.array([se[q] for q in points])
    e = np.array([err[q] for q in points])
    ev = np.array([err_var[q] for q in points])
    resid = coupling_residuals(a, e)
    g, h = np.triu_indices(len(points), 1)
    diff_e, se_e = e[g] - e[h], np.sqrt(ev[g] + ev[h])
    df = 2 * (p.S - 1)
    equivalent = np.abs(diff_e) + sps.t.ppf(1 - alpha, df) * se_e <= margin * 0.5 * (e[g] + e[h])
    g, h = g[equivalent], h[equivalent]
    se_gap = np.sqrt(s[g] ** 2 + s[h] ** 2)
    testable = se_gap > 0
    g, h, se_gap = g[testable], h[testable], se_gap[testable]
    if len(g) == 0:
        return []
    tstat = (resid[g] - resid[h]) / se_gap
    q = holm(2 * sps.t.sf(np.abs(tstat), df))
    gap = a[g] - a[h]
    rows = []
    for k in np.argsort(-np.abs(gap)):
        if not q[k] < alpha:
            continue
        lo, hi = (g[k], h[k]) if a[g[k]] < a[h[k]] else (h[k], g[k])
        rows.append(dict(low=(float(p.snrs[points[lo][0]]), int(p.ns[points[lo][1]])),
                         high=(float(p.snrs[points[hi][0]]), int(p.ns[points[hi][1]])),
                         gap=float(abs(gap[k])), p_holm=float(q[k]), error_low=float(e[lo]), error_high=float(e[hi]),
                         alignment_low=float(a[lo]), alignment_high=float(a[hi])))
    return rows


def decoupling(p: Panel, test_error: xr.DataArray, margin: float = 0.1, alpha: float = ALPHA) -> dict:
    """Claim 4 for one panel: the call, the coupling and the decoupled pairs."""
    coupling = error_alignment_coupling(p, test_error)
    pairs = equal_error_different_alignment(p, test_error, margin, alpha)
    call = "holds" if pairs else "undecided"
    rho = f"Spearman rho(alignment, test error) = {coupling['rho']:.2f} [{coupling['low']:.2f}, {coupling['high']:.2f}]"
    if pairs:
        top = pairs[0]
        detail = (f"{len(pairs)} pair(s) of grid points with equivalent test error (margin {margin:.0%}) and "
                  f"alignment different beyond its monotone relation with error (Holm p < {alpha:g}); largest: (SNR {top['low'][0]:g}, n {top['low'][1]}) "
                  f"vs (SNR {top['high'][0]:g}, n {top['high'][1]}): error {top['error_low']:.3g} vs "
                  f"{top['error_high']:.3g}, alignment {top['alignment_low']:.3f} vs {top['alignment_high']:.3f}; {rho}")
    else:
        detail = (f"no pair with equivalent test error whose alignments differ beyond their monotone relation "
                  f"with error; {rho}")
    return dict(claim=4, metric=p.metric, layer=p.layer, snr="all", n="all", call=call,
                statistic="Spearman rho(alignment, test error)", estimate=coupling["rho"], ci_low=coupling["low"],
                ci_high=coupling["high"], p_value=min((r["p_holm"] for r in pairs), default=np.nan),
                members=p.S, decoupled_pairs=len(pairs), detail=detail, pairs=pairs)
