"""Synthetic alignment tables with a known truth, for measuring the claim tests' error rates.

Every table goes through the functions the pipeline calls (alignlib.claims.claim_tests, alignlib.stats.threshold);
on tables without the effect the rates are false-positive rates, on tables with a stated effect
they are powers (benchmarks/bench_calibration.py prints them, tests/test_claims.py asserts them).

* :func:`synthetic_panel`: pair values with member-level structure. At a grid point with true
  mean mu the pair (a, b) gets mu + u_a + u_b + e_ab, u ~ N(0, member_sd^2) per member (shared
  by its pairs) and e ~ N(0, pair_sd^2) per pair; every grid point has its own members. The
  standard error of a grid point's pair mean is :func:`point_se`. Optionally with the members'
  ``noise_fit`` and clean ``test_error`` (snr, n, S).
* :func:`threshold_noise_fit`: a known interpolation threshold. Every member interpolates
  (noise_fit 0) at n <= the bracket's lower end and none (1) above, optionally with a close
  quorum at the bracket's two ends; the threshold's bracket is then known
  (t = its geometric midpoint, alignlib.claims.claim_tests.threshold_midpoint).
* Claim 2: :func:`location_curve` (a dip in log n at t, c t or 2c t, or a spike at t flanked
  by minima at t/3 and 3t) and :func:`location_panel` on the default grids (:data:`GRIDS`).
* Claim 1: :func:`claim1_means` (flat, rising, rising then falling at the last SNR step).
* Claim 4: :func:`claim4_panel` (alignment a strictly decreasing function of the test error,
  optionally with one decoupled region) and :func:`rho_panel` (a known population Spearman rho).
* The test-error peak: :func:`error_curve` and :func:`test_error_table`.
* :func:`null_panel_from`: the null of claim 1 (and 2) with a task's own member-level noise.
* :func:`scaled_se`: a Panel whose standard errors are scaled (shrunk on purpose), to show that a
  null rejects when the errors the test uses are wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import stats as sps

from alignlib._extras import pipeline_import  # noqa: E402

xr = pipeline_import("xarray", __name__)

from alignlib.ensembles.alignment import member_pairs
from alignlib.claims.claim_tests import (
    ALPHA,
    Criteria,
    Panel,
    claim4_cell,
    grid_step_tests,
    increases_with_snr,
    minimum_near_threshold,
)
from alignlib.stats.members import draw_members

C = 1.5  # docs/methods.md: the c of "near", fixed in advance

#: (n grid, threshold bracket [last interpolating n, first non-interpolating n]) of the default tasks
GRIDS = {
    "mlp": (np.array([20, 50, 100, 150, 200, 300, 400, 600, 1000, 1300]), (200, 300)),
    "linear": (np.array([10, 20, 30, 40, 45, 50, 55, 60, 75, 100, 200, 500, 1000]), (50, 55)),
    # the mlp grid refined around t (as the refine checkpoint does): steps of about 1.1-1.2
    "refined": (np.array([20, 50, 100, 150, 175, 200, 225, 250, 275, 300, 350, 400, 600, 1000, 1300]), (225, 250)),
}
SNRS3 = np.array([1.0, 3.0, 10.0])

#: claim 2's location cases: where the curve's minimum lies, as a multiple of t (spike: a maximum at t)
LOCATION_CASES = {"flat": None, "min at t": 1.0, "min at c t": C, "min at 2c t": 2 * C, "max at t": "spike"}


def point_se(S: int, member_sd: float = 0.05, pair_sd: float | None = None) -> float:
    """Standard error of a grid point's mean over the S (S - 1) / 2 pairs of :func:`synthetic_panel`:
    sqrt(4 member_sd^2 / S + pair_sd^2 / pairs) (each member is in S - 1 of the pairs)."""
    pair_sd = member_sd if pair_sd is None else pair_sd
    return float(np.sqrt(4 * member_sd ** 2 / S + pair_sd ** 2 / (S * (S - 1) / 2)))


def synthetic_panel(means: np.ndarray, S: int, rng: np.random.Generator, member_sd: float = 0.05,
                    pair_sd: float | None = None, snrs=None, ns=None, noise_fit=None,
                    test_error=None) -> Panel:
    """A Panel with true pair means ``means`` (snr, n) and member-level noise (module docstring),
    and optionally the members' ``noise_fit`` and ``test_error`` (snr, n, S)."""
    means = np.asarray(means, dtype=np.float64)
    pair_sd = member_sd if pair_sd is None else pair_sd
    ia, ib = member_pairs(range(S))
    u = rng.standard_normal(means.shape + (S,)) * member_sd
    e = rng.standard_normal(means.shape + (len(ia),)) * pair_sd
    values = means[..., None] + u[..., ia] + u[..., ib] + e
    snrs = np.geomspace(0.1, 100, means.shape[0]) if snrs is None else np.asarray(snrs, float)
    ns = np.arange(1, means.shape[1] + 1) * 10 if ns is None else np.asarray(ns)
    return Panel("synthetic", "hidden", values, snrs, ns, ia, ib, S,
                 noise_fit=None if noise_fit is None else np.asarray(noise_fit, float),
                 test_error=None if test_error is None else np.asarray(test_error, float))


# ---------------------------------------------------------------- a known threshold


def threshold_noise_fit(shape: tuple[int, int], ns, bracket, S: int, rng: np.random.Generator | None = None,
                        close: float = 0.0) -> np.ndarray:
    """Members' noise_fit (snr, n, S) with the threshold inside ``bracket`` = (last interpolating n,
    first non-interpolating n), two adjacent grid points.

    Every member interpolates (0) at n <= bracket[0] and none (1) above. With ``close`` > 0 the
    quorum is close: at n = bracket[0] round(close S) members (a minority, drawn at random) do not
    interpolate, and at n = bracket[1] as many do, so the majority still puts the threshold in the
    bracket but member bootstrap replicates can move it by a grid step."""
    ns = np.asarray(ns)
    lo, hi = (int(np.flatnonzero(ns == b)[0]) for b in bracket)
    if hi != lo + 1:
        raise ValueError(f"bracket {bracket} must be two adjacent grid points of {ns.tolist()}")
    fit = np.where(ns <= bracket[0], 0.0, 1.0)[None, :, None] * np.ones((shape[0], 1, S))
    flips = int(round(close * S))
    if flips:
        if not flips < S / 2:
            raise ValueError(f"close = {close}: the flipping members must stay a minority of {S}")
        rng = rng or np.random.default_rng(0)
        for i in range(shape[0]):
            fit[i, lo, rng.choice(S, flips, replace=False)] = 1.0
            fit[i, hi, rng.choice(S, flips, replace=False)] = 0.0
    return fit


def bracket_midpoint(bracket) -> float:
    """t, the geometric midpoint of the bracket (as alignlib.claims.claim_tests.threshold_midpoint)."""
    return float(np.sqrt(bracket[0] * bracket[1]))


# ---------------------------------------------------------------- claim 2: location tables


def _bump(ns, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((np.log(np.asarray(ns, float)) - np.log(centre)) / width) ** 2)


def location_curve(ns, t: float, case: str, depth: float, width: float = 0.4, base: float = 0.5) -> np.ndarray:
    """True mean alignment over ``ns`` for one of :data:`LOCATION_CASES`: a Gaussian dip in log n of
    ``depth`` (sd ``width`` in log n) with its minimum at t, c t or 2c t; or a spike of height
    ``depth`` at t flanked by dips of ``depth`` at t / 3 and 3 t; or flat at ``base``.

    (t between two grid points, as the bracket's midpoint is, puts a feature at t on both of them
    equally; pass a grid point as ``t`` to centre it on one.)"""
    where = LOCATION_CASES[case]
    if where is None:
        return np.full(len(ns), base)
    if where == "spike":
        return base + depth * (_bump(ns, t, width) - _bump(ns, t / 3, width) - _bump(ns, 3 * t, width))
    return base - depth * _bump(ns, where * t, width)


def location_panel(grid: str, case: str, depth: float, S: int, rng: np.random.Generator, snrs=SNRS3,
                   member_sd: float = 0.05, close: float = 0.0, width: float = 0.4, at: float | None = None) -> Panel:
    """A claim-2 table on one of :data:`GRIDS`: every SNR the same :func:`location_curve` (relative
    to ``at``, by default t, the geometric midpoint of the grid's bracket), member noise as
    :func:`synthetic_panel`, and the members' noise_fit putting the threshold in the bracket
    (:func:`threshold_noise_fit`)."""
    ns, bracket = GRIDS[grid]
    curve = location_curve(ns, bracket_midpoint(bracket) if at is None else at, case, depth, width)
    means = np.tile(curve, (len(snrs), 1))
    fit = threshold_noise_fit(means.shape, ns, bracket, S, rng, close)
    return synthetic_panel(means, S, rng, member_sd=member_sd, snrs=snrs, ns=ns, noise_fit=fit)


# ---------------------------------------------------------------- claim 1 tables


def claim1_means(K: int, N: int, kind: str, step: float = 0.0, fall: float = 0.0, base: float = 0.5) -> np.ndarray:
    """(K SNR, N n) true means: ``flat``; ``rise`` (by ``step`` per SNR step); ``rise then fall``
    (rising by ``step`` per SNR step, then falling by ``fall`` at the last SNR step), at every n."""
    k = np.arange(K, dtype=float)
    if kind == "flat":
        curve = np.zeros(K)
    elif kind == "rise":
        curve = step * k
    elif kind == "rise then fall":
        curve = step * np.minimum(k, K - 2)
        curve[-1] -= fall
    else:
        raise ValueError(f"unknown claim-1 table {kind!r}")
    return base + curve[:, None] + np.zeros((1, N))


# ---------------------------------------------------------------- claim 4 tables


def claim4_means(K: int, N: int, error_step: float, alignment_step: float, region: float = 0.0,
                 region_alignment: float | None = None, at: tuple[int, int] | None = None,
                 error0: float = 0.8, alignment0: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """True (alignment, test error) means on a (K, N) grid.

    Coupled: the error falls by ``error_step`` at every grid step (in n and in SNR: a plane in the
    grid indices) and the alignment rises by ``alignment_step``, so the alignment is a strictly
    decreasing function of the error. With ``region`` > 0 one region is decoupled: at SNR index
    ``at[0]`` the two grid points after n index ``at[1]`` have error and alignment both rising by
    ``region`` (error) and ``region_alignment`` (alignment; default ``region``) per step from the
    value at ``at``, then falling back to the plane at the next n (both falling together)."""
    i, j = np.meshgrid(np.arange(K), np.arange(N), indexing="ij")
    err = error0 - error_step * (i + j)
    align = alignment0 + alignment_step * (i + j)
    if region > 0:
        i0, j0 = at if at is not None else (K // 2, N // 2 - 2)
        ra = region if region_alignment is None else region_alignment
        for m in (1, 2):
            err[i0, j0 + m] = err[i0, j0] + m * region
            align[i0, j0 + m] = align[i0, j0] + m * ra
    return align, err


def claim4_panel(S: int, rng: np.random.Generator, error_z: float, alignment_z: float, region_z: float = 0.0,
                 K: int = 3, ns=None, member_sd: float = 0.05, error_sd: float = 0.03, snrs=SNRS3) -> Panel:
    """A claim-4 table whose steps are stated in standard errors of a step's difference: the coupled
    plane of :func:`claim4_means` with error steps of ``error_z`` and alignment steps of
    ``alignment_z`` such errors, and (``region_z`` > 0) one decoupled region whose steps are
    ``region_z`` of them in both. Members' test errors: the mean plus N(0, error_sd^2)."""
    ns = GRIDS["mlp"][0] if ns is None else np.asarray(ns)
    sa = np.sqrt(2) * point_se(S, member_sd)
    se = np.sqrt(2) * error_sd / np.sqrt(S)
    align, err = claim4_means(K, len(ns), error_z * se, alignment_z * sa, region_z * se, region_z * sa)
    te = err[..., None] + rng.standard_normal(err.shape + (S,)) * error_sd
    return synthetic_panel(align, S, rng, member_sd=member_sd, snrs=snrs[:K], ns=ns, test_error=te)


def rho_panel(S: int, rng: np.random.Generator, rho: float, spread_z: float = 4.0, K: int = 3, ns=None,
              member_sd: float = 0.05, error_sd: float = 0.03, pattern_seed: int = 12345) -> tuple[Panel, float]:
    """(Panel, population rho) for the coverage of the Spearman interval.

    The population rho is Spearman's rho between the true mean alignment and the true mean test
    error over the grid points: what the estimate converges to with infinitely many members. The
    true means are a fixed pattern (seeded by ``pattern_seed``, the same in every repetition):
    error = 0.4 + spread z1, alignment = 0.5 + spread' (rho z1 + sqrt(1 - rho^2) z2), z1, z2 standard
    normal over the grid points, each spread ``spread_z`` standard errors of a grid point's mean."""
    ns = GRIDS["mlp"][0] if ns is None else np.asarray(ns)
    z = np.random.default_rng(pattern_seed).standard_normal((2, K, len(ns)))
    e_se, a_se = error_sd / np.sqrt(S), point_se(S, member_sd)
    err = 0.4 + spread_z * e_se * z[0]
    align = 0.5 + spread_z * a_se * (rho * z[0] + np.sqrt(1 - rho ** 2) * z[1])
    te = err[..., None] + rng.standard_normal(err.shape + (S,)) * error_sd
    population = float(sps.spearmanr(align.ravel(), err.ravel())[0])
    return synthetic_panel(align, S, rng, member_sd=member_sd, snrs=SNRS3[:K], ns=ns, test_error=te), population


# ---------------------------------------------------------------- the test-error peak


def error_curve(ns, kind: str, height: float = 0.0, level: float = 0.2, start: float = 0.6,
                flat_from: float = 150, peak_at: float = 300) -> np.ndarray:
    """True mean test error over ``ns``: ``flat`` (at ``level``); ``falling then flat`` (from ``start``
    at the first n, linear in log n, to ``level`` at ``flat_from``, flat beyond); ``peak`` (that curve
    plus ``height`` at the grid point ``peak_at``: an interior local maximum of prominence ``height``)."""
    ns = np.asarray(ns, float)
    if kind == "flat":
        return np.full(len(ns), level)
    frac = np.clip(np.log(ns / ns[0]) / np.log(flat_from / ns[0]), 0, 1)
    curve = start + (level - start) * frac
    if kind == "peak":
        curve = curve + height * (ns == peak_at)
    elif kind != "falling then flat":
        raise ValueError(f"unknown error curve {kind!r}")
    return curve


def test_error_table(curve: np.ndarray, ns, S: int, rng: np.random.Generator, snrs=SNRS3,
                     error_sd: float = 0.03) -> xr.DataArray:
    """Members' clean test error (snr, n, seed): ``curve`` at every SNR plus N(0, error_sd^2) per member."""
    values = curve[None, :, None] + rng.standard_normal((len(snrs), len(curve), S)) * error_sd
    return xr.DataArray(values, coords={"snr": np.asarray(snrs, float), "n": np.asarray(ns), "seed": np.arange(S)},
                        dims=("snr", "n", "seed"))


# ---------------------------------------------------------------- nulls from a task's own noise


def _wild_null(values: np.ndarray, ia: np.ndarray, ib: np.ndarray, S: int, centre: float,
               rng: np.random.Generator) -> np.ndarray:
    """Pair values (G, P) of one data draw regenerated around ``centre``, keeping their member noise.

    Each grid point's pairs are decomposed as v_ab = m + alpha_a + alpha_b + eps_ab (Sum alpha = 0,
    eps with zero member sums): alpha_a = (S - 1) / (S - 2) (row mean of member a - m). The null
    table is centre + s_a alpha'_a + s_b alpha'_b + t_ab eps'_ab with independent random signs s, t
    (a wild bootstrap: members' effects and pair residuals keep their sizes, lose their place),
    where alpha' and eps' are rescaled so that the null's pair mean has the variance the model
    v = mu + u_a + u_b + e_ab gives: 4 var(u) / S + var(e) / P. Unbiased estimates:
    var(e) = Sum eps^2 / (P - S), var(u) = Sum alpha^2 / (S - 1) - var(e) / (S - 2) (clipped at 0);
    without residual degrees of freedom (S = 3) var(e) = 0 and the alphas carry everything."""
    G, P = values.shape
    incidence = np.zeros((P, S))
    incidence[np.arange(P), ia] = 1.0
    incidence[np.arange(P), ib] = 1.0
    m = values.mean(-1, keepdims=True)
    row = (values @ incidence) / (S - 1)  # (G, S)
    alpha = (S - 1) / (S - 2) * (row - m)
    eps = values - m - alpha[:, ia] - alpha[:, ib]
    if P > S:
        var_e = (eps ** 2).sum(-1) / (P - S)
        var_u = np.maximum((alpha ** 2).sum(-1) / (S - 1) - var_e / (S - 2), 0.0)
    else:
        var_e = np.zeros(G)
        var_u = (alpha ** 2).sum(-1) / (S - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        k_a = np.where((alpha ** 2).sum(-1) > 0, np.sqrt(S * var_u / (alpha ** 2).sum(-1)), 0.0)
        k_e = np.where((eps ** 2).sum(-1) > 0, np.sqrt(P * var_e / (eps ** 2).sum(-1)), 0.0)
    s = rng.choice([-1.0, 1.0], size=(G, S))
    t = rng.choice([-1.0, 1.0], size=(G, P))
    a = k_a[:, None] * alpha * s
    return centre + a[:, ia] + a[:, ib] + k_e[:, None] * eps * t


def null_panel_from(p: Panel, rng: np.random.Generator) -> Panel:
    """The null of claim 1 (no effect of SNR) with the task's own member-level noise.

    Every grid point is regenerated around one common mean (the panel's grand mean) by a wild
    bootstrap of its members (:func:`_wild_null`): its members' effects and pair residuals are
    kept in size and given random signs, so the null's pair means vary around the common mean as
    much as the task's members make them vary (by the jackknife s.e. of that grid point), not by
    0, as when the pairs were only centred. Then the SNR labels are shuffled at every n (the
    grid points' noise levels trade places). With several data draws each draw is regenerated
    on its own pairs (the draws' own differences are not kept: the null has none). Grid points
    with a non-finite pair value stay NaN. noise_fit and test_error are kept as they are."""
    values = np.asarray(p.values, dtype=np.float64)
    K, N, P = values.shape
    finite = np.isfinite(values).all(-1)
    centre = float(values[finite].mean()) if finite.any() else np.nan
    res = np.full((K * N, P), np.nan)  # C order: a table from xarray may not be
    flat = values.reshape(K * N, P)
    ok = finite.reshape(-1)
    for members in draw_members(p.draw, p.S):
        local = np.full(p.S, -1)
        local[members] = np.arange(len(members))
        mine = (local[p.ia] >= 0) & (local[p.ib] >= 0)
        if len(members) < 3 or not ok.any():
            continue
        block = flat[np.ix_(ok, mine)]
        res[np.ix_(ok, mine)] = _wild_null(block, local[p.ia[mine]], local[p.ib[mine]], len(members), centre, rng)
    out = res.reshape(K, N, P)
    shuffled = np.stack([out[rng.permutation(K), j] for j in range(N)], axis=1)
    return replace(p, values=shuffled)


@dataclass(frozen=True)
class ScaledSEPanel(Panel):
    """A Panel whose alignment standard errors are multiplied by ``se_scale`` (e.g. 0.1: the errors
    the tests use deliberately shrunk 10x). The bootstrap (claim 2's location) is unaffected."""

    se_scale: float = 1.0

    def means(self):
        mean, se = super().means()
        return mean, se * self.se_scale


def scaled_se(p: Panel, scale: float) -> ScaledSEPanel:
    """``p`` with its standard errors multiplied by ``scale`` (:class:`ScaledSEPanel`)."""
    fields = {f: getattr(p, f) for f in Panel.__dataclass_fields__}
    return ScaledSEPanel(**fields, se_scale=scale)


# ---------------------------------------------------------------- calls and rates


def claim1_calls(p: Panel, alpha: float = ALPHA) -> np.ndarray:
    """Per n: claim 1's cell call (holds / fails / undecided)."""
    return np.array([r["call"] for r in increases_with_snr(p, alpha)])


def claim1_positive(p: Panel, alpha: float = ALPHA) -> bool:
    """Claim 1 holds at some n (the familywise false positive on a null table)."""
    return bool((claim1_calls(p, alpha) == "holds").any())


def claim2_calls(p: Panel, crit: Criteria | None = None) -> np.ndarray:
    """Per SNR: claim 2's cell call."""
    return np.array([r["call"] for r in minimum_near_threshold(p, crit or Criteria())])


def claim4_call(p: Panel, alpha: float = ALPHA) -> str:
    """Claim 4's call from the grid-step tests (the call of alignlib.claims.claim_tests.decoupling, without its
    descriptive Spearman interval)."""
    return claim4_cell(grid_step_tests(p, alpha))[0]


def rejection_rates(make_panel, test, reps: int, seed: int = 0) -> np.ndarray:
    """Mean over ``reps`` seeded panels of ``test(panel)`` (a bool or a bool array)."""
    rng = np.random.default_rng(seed)
    return np.mean([np.asarray(test(make_panel(rng)), dtype=float) for _ in range(reps)], axis=0)


def call_rates(make_panel, calls, reps: int, seed: int = 0) -> tuple[dict, int]:
    """({call: rate over all cells}, cells): ``calls(panel)`` gives one call or an array of calls per
    panel; the rates are over every cell of ``reps`` seeded panels."""
    rng = np.random.default_rng(seed)
    got = np.concatenate([np.atleast_1d(calls(make_panel(rng))) for _ in range(reps)])
    return {c: float(np.mean(got == c)) for c in ("holds", "fails", "undecided")}, len(got)


def binomial_se(rate: float, trials: int) -> float:
    """sqrt(rate (1 - rate) / trials), with rate floored at 1 / trials (so 0 and 1 get a nonzero error)."""
    r = min(max(rate, 1.0 / trials), 1 - 1.0 / trials) if trials > 1 else rate
    return float(np.sqrt(r * (1 - r) / trials))
