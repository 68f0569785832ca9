"""The paper's claims, each as a test with a named statistic and null, on a task's alignment table.

The criteria (level, the c of "near", the interval's coverage) were fixed before the results
they decide: docs/methods.md, "Criteria fixed before the results they decide".

The unit of replication is the member: a grid point's mean over member pairs gets its
standard error from the delete-one-member jackknife and its bootstrap distribution from
resampling members (alignlib.stats.members). Members at different grid points are independent
(each has its own noise and initialisation), so grid points are resampled independently.
With several data draws (members nested in draws) the standard error is the two-stage one
and the bootstrap resamples draws first, then members (alignlib.stats.members.member_bootstrap).

Every test gives *cells* that ``hold``, ``fail`` or stay ``undecided``; one rule
(alignlib.claims.verdicts.aggregate) turns a claim's cells into its verdict.

* Claim 1, :func:`increases_with_snr` (cell: one n): alignment rises monotonically with SNR.
  Rise: the rank contrast of the pair means in SNR, T = sum_k c_k m_k, c_k = rank(snr_k) - mean
  rank, reported as the rise per SNR step T / sum c_k^2; t = T / se(T) with Welch-Satterthwaite
  degrees of freedom; null: no rise; one-sided, Holm across n. Fall: at every adjacent SNR step
  the one-sided test of m_{k+1} < m_k (:func:`snr_steps`), Holm across every step of the panel
  together with the falling-trend tests (one family for every evidence of a fall).
  Holds: a significant rise and no significant fall; fails: a significant fall or falling trend.
* Claim 2, :func:`minimum_near_threshold` (cell: one SNR): alignment is lowest at an n near the
  interpolation threshold. Dip: D = min(m_first, m_last) - min over interior n of m_n; null: the
  least favourable monotone curve with the observed errors, D simulated (:func:`dip_test`); Holm
  across SNRs. Location: r = log(n_min / t) with a joint member-bootstrap interval
  (:func:`location_ratio`). Holds: significant dip and the interval of r inside [-log c, log c];
  fails: significant dip and the interval wholly outside. The curve's shape at t is described
  (:func:`shape_at`), not tested.
* Claim 4, :func:`decoupling` (cell: the grid): higher alignment does not imply lower test error.
  Every adjacent grid step, in n and in SNR, tests the change of mean alignment and of mean clean
  test error (two-sided, Holm across steps each; :func:`grid_step_tests`). Holds: some step where
  both change significantly in the same direction (decoupled); fails: some step changes the error
  significantly and every such step has alignment moving significantly the other way (coupled).
  Spearman's rho between alignment and test error over the grid, with a member-bootstrap basic
  interval (:func:`error_alignment_coupling`), describes the coupling.

Every function returns plain rows (dicts); :mod:`alignlib.claims.verdicts` turns them into verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

from alignlib._extras import pipeline_import  # noqa: E402

xr = pipeline_import("xarray", __name__)

from alignlib.stats.members import (
    bootstrap_pair_means,
    holm,
    member_bootstrap,
    nested_mean_se,
    nested_pair_mean,
    pair_index,
)
from alignlib.stats.threshold import noise_fit_of

__all__ = ["ALPHA", "Criteria", "Panel", "panel", "welch_df", "snr_trend", "trend_call", "snr_steps", "cell_claim1", "increases_with_snr", "dip_depth", "dip_test", "threshold_positions", "threshold_midpoint", "location_ratio", "location_call", "shape_at", "claim2_cell", "minimum_near_threshold", "grid_steps", "grid_step_tests", "claim4_cell", "error_alignment_coupling", "decoupling"]

ALPHA = 0.05


@dataclass(frozen=True)
class Criteria:
    """The fixed criteria of the claim tests (docs/methods.md; config key ``claims``).

    ``tol`` and ``quorum`` define when a grid point interpolates (alignlib.stats.threshold)."""

    alpha: float = ALPHA
    near_factor: float = 1.5
    location_level: float = 0.9
    tol: float = 0.01
    quorum: float = 0.5
    n_boot: int = 1000
    seed: int = 0

    @classmethod
    def from_config(cls, claims: dict | None = None, tol: float | None = None, **extra) -> Criteria:
        """From the config's ``claims`` section (and a task's ``interpolation_tol``)."""
        values = {k: v for k, v in (claims or {}).items() if k in ("alpha", "near_factor", "location_level")}
        if tol is not None:
            values["tol"] = float(tol)
        return cls(**values, **extra)


@dataclass(frozen=True)
class Panel:
    """One metric at one layer: pair values (snr, n, pair) on sorted grids and the member indices,
    with each member's data draw and, for claims 2 and 4, its noise_fit and test error (snr, n, S)."""

    metric: str
    layer: str
    values: np.ndarray
    snrs: np.ndarray
    ns: np.ndarray
    ia: np.ndarray
    ib: np.ndarray
    S: int
    draw: np.ndarray | None = None
    noise_fit: np.ndarray | None = field(default=None, repr=False)
    test_error: np.ndarray | None = field(default=None, repr=False)

    @property
    def draws(self) -> int:
        return 1 if self.draw is None else len(np.unique(self.draw))

    def means(self):
        """(mean, se) over pairs, each (snr, n); se is NaN with fewer than 3 members per draw."""
        if self.S // self.draws < 3:
            return self.values.mean(-1), np.full(self.values.shape[:-1], np.nan)
        return nested_pair_mean(self.values, self.ia, self.ib, self.S, self.draw)

    def error_means(self):
        """(mean, se) of the members' clean test error per (snr, n)."""
        if self.test_error is None:
            raise ValueError("this panel has no test_error (claim 4 and the error peak need it)")
        return nested_mean_se(self.test_error, self.draw)


def _member_values(ds: xr.Dataset, name: str, snrs, ns) -> np.ndarray | None:
    if name not in ds:
        return None
    return ds[name].transpose("snr", "n", "seed").sel(snr=snrs, n=ns).values.astype(np.float64)


def panel(ds: xr.Dataset, metric: str, layer: str) -> Panel:
    """The Panel of (metric, layer) from an alignment table (alignment.nc), with its members' draws
    (coordinate ``draw`` of ``seed``, when the task has several data draws), noise_fit and test error."""
    values = ds["alignment"].sel(metric=metric, layer=layer).transpose("snr", "n", "pair").sortby("snr").sortby("n")
    ia, ib, S = pair_index(ds["seed_a"].values, ds["seed_b"].values, ds["seed"].values)
    snrs, ns = values["snr"].values, values["n"].values
    draw = ds["draw"].values if "draw" in ds.coords and ds["draw"].dims == ("seed",) else None
    try:
        fit = noise_fit_of(ds).transpose("snr", "n", "seed").sel(snr=snrs, n=ns).values.astype(np.float64)
    except (KeyError, ValueError):
        fit = None
    return Panel(metric, str(layer), values.values.astype(np.float64), snrs, ns, ia, ib, S,
                 draw=None if draw is None or len(np.unique(draw)) < 2 else np.asarray(draw),
                 noise_fit=fit, test_error=_member_values(ds, "test_error", snrs, ns))


def _random_argmin(x: np.ndarray, rng: np.random.Generator, axis: int = -1) -> np.ndarray:
    """argmin along ``axis`` with ties broken uniformly at random (NaN never wins; all-NaN -> -1)."""
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    finite = np.isfinite(x)
    lowest = np.min(np.where(finite, x, np.inf), axis=-1, keepdims=True)
    keys = np.where(finite & (x == lowest), rng.random(x.shape), -1.0)
    out = np.argmax(keys, axis=-1)
    return np.where(finite.any(-1), out, -1)


def welch_df(v1, v2, members: int):
    """Welch-Satterthwaite degrees of freedom of a difference of two means with variances v1, v2,
    each from ``members`` members."""
    v1, v2 = np.asarray(v1, float), np.asarray(v2, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (v1 + v2) ** 2 / ((v1 ** 2 + v2 ** 2) / max(members - 1, 1))


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


def snr_steps(means: np.ndarray, ses: np.ndarray, members: int) -> tuple[np.ndarray, np.ndarray]:
    """Change of the pair mean at every adjacent SNR step (means, ses along SNR, sorted) and the
    one-sided p of a fall, t = (m_{k+1} - m_k) / sqrt(se_k^2 + se_{k+1}^2) on Welch df (NaN where a
    point is missing or the step has no sampling error)."""
    diff = means[1:] - means[:-1]
    v1, v2 = ses[:-1] ** 2, ses[1:] ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        t = diff / np.sqrt(v1 + v2)
        p = sps.t.cdf(t, welch_df(v1, v2, members))
    p = np.where(np.isfinite(t) & (v1 + v2 > 0), p, np.nan)
    return diff, p


def cell_claim1(trend: str, falls: int) -> str:
    """A cell of claim 1 from its trend call and its number of significant falls."""
    if falls > 0 or trend == "decreases":
        return "fails"
    if trend == "increases":
        return "holds"
    return "undecided"


def increases_with_snr(p: Panel, alpha: float = ALPHA) -> list[dict]:
    """Claim 1 at every n: the rise per SNR step (one-sided p raw and Holm across n), the evidence of a
    fall (a falling trend at any n and a fall at any adjacent SNR step: one Holm family across the
    panel), the largest fall, and the cell's call."""
    mean, se = p.means()
    members = p.S - p.draws + 1
    tests = [snr_trend(mean[:, j], se[:, j], p.snrs, members) for j in range(len(p.ns))]
    up = holm([t["p_up"] for t in tests])
    steps = [snr_steps(mean[:, j], se[:, j], members) for j in range(len(p.ns))]
    # every evidence of a fall (a falling trend at any n, a fall at any adjacent SNR step) is one
    # Holm family, so that "fails" keeps its level (two families would let it reach 2 alpha)
    falls_p = np.concatenate([[t["p_down"] for t in tests]] + [s[1] for s in steps])
    falls_q = holm(falls_p)
    down, fall_q = falls_q[:len(p.ns)], falls_q[len(p.ns):].reshape(len(p.ns), -1)
    rows = []
    for j, (n, t, q_up, q_down) in enumerate(zip(p.ns, tests, up, down)):
        trend = trend_call(q_up, q_down, alpha)
        diff, q = steps[j][0], fall_q[j]
        falls = int(np.sum(q < alpha))
        worst = int(np.nanargmin(diff)) if np.isfinite(diff).any() else -1
        half = sps.t.ppf(1 - alpha / 2, t["df"]) * t["se"] if np.isfinite(t["df"]) else np.nan
        fall_text = (f"; largest fall {-diff[worst]:.3g} from SNR {p.snrs[worst]:g} to {p.snrs[worst + 1]:g} "
                     f"(Holm p {q[worst]:.3g})" if worst >= 0 and diff[worst] < 0 else "")
        rows.append(dict(claim=1, metric=p.metric, layer=p.layer, snr="all", n=int(n),
                         call=cell_claim1(trend, falls), trend=trend, significant_falls=falls,
                         largest_fall=float(-diff[worst]) if worst >= 0 else np.nan,
                         largest_fall_p_holm=float(q[worst]) if worst >= 0 else np.nan,
                         statistic="rise per SNR step (rank contrast)", estimate=t["slope"],
                         ci_low=t["slope"] - half, ci_high=t["slope"] + half, p_value=t["p_up"], p_holm=q_up,
                         p_holm_decrease=q_down, members=p.S,
                         detail=f"trend {trend}: t = {t['t']:.2f} on {t['df']:.1f} df, {t['snrs_used']} SNRs; "
                                f"{falls} significant fall(s) between adjacent SNRs{fall_text}"))
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


def threshold_positions(fitted: np.ndarray) -> np.ndarray:
    """Grid position of the threshold along the first axis of ``fitted`` (n, ...): the last n of the
    leading run of interpolating grid points (-1: none; len - 1: every n interpolates)."""
    return np.cumprod(np.asarray(fitted, dtype=int), axis=0).sum(0) - 1


def threshold_midpoint(ns: np.ndarray, pos) -> np.ndarray:
    """t, the geometric midpoint of the threshold's grid bracket [ns[pos], ns[pos + 1]]; 0 below the
    grid (pos = -1) and inf beyond it (pos = len - 1)."""
    ns = np.asarray(ns, dtype=np.float64)
    pos = np.asarray(pos)
    inner = np.clip(pos, 0, len(ns) - 2)
    mid = np.sqrt(ns[inner] * ns[inner + 1])
    return np.where(pos < 0, 0.0, np.where(pos >= len(ns) - 1, np.inf, mid))


def location_ratio(p: Panel, i: int, crit: Criteria, rng: np.random.Generator) -> dict:
    """r = log(n_min / t) at SNR index ``i`` with its joint member-bootstrap interval.

    n_min is the n of the lowest mean alignment (ties at random); t the geometric midpoint of the
    threshold's bracket (:func:`threshold_midpoint`), the threshold being the last n up to which at
    least ``quorum`` of the members have noise_fit <= ``tol``. Each of ``n_boot`` replicates
    resamples the members of every grid point once (draws first with several data draws), and the
    same members give the replicate's curve (n_min) and its threshold (t); a replicate's threshold
    below the grid gives r = +inf, beyond it r = -inf. Interval: the ``location_level`` percentile
    interval (no interpolation between replicates).
    """
    ns = p.ns
    values = p.values[i]
    mean = np.where(np.isfinite(values).all(-1), values.mean(-1), np.nan)
    k = int(_random_argmin(mean, rng))
    fitted = (p.noise_fit[i] <= crit.tol)  # (n, S)
    pos = int(threshold_positions(fitted.mean(-1) >= crit.quorum))
    t = float(threshold_midpoint(ns, pos))
    out = dict(n_min=float(ns[k]) if k >= 0 else np.nan, t=t, threshold_position=pos,
               r=np.nan, r_low=np.nan, r_high=np.nan, n_min_low=np.nan, n_min_high=np.nan)
    if k < 0:
        return out
    with np.errstate(divide="ignore"):
        out["r"] = float(np.log(ns[k] / t))
    idx, slots = member_bootstrap(rng, (len(ns),), crit.n_boot, p.S, p.draw)  # (n, B, S)
    curves = bootstrap_pair_means(values, p.ia, p.ib, p.S, idx, slots)  # (n, B)
    k_boot = _random_argmin(curves, rng, axis=0)  # (B,)
    fit_boot = np.take_along_axis(fitted[:, None, :].astype(float), idx, axis=-1).mean(-1) >= crit.quorum
    t_boot = threshold_midpoint(ns, threshold_positions(fit_boot))  # (B,)
    ok = k_boot >= 0
    with np.errstate(divide="ignore"):
        r_boot = np.log(ns[k_boot[ok]] / t_boot[ok])
    a = (1 - crit.location_level) / 2
    out.update(r_low=float(np.quantile(r_boot, a, method="lower")),
               r_high=float(np.quantile(r_boot, 1 - a, method="higher")),
               n_min_low=float(np.quantile(ns[k_boot[ok]], a, method="lower")),
               n_min_high=float(np.quantile(ns[k_boot[ok]], 1 - a, method="higher")))
    return out


def location_call(r_low: float, r_high: float, near_factor: float) -> str:
    """``inside`` when [r_low, r_high] lies within [-log c, log c], ``outside`` when it misses it
    entirely, else ``straddles``."""
    bound = np.log(near_factor)
    if -bound <= r_low and r_high <= bound:
        return "inside"
    if r_high < -bound or r_low > bound:
        return "outside"
    return "straddles"


def shape_at(mean: np.ndarray, se: np.ndarray, ns: np.ndarray, t: float, z: float = 2.0) -> str:
    """The curve's shape at the grid point nearest t (in log n), against its two neighbours:
    ``dip`` / ``spike`` when it lies below / above both by more than z standard errors of the
    difference, ``rising`` / ``falling`` when it lies between them with one such difference,
    ``flat`` otherwise; ``edge`` when that point is the first or last of the grid, ``none``
    without a threshold inside the grid. A description, not a test.

    t, the geometric midpoint of its bracket, is equally near both bracket ends in log n; such a
    tie goes to the smaller n, the last interpolating n (where the linear theory puts n = d)."""
    if not (np.isfinite(t) and t > 0):
        return "none"
    dist = np.abs(np.log(np.asarray(ns, float)) - np.log(t))
    k = int(np.flatnonzero(dist <= dist.min() + 1e-9)[0])  # ties (up to rounding) -> the smaller n
    if k == 0 or k == len(ns) - 1:
        return "edge"
    with np.errstate(invalid="ignore", divide="ignore"):
        left = (mean[k] - mean[k - 1]) / np.hypot(se[k], se[k - 1])
        right = (mean[k] - mean[k + 1]) / np.hypot(se[k], se[k + 1])
    if not (np.isfinite(left) and np.isfinite(right)):
        return "flat"
    if left < -z and right < -z:
        return "dip"
    if left > z and right > z:
        return "spike"
    if left > z or right < -z:
        return "rising"
    if left < -z or right > z:
        return "falling"
    return "flat"


def claim2_cell(dip_p_holm: float, location: str, threshold_position: int, grid: int,
                alpha: float = ALPHA) -> tuple[str, str]:
    """(call, why) of one SNR of claim 2."""
    if threshold_position < 0:
        return "undecided", "no n of the grid interpolates: threshold below the grid"
    if threshold_position >= grid - 1:
        return "undecided", "every n of the grid interpolates: threshold beyond the grid"
    if not np.isfinite(dip_p_holm):
        return "undecided", "curve too short or ends not finite"
    if dip_p_holm >= alpha:
        return "undecided", f"no significant dip (Holm p = {dip_p_holm:.3g})"
    if location == "inside":
        return "holds", f"significant dip (Holm p = {dip_p_holm:.3g}) located near the threshold"
    if location == "outside":
        return "fails", f"significant dip (Holm p = {dip_p_holm:.3g}) located away from the threshold"
    return "undecided", f"significant dip (Holm p = {dip_p_holm:.3g}), location interval straddles the bound"


def minimum_near_threshold(p: Panel, crit: Criteria | None = None) -> list[dict]:
    """Claim 2 at every SNR: the dip (D, p, Holm across SNRs), r = log(n_min / t) with its joint
    bootstrap interval, the shape at t, and the call (module docstring; docs/methods.md)."""
    crit = crit or Criteria()
    if p.noise_fit is None:
        raise ValueError("claim 2 needs the members' noise_fit (snr, n, seed) to locate the threshold")
    rng = np.random.default_rng(crit.seed)
    mean, se = p.means()
    tests = [dip_test(mean[i], se[i], rng) for i in range(len(p.snrs))]
    adjusted = holm([t[1] for t in tests])
    bound = np.log(crit.near_factor)
    rows = []
    for i, snr in enumerate(p.snrs):
        D, pv = tests[i]
        loc = location_ratio(p, i, crit, rng)
        where = location_call(loc["r_low"], loc["r_high"], crit.near_factor)
        call, why = claim2_cell(adjusted[i], where, loc["threshold_position"], len(p.ns), crit.alpha)
        pos = loc["threshold_position"]
        bracket = (float(p.ns[pos]) if 0 <= pos < len(p.ns) else np.nan,
                   float(p.ns[pos + 1]) if pos + 1 < len(p.ns) and pos >= -1 else np.nan)
        shape = shape_at(mean[i], se[i], p.ns, loc["t"])
        rows.append(dict(
            claim=2, metric=p.metric, layer=p.layer, snr=float(snr), n="all", members=p.S, call=call,
            statistic="dip depth min(ends) - min(interior)", estimate=D, p_value=pv, p_holm=adjusted[i],
            n_min=loc["n_min"], ci_low=loc["n_min_low"], ci_high=loc["n_min_high"],
            threshold=loc["t"], threshold_low=bracket[0], threshold_high=bracket[1],
            r=loc["r"], r_low=loc["r_low"], r_high=loc["r_high"], near_factor=crit.near_factor,
            location_level=crit.location_level, location=where, shape_at_threshold=shape,
            detail=(f"{why}; n_min = {loc['n_min']:g}, t = {loc['t']:.4g} (bracket {bracket[0]:g}-{bracket[1]:g}); "
                    f"r = log(n_min/t) = {loc['r']:.2f} [{loc['r_low']:.2f}, {loc['r_high']:.2f}] "
                    f"({crit.location_level:.0%}) vs +-{bound:.2f} (c = {crit.near_factor:g}); shape at t: {shape}")))
    return rows


# ---------------------------------------------------------------- claim 4


def grid_steps(shape: tuple[int, int]) -> list[tuple[str, tuple[int, int], tuple[int, int]]]:
    """Every adjacent step of an (snr, n) grid: ("n", from, to) along n at each SNR, then ("snr", ...)."""
    K, N = shape
    along_n = [("n", (i, j), (i, j + 1)) for i in range(K) for j in range(N - 1)]
    along_snr = [("snr", (i, j), (i + 1, j)) for j in range(N) for i in range(K - 1)]
    return along_n + along_snr


def _two_sided(diff, v1, v2, members):
    with np.errstate(invalid="ignore", divide="ignore"):
        t = diff / np.sqrt(v1 + v2)
        p = 2 * sps.t.sf(np.abs(t), welch_df(v1, v2, members))
    return np.where(np.isfinite(t) & (v1 + v2 > 0), p, np.nan)


def grid_step_tests(p: Panel, alpha: float = ALPHA) -> list[dict]:
    """Claim 4's evidence: at every adjacent grid step the change of mean alignment (member-jackknife
    errors) and of mean clean test error (members' errors), each two-sided on Welch df and
    Holm-corrected across the steps; ``kind`` is ``decoupled`` (both significant, same sign),
    ``coupled`` (both significant, opposite signs), ``error only``, ``alignment only`` or ``neither``."""
    a, a_se = p.means()
    e, e_se = p.error_means()
    members = p.S - p.draws + 1
    steps = grid_steps(a.shape)
    src = tuple(np.array([s[1][d] for s in steps]) for d in (0, 1))
    dst = tuple(np.array([s[2][d] for s in steps]) for d in (0, 1))
    da, de = a[dst] - a[src], e[dst] - e[src]
    qa = holm(_two_sided(da, a_se[src] ** 2, a_se[dst] ** 2, members))
    qe = holm(_two_sided(de, e_se[src] ** 2, e_se[dst] ** 2, members))
    rows = []
    for k, (axis, s, d) in enumerate(steps):
        sig_a, sig_e = bool(qa[k] < alpha), bool(qe[k] < alpha)
        if sig_a and sig_e:
            kind = "decoupled" if np.sign(da[k]) == np.sign(de[k]) else "coupled"
        else:
            kind = "error only" if sig_e else "alignment only" if sig_a else "neither"
        rows.append(dict(axis=axis, snr_from=float(p.snrs[s[0]]), n_from=int(p.ns[s[1]]), snr_to=float(p.snrs[d[0]]),
                         n_to=int(p.ns[d[1]]), alignment_change=float(da[k]), alignment_p_holm=float(qa[k]),
                         error_change=float(de[k]), error_p_holm=float(qe[k]), kind=kind))
    return rows


def claim4_cell(steps: list[dict]) -> tuple[str, str]:
    """(call, why) of claim 4 from its grid-step tests."""
    kinds = [s["kind"] for s in steps]
    decoupled, coupled = kinds.count("decoupled"), kinds.count("coupled")
    error_steps = decoupled + coupled + kinds.count("error only")
    counts = (f"{len(steps)} grid steps: {error_steps} with a significant change of test error, "
              f"{decoupled} decoupled, {coupled} coupled")
    if decoupled:
        return "holds", counts
    if error_steps and coupled == error_steps:
        return "fails", counts + " (every significant change of error has alignment moving the other way)"
    return "undecided", counts


def error_alignment_coupling(p: Panel, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Spearman's rank correlation over grid points between mean alignment and mean test error, with a
    member-bootstrap basic interval (the same resampled members for both)."""
    mean, _ = p.means()
    err, _ = p.error_means()
    ok = np.isfinite(mean) & np.isfinite(err)
    if ok.sum() < 3:
        return dict(rho=np.nan, low=np.nan, high=np.nan, points=int(ok.sum()))
    rho = float(sps.spearmanr(mean[ok], err[ok])[0])
    rng = np.random.default_rng(seed)
    idx, slots = member_bootstrap(rng, mean.shape, n_boot, p.S, p.draw)  # (snr, n, B, S)
    boot_a = bootstrap_pair_means(p.values, p.ia, p.ib, p.S, idx, slots)  # (snr, n, B)
    boot_e = np.take_along_axis(p.test_error[:, :, None, :], idx, axis=-1).mean(-1)
    a, e = boot_a[ok].T, boot_e[ok].T  # (B, points)
    ra, re_ = sps.rankdata(a, axis=1), sps.rankdata(e, axis=1)
    ra -= ra.mean(1, keepdims=True)
    re_ -= re_.mean(1, keepdims=True)
    with np.errstate(invalid="ignore"):
        samples = (ra * re_).sum(1) / np.sqrt((ra * ra).sum(1) * (re_ * re_).sum(1))
    q_lo, q_hi = np.nanquantile(samples, [(1 - level) / 2, (1 + level) / 2])
    # basic interval: resampling members adds noise to both means, which pulls the replicates'
    # rho towards 0; reflecting the percentiles about the estimate corrects that shift
    lo, hi = np.clip([2 * rho - q_hi, 2 * rho - q_lo], -1.0, 1.0)
    return dict(rho=rho, low=float(lo), high=float(hi), points=int(ok.sum()))


def decoupling(p: Panel, alpha: float = ALPHA) -> dict:
    """Claim 4 for one panel: the call from the grid-step tests, with the coupling described."""
    steps = grid_step_tests(p, alpha)
    call, why = claim4_cell(steps)
    coupling = error_alignment_coupling(p)
    rho = f"Spearman rho(alignment, test error) = {coupling['rho']:.2f} [{coupling['low']:.2f}, {coupling['high']:.2f}]"
    decoupled = sorted((s for s in steps if s["kind"] == "decoupled"), key=lambda s: -abs(s["alignment_change"]))
    top = ""
    if decoupled:
        s = decoupled[0]
        top = (f"; largest decoupled step: (SNR {s['snr_from']:g}, n {s['n_from']}) -> (SNR {s['snr_to']:g}, "
               f"n {s['n_to']}): alignment {s['alignment_change']:+.3f}, test error {s['error_change']:+.3g}")
    kinds = [s["kind"] for s in steps]
    return dict(claim=4, metric=p.metric, layer=p.layer, snr="all", n="all", call=call,
                statistic="Spearman rho(alignment, test error)", estimate=coupling["rho"], ci_low=coupling["low"],
                ci_high=coupling["high"],
                p_value=min((min(s["alignment_p_holm"], s["error_p_holm"]) for s in decoupled), default=np.nan),
                members=p.S, steps=len(steps), error_steps=sum(k in ("decoupled", "coupled", "error only") for k in kinds),
                decoupled_steps=kinds.count("decoupled"), coupled_steps=kinds.count("coupled"),
                detail=f"{why}{top}; {rho}", step_tests=steps)
