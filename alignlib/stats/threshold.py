"""The interpolation threshold and the test-error peak, each with a member-bootstrap interval.

A member *interpolates* when it has memorised its own noise, measured by its
``noise_fit`` (recorded at training, see :func:`noise_fit_definition`):

* ``target_gaussian`` regression: train MSE / sigma^2, sigma^2 the member's own noise
  variance. A member reproducing its noisy targets scores ~0; one predicting the clean
  target exactly, memorising none of the noise, scores ~1 (whatever the SNR).
* ``label_flip``: the fraction of the member's flipped training labels it does *not*
  reproduce (0 when every flipped label is memorised, 1 when none is).
* other noise (``input_gaussian``): train MSE / Var(clean target), 0-1 error for labels.

It interpolates when ``noise_fit <= tol``. A grid point interpolates when at least
``quorum`` of its members do, and the threshold of an SNR is the largest n such that
every n up to it interpolates (a lucky fit at a large n does not move it). On a discrete
grid the threshold lies between that n and the next grid point, so its interval spans at
least that gap; the bootstrap over members (resampled independently per grid point)
widens it where the quorum is close.

The second, independent estimate is the location of the test-error peak (double descent),
reported only where the mean clean test error has a significant interior local maximum
(:func:`double_descent_peak`), with a member-bootstrap interval.
"""

from __future__ import annotations

import numpy as np

from alignlib._extras import pipeline_import  # noqa: E402

xr = pipeline_import("xarray", __name__)

from alignlib.stats.members import holm, member_bootstrap, nested_mean_se


def noise_fit_definition(noise: str, target: str) -> str:
    if noise == "target_gaussian" and target == "regression":
        return "train MSE on the member's noisy targets / sigma^2 (its noise variance): 0 = noise memorised"
    if noise == "label_flip":
        return "fraction of the member's flipped training labels it does not reproduce: 0 = all memorised"
    if noise == "target_gaussian":
        return "train MSE on the member's noisy one-hot targets / sigma^2 (its noise variance): 0 = noise memorised"
    return ("train error relative to the clean target variance (0-1 error for labels); "
            "this noise process leaves the targets clean")


def fits(train_error: xr.DataArray, tol: float, scale=1.0, quorum: float = 0.5) -> xr.DataArray:
    """Whether the members at each (snr, n) interpolate: a ``quorum`` of them has error / scale <= tol."""
    return ((train_error / scale) <= tol).mean("seed") >= quorum


def _prefix_position(fitted: np.ndarray) -> np.ndarray:
    """Index of the last True of the leading all-True run along the last axis (-1: none)."""
    return np.cumprod(fitted, axis=-1).sum(-1) - 1


def interpolation_threshold(train_error: xr.DataArray, tol: float, scale=1.0, quorum: float = 0.5) -> xr.DataArray:
    """Per SNR, the largest n of the grid such that every n up to it interpolates (NaN when the smallest n does not)."""
    fitted = fits(train_error, tol, scale, quorum).transpose("snr", "n").sortby("n")
    ns = fitted["n"].values
    pos = _prefix_position(fitted.values.astype(int))
    values = np.where(pos >= 0, ns[np.clip(pos, 0, None)], np.nan).astype(float)
    out = xr.DataArray(values, coords={"snr": fitted["snr"].values}, dims="snr", name="interpolation_threshold")
    out.attrs["definition"] = (f"largest n such that at every n' <= n at least {quorum:g} of the members have "
                               f"noise_fit <= {tol:g}")
    return out


def _grid_interval(positions: np.ndarray, upper: np.ndarray, level: float):
    """Percentile bounds (lower of ``positions``, upper of ``upper``) over the last axis."""
    a = (1.0 - level) / 2.0
    lo = np.quantile(positions, a, axis=-1, method="lower")
    hi = np.quantile(upper, 1.0 - a, axis=-1, method="higher")
    return lo, hi


def _to_n(ns: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Grid position -> n, NaN outside the grid (below the first or beyond the last n)."""
    pos = np.asarray(pos)
    inside = (pos >= 0) & (pos < len(ns))
    return np.where(inside, ns[np.clip(pos, 0, len(ns) - 1)], np.nan).astype(float)


def _draw_of(da: xr.DataArray):
    """Each member's data draw (coordinate ``draw`` of ``seed``), or None with a single draw."""
    if "draw" in da.coords and da["draw"].dims == ("seed",) and len(np.unique(da["draw"].values)) > 1:
        return da["draw"].values
    return None


def threshold_with_interval(noise_fit: xr.DataArray, tol: float, *, quorum: float = 0.5, n_boot: int = 1000,
                            level: float = 0.95, seed: int = 0) -> xr.Dataset:
    """``interpolation_threshold(snr)`` with its member-bootstrap interval.

    Returns ``interpolation_threshold`` (the last interpolating n), ``first_non_interpolating_n``,
    and ``interpolation_threshold_low`` / ``_high``: the lower ``level`` percentile of the
    bootstrap threshold and the upper percentile of the bootstrap first non-interpolating n,
    never narrower than [threshold, first non-interpolating n]. NaN bounds lie outside the grid
    (low: below the smallest n; high: beyond the largest n). With several data draws (coordinate
    ``draw`` of ``seed``) the bootstrap resamples draws, then members (alignlib.stats.members).
    """
    nf = noise_fit.transpose("snr", "n", "seed").sortby("n")
    ns, snrs = nf["n"].values, nf["snr"].values
    ok = np.asarray(nf.values <= tol, dtype=float)  # NaN noise_fit (e.g. diverged) never interpolates
    S = ok.shape[-1]
    pos = _prefix_position(ok.mean(-1) >= quorum)
    idx, _ = member_bootstrap(np.random.default_rng(seed), (len(snrs), len(ns)), n_boot, S, _draw_of(nf))
    boot_ok = np.take_along_axis(ok[:, :, None, :], idx, axis=-1).mean(-1) >= quorum  # (snr, n, B)
    boot_pos = _prefix_position(np.moveaxis(boot_ok, -1, 1))  # (snr, B)
    lo, hi = _grid_interval(boot_pos, boot_pos + 1, level)
    lo, hi = np.minimum(lo, pos), np.maximum(hi, pos + 1)
    out = xr.Dataset(
        {"interpolation_threshold": ("snr", _to_n(ns, pos)),
         "first_non_interpolating_n": ("snr", _to_n(ns, pos + 1)),
         "interpolation_threshold_low": ("snr", _to_n(ns, lo)),
         "interpolation_threshold_high": ("snr", _to_n(ns, hi))},
        coords={"snr": snrs})
    out["interpolation_threshold"].attrs["definition"] = (
        f"largest n such that at every n' <= n at least {quorum:g} of the members interpolate "
        f"(noise_fit <= {tol:g}); NaN when the smallest n does not")
    out["interpolation_threshold_low"].attrs["definition"] = (
        f"lower end of the {level:.0%} member-bootstrap interval of the threshold ({n_boot} replicates, "
        "members resampled per grid point); NaN: below the smallest n of the grid")
    out["interpolation_threshold_high"].attrs["definition"] = (
        f"upper end of the {level:.0%} member-bootstrap interval: at least the first grid n that does not "
        "interpolate; NaN: beyond the largest n of the grid")
    return out


def peak_prominence(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prominence of the most prominent interior local maximum along the last axis, and its (grid) position.

    P_k = min(m_k - min_{j<k} m_j, m_k - min_{j>k} m_j) for interior k: how far the curve falls
    on both sides of k; P = max_k P_k (negative when no interior point lies above a point on
    each side). NaN points never count."""
    x = np.where(np.isfinite(curves), curves, np.nan)
    if x.shape[-1] < 3:  # no interior point
        return np.full(x.shape[:-1], -np.inf), np.full(x.shape[:-1], -1)
    left = np.fmin.accumulate(np.where(np.isnan(x), np.inf, x), axis=-1)[..., :-2]
    right = np.flip(np.fmin.accumulate(np.flip(np.where(np.isnan(x), np.inf, x), -1), axis=-1), -1)[..., 2:]
    inner = x[..., 1:-1]
    prom = np.minimum(inner - left, inner - right)
    prom = np.where(np.isfinite(prom), prom, -np.inf)
    k = np.argmax(prom, axis=-1)
    return np.take_along_axis(prom, k[..., None], -1)[..., 0], k + 1


def _one_sided_prominence(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """max over interior k of the fall to the right (z_k - min_{j>k} z_j) and to the left."""
    right = np.flip(np.minimum.accumulate(np.flip(z, -1), axis=-1), -1)[..., 2:]
    left = np.minimum.accumulate(z, axis=-1)[..., :-2]
    inner = z[..., 1:-1]
    return np.nanmax(inner - right, axis=-1), np.nanmax(inner - left, axis=-1)


def peak_test(mean: np.ndarray, se: np.ndarray, rng: np.random.Generator, n_null: int = 4000) -> tuple[float, int, float]:
    """(P, grid position of the peak, one-sided p) of an interior local maximum of one curve.

    Statistic: :func:`peak_prominence`. Null: the least favourable curve without an interior
    maximum. For a rising curve P_k is at most the fall to the right of k, reached when the first
    point lies far below and the rest is flat; for a falling one, the fall to the left (the last
    point far below). With the observed per-point errors (z ~ N(0, se_k^2)) the p is the larger of
    the two, so the test keeps its level on every monotone curve, including one that falls and
    levels off (a flat null would not). NaN p with fewer than 3 finite points, a missing point, or
    no sampling error."""
    mean, se = np.asarray(mean, float), np.asarray(se, float)
    ok = np.isfinite(mean) & np.isfinite(se)
    if len(mean) < 3 or not ok.all() or not (se > 0).any():
        return np.nan, -1, np.nan
    P, k = peak_prominence(mean)
    z = rng.standard_normal((n_null, len(mean))) * se
    rising, falling = _one_sided_prominence(z)
    p = max(float((1 + np.sum(null >= P)) / (1 + n_null)) for null in (rising, falling))
    return float(P), int(k), p


def double_descent_peak(test_error: xr.DataArray, *, n_boot: int = 1000, level: float = 0.95, seed: int = 1,
                        alpha: float = 0.05) -> xr.Dataset:
    """Per SNR, a double-descent peak of the mean clean test error over n, reported only when it is
    a significant interior local maximum.

    :func:`peak_test` on the members' mean test error (standard error over members; with data
    draws the two-stage one, alignlib.stats.members.nested_mean_se), Holm across SNRs. Where the peak is
    significant, ``test_error_peak`` is its n with a member-bootstrap interval (the replicates'
    most prominent interior maximum); elsewhere NaN ("no peak"). ``test_error_peak_p`` holds the
    Holm-adjusted p and ``test_error_peak_prominence`` the statistic, for every SNR.
    """
    te = test_error.transpose("snr", "n", "seed").sortby("n")
    ns, snrs = te["n"].values, te["snr"].values
    values = te.values.astype(np.float64)
    S = values.shape[-1]
    draw = _draw_of(te)
    mean, se = nested_mean_se(values, draw)
    rng = np.random.default_rng(seed)
    tests = [peak_test(mean[i], se[i], rng) for i in range(len(snrs))]
    q = holm([t[2] for t in tests])
    idx, _ = member_bootstrap(rng, (len(snrs), len(ns)), n_boot, S, draw)
    boot = np.nanmean(np.take_along_axis(values[:, :, None, :], idx, axis=-1), -1)  # (snr, n, B)
    _, boot_pos = peak_prominence(np.moveaxis(boot, -1, 1))  # (snr, B)
    lo, hi = _grid_interval(boot_pos, boot_pos, level)
    significant = np.array([np.isfinite(qi) and qi < alpha for qi in q])
    pos = np.array([t[1] for t in tests])
    out = xr.Dataset(
        {"test_error_peak": ("snr", np.where(significant, _to_n(ns, pos), np.nan)),
         "test_error_peak_low": ("snr", np.where(significant, _to_n(ns, lo), np.nan)),
         "test_error_peak_high": ("snr", np.where(significant, _to_n(ns, hi), np.nan)),
         "test_error_peak_p": ("snr", q),
         "test_error_peak_prominence": ("snr", np.array([t[0] for t in tests]))},
        coords={"snr": snrs})
    out["test_error_peak"].attrs["definition"] = (
        "n of a significant interior local maximum of the mean clean test error over members (double descent): "
        "prominence against the least favourable curve without an interior maximum (a step at either end, "
        f"flat elsewhere) with the members' errors, Holm across SNRs at {alpha:g}; NaN: no "
        f"peak. Interval: {level:.0%} member bootstrap ({n_boot} replicates)")
    out["test_error_peak_p"].attrs["definition"] = "Holm-adjusted p of the test-error peak's prominence"
    out["test_error_peak_prominence"].attrs["definition"] = (
        "max over interior n of min(fall to the lowest point on the left, fall to the lowest point on the right)")
    return out


def noisy_target_scale(table: xr.Dataset):
    """The noise variance sigma^2 of ``target_gaussian`` regression (Var(clean) / snr), else Var(clean) or 1."""
    if table.attrs.get("target") == "classification" and table.attrs.get("noise") != "target_gaussian":
        return 1.0
    variance = float(table.attrs["target_variance"])
    if table.attrs.get("noise") == "target_gaussian":
        return variance / table["snr"]
    return variance


def noise_fit_of(table: xr.Dataset) -> xr.DataArray:
    """The recorded ``noise_fit(snr, n, seed)``; for tables from before it was recorded, the train
    error over the noise variance (target noise only)."""
    if "noise_fit" in table:
        return table["noise_fit"]
    if table.attrs.get("noise") == "label_flip":
        raise ValueError("this table has no noise_fit: label-flip interpolation needs the flipped labels "
                         "reproduced, recorded at training; re-run the train rule")
    return table["train_error"] / noisy_target_scale(table)


def task_thresholds(table: xr.Dataset, tol: float, *, quorum: float = 0.5, n_boot: int = 1000,
                    level: float = 0.95) -> xr.Dataset:
    """The threshold and the test-error peak of a task's table, with intervals and definitions."""
    out = threshold_with_interval(noise_fit_of(table), tol, quorum=quorum, n_boot=n_boot, level=level)
    out = out.merge(double_descent_peak(table["test_error"], n_boot=n_boot, level=level))
    out.attrs["interpolation_tol"] = float(tol)
    out.attrs["interpolation_quorum"] = float(quorum)
    out.attrs["noise_fit_definition"] = noise_fit_definition(table.attrs.get("noise", ""), table.attrs.get("target", ""))
    return out


def below_threshold_fit(table: xr.Dataset, tol: float, factor: float = 1.5) -> dict:
    """How reliably training reaches the noise floor where it should: over every SNR with a threshold t
    inside the grid, the members at n <= t / factor (``members``), the fraction of them with
    noise_fit <= tol (``fraction``) and the fraction that hit ``max_steps`` without interpolating
    (``stopped_short``; NaN when the table does not record max_steps)."""
    nf = noise_fit_of(table).transpose("snr", "n", "seed")
    steps = table["steps"].transpose("snr", "n", "seed") if "steps" in table else None
    max_steps = table.attrs.get("max_steps")
    ok = short = total = 0
    for snr in nf["snr"].values:
        t = float(table["interpolation_threshold"].sel(snr=snr))
        if not np.isfinite(t):
            continue
        below = nf["n"].values <= t / factor
        vals = nf.sel(snr=snr).values[below]
        ok += int((vals <= tol).sum())
        total += int(vals.size)
        if steps is not None and max_steps is not None:
            short += int(((steps.sel(snr=snr).values[below] >= int(max_steps)) & ~(vals <= tol)).sum())
    frac = (lambda k: k / total if total else np.nan)
    return dict(fraction=frac(ok), members=total,
                stopped_short=frac(short) if max_steps is not None else np.nan)


def fit_by_n(table: xr.Dataset, tol: float) -> xr.Dataset:
    """Per (snr, n): ``reached_noise_floor``, the fraction of members with noise_fit <= tol, and
    ``stopped_short``, the fraction that used all ``max_steps`` updates without getting there (NaN
    where the table does not record steps and max_steps). Diverged members (NaN noise_fit) count as
    not reaching the floor."""
    nf = noise_fit_of(table).transpose("snr", "n", "seed")
    reached = (nf <= tol).mean("seed")
    reached.attrs["definition"] = f"fraction of members with noise_fit <= {tol:g} (their noise memorised)"
    out = xr.Dataset({"reached_noise_floor": reached})
    max_steps = table.attrs.get("max_steps")
    if "steps" in table and max_steps is not None:
        short = ((table["steps"].transpose("snr", "n", "seed") >= int(max_steps)) & ~(nf <= tol)).mean("seed")
        short.attrs["definition"] = f"fraction of members that ran all {int(max_steps)} updates without reaching it"
    else:
        short = xr.full_like(reached, np.nan)
    out["stopped_short"] = short
    return out
