"""Out-of-distribution probes: do later layers de-align more than early ones when the probes shift?

* :func:`drop_statistic`: at one grid point, from the pair values, D = (ID - OOD at the late
  layer) - (ID - OOD at the early layer), averaged over pairs, with its delete-one-member jackknife
  standard error and a one-sided p (H0: D <= 0);
* :func:`ood_summary`: one row per (metric, snr, n) with the per-layer ID and OOD pair means, their
  jackknife errors and the drop statistic, at the largest n and at the n nearest each SNR's
  interpolation threshold.

The unit of replication is the member (alignlib.stats.members): the per-pair differences are
jackknifed over members, never treated as independent pairs. The config checks and the figure are
the pipeline's (alignpipe.ood, alignpipe.figures).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from alignlib.stats.members import jackknife_pair_mean, pair_index

from alignlib._extras import pipeline_import  # noqa: E402

pd = pipeline_import("pandas", __name__)
xr = pipeline_import("xarray", __name__)


def compared_layers(layers) -> tuple[str, str]:
    """(early, late): the first recorded layer and the last hidden one; with a single hidden layer,
    the hidden layer and the output layer."""
    layers = [str(x) for x in layers]
    if len(layers) < 2:
        raise ValueError(f"the drop statistic needs two layers, got {layers}")
    return (layers[0], layers[-2]) if len(layers) >= 3 else (layers[0], layers[-1])


def one_sided_p(mean, se, members: int):
    """P(T >= mean / se) for T ~ t with members - 1 degrees of freedom (NaN without an error)."""
    mean, se = np.asarray(mean, float), np.asarray(se, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / se
    p = stats.t.sf(t, df=max(members - 1, 1))
    return np.where(np.isfinite(t) & (se > 0), p, np.nan)


def drop_statistic(id_early, ood_early, id_late, ood_late, ia, ib, S: int) -> dict:
    """"Later layers de-align more than early ones" from per-pair values (last axis = pairs).

    D = mean over pairs of (id_late - ood_late) - (id_early - ood_early), its delete-one-member
    jackknife standard error (alignlib.stats.members.jackknife_pair_mean) and the one-sided p of
    H0: D <= 0 from a t distribution with S - 1 degrees of freedom.
    """
    d = (np.asarray(id_late, float) - ood_late) - (np.asarray(id_early, float) - ood_early)
    mean, se = jackknife_pair_mean(d, ia, ib, S)
    return {"statistic": mean, "se": se, "p_one_sided": one_sided_p(mean, se, S)}


def summary_points(table: xr.Dataset) -> list[tuple[float, int, str]]:
    """(snr, n, which) of the summary's rows: every SNR at the largest n and at the grid n nearest
    (in log n) its interpolation threshold, when alignment.nc has a finite one."""
    ns = np.asarray(table["n"].values, dtype=int)
    out = []
    for snr in table["snr"].values:
        rows = {int(ns.max()): ["largest n"]}
        if "interpolation_threshold" in table:
            t = float(table["interpolation_threshold"].sel(snr=snr).values)
            if np.isfinite(t) and t > 0:
                near = int(ns[np.argmin(np.abs(np.log(ns) - np.log(t)))])
                rows.setdefault(near, []).append("nearest threshold")
        out += [(float(snr), n, " and ".join(which)) for n, which in sorted(rows.items())]
    return out


def _kept(values: np.ndarray, ia, ib, S: int):
    """Members all of whose pairs are finite in ``values`` (..., pairs), and those pairs re-indexed."""
    finite = np.isfinite(values).reshape(-1, values.shape[-1]).all(0)
    keep = list(range(S))
    while True:  # drop the member in most non-finite pairs (a diverged one is in all of its own) until none is left
        live = np.isin(ia, keep) & np.isin(ib, keep) & ~finite
        if not live.any():
            break
        counts = np.bincount(np.concatenate([ia[live], ib[live]]), minlength=S)
        keep.remove(int(np.argmax(counts)))
    keep = np.array(keep, dtype=int)
    pos = {m: j for j, m in enumerate(keep.tolist())}
    sel = np.array([(a in pos) and (b in pos) for a, b in zip(ia.tolist(), ib.tolist())], dtype=bool)
    return sel, np.array([pos[a] for a in ia[sel]], dtype=int), np.array([pos[b] for b in ib[sel]], dtype=int), len(keep)


def _chance_columns(id_table: xr.Dataset, ood_table: xr.Dataset, at: dict, layers) -> dict:
    """``chance_lo_<layer>`` / ``chance_hi_<layer>``: the lower of the two probe sets' chance means and the
    higher of their ``chance_hi`` (alignlib.stats.chance) at this (metric, snr, n); nothing when a table has none."""
    if "chance" not in id_table or "chance" not in ood_table or at["metric"] not in ood_table["chance"]["metric"].values:
        return {}
    out = {}
    for layer in layers:
        lo = [float(t["chance"].sel(layer=layer, **at)) for t in (id_table, ood_table)]
        hi = [float(t["chance_hi"].sel(layer=layer, **at)) for t in (id_table, ood_table)]
        out[f"chance_lo_{layer}"], out[f"chance_hi_{layer}"] = np.nanmin(lo), np.nanmax(hi)
    return out


def ood_summary(id_table: xr.Dataset, ood_table: xr.Dataset, metrics=None) -> pd.DataFrame:
    """One row per (metric, snr, n) of :func:`summary_points`: the ID and OOD pair means per layer with
    their member-jackknife errors (``id_<layer>``, ``id_se_<layer>``, ``ood_<layer>``, ``ood_se_<layer>``),
    the drop ID - OOD at the compared layers, and the drop statistic (:func:`drop_statistic`).

    Members with a non-finite pair (diverged, or a NaN cell) at that grid point are left out of it
    (``members`` counts the rest); with fewer than 3 the errors and p are NaN.
    """

    metrics = [str(m) for m in (metrics or ood_table["metric"].values)]
    layers = [str(x) for x in ood_table["layer"].values]
    early, late = compared_layers(layers)
    seeds = np.union1d(ood_table["seed_a"].values, ood_table["seed_b"].values)
    ia, ib, S = pair_index(ood_table["seed_a"].values, ood_table["seed_b"].values, seeds)
    if not (np.array_equal(id_table["seed_a"].values, ood_table["seed_a"].values)
            and np.array_equal(id_table["seed_b"].values, ood_table["seed_b"].values)):
        raise ValueError("alignment.nc and alignment_ood.nc hold different member pairs")
    rows = []
    for metric in metrics:
        for snr, n, which in summary_points(id_table):
            at = dict(metric=metric, snr=snr, n=n)
            idv = id_table["alignment"].sel(**at).sel(layer=layers).transpose("layer", "pair").values
            oodv = ood_table["alignment"].sel(**at).sel(layer=layers).transpose("layer", "pair").values
            sel, ja, jb, kept = _kept(np.stack([idv, oodv]), ia, ib, S)
            idv, oodv = idv[:, sel], oodv[:, sel]
            row = {"task": ood_table.attrs.get("task", ""), "metric": metric, "snr": snr, "n": n, "n_choice": which,
                   "members": kept, "early_layer": early, "late_layer": late}
            row.update(_chance_columns(id_table, ood_table, at, layers))
            for l, layer in enumerate(layers):
                for name, v in (("id", idv[l]), ("ood", oodv[l]), ("drop", idv[l] - oodv[l])):
                    if kept >= 3:
                        mean, se = jackknife_pair_mean(v, ja, jb, kept)
                    else:
                        mean, se = (np.mean(v) if v.size else np.nan), np.nan
                    row[f"{name}_{layer}"], row[f"{name}_se_{layer}"] = float(mean), float(se)
            if kept >= 3:
                stat = drop_statistic(idv[layers.index(early)], oodv[layers.index(early)],
                                      idv[layers.index(late)], oodv[layers.index(late)], ja, jb, kept)
                row.update({k: float(v) for k, v in stat.items()})
            else:
                row.update(statistic=np.nan, se=np.nan, p_one_sided=np.nan)
            rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs["definition"] = (f"statistic = (ID - OOD at {late}) - (ID - OOD at {early}), mean over member pairs; "
                               "se: delete-one-member jackknife; p_one_sided: t with members - 1 df, H0 statistic <= 0")
    return out
