"""Out-of-distribution probes: does alignment survive a shift of the probes, layer by layer?

A task with an ``ood`` section has a second probe set ``ood_x`` in data.nc (alignlib.ensembles.data), the
members' activations on it (``activations_ood/``) and their alignment ``alignment_ood.nc`` (the
layout of alignment.nc). Here are

* :func:`check_ood_config` / :func:`ood_metrics`: the config checks a schema cannot express, and
  the metrics a task's OOD alignment computes (light: the Snakefile imports this module);
* :func:`drop_statistic`: "later layers de-align more than early ones" at one grid point, from the
  pair values: D = (ID - OOD at the late layer) - (ID - OOD at the early layer), averaged over
  pairs, with its delete-one-member jackknife standard error and a one-sided p (H0: D <= 0);
* :func:`ood_summary`: one row per (metric, snr, n) with the per-layer ID and OOD pair means, their
  jackknife errors and the drop statistic, at the largest n and at the n nearest each SNR's
  interpolation threshold;
* :func:`plot_ood_by_layer`: the figure (x = layer, ID solid, OOD dashed, one colour per SNR).

The unit of replication is the member (alignlib.stats.members): the per-pair differences are
jackknifed over members, never treated as independent pairs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from alignpipe.config import KNOWN_METRICS, ConfigError
from alignpipe.taskspec import END_TO_END_METRICS, IMAGE_DATASETS, OOD_KINDS

if TYPE_CHECKING:  # the Snakefile imports this module: pandas and xarray only where used
    import pandas as pd
    import xarray as xr

DIABETES_SIZE = 442
DIABETES_FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")  # sklearn's feature_names


def ood_metrics(config: dict, task: str) -> list[str]:
    """The metrics of a task's OOD alignment: ``ood.metrics``, else its primary metric (cka_linear where
    that is an end-to-end metric or unset) and procrustes, those of them in the top-level ``metrics``."""
    ood = config["tasks"][task].get("ood") or {}
    if ood.get("metrics"):
        return list(ood["metrics"])
    primary = config["tasks"][task].get("primary_metric")
    if not primary or primary in END_TO_END_METRICS:
        primary = "cka_linear"
    wanted = [primary] + (["procrustes"] if primary != "procrustes" else [])
    return [m for m in wanted if m in config["metrics"]]


def check_ood_config(config: dict) -> None:
    """Raise ConfigError, naming the key, for an ``ood`` section the schema lets through but the
    pipeline cannot run: a kind the data set does not support, OOD metrics outside ``metrics``
    (their in-distribution values come from alignment.nc) or end-to-end ones (no layers), more
    transformed probes than there are probes, or an extrapolation split that does not fit."""
    for name, task in config["tasks"].items():
        ood = task.get("ood")
        if not ood:
            continue
        key = f"tasks.{name}.ood"
        kind, dataset = ood["kind"], task["dataset"]["kind"]
        if kind not in OOD_KINDS[dataset]:
            raise ConfigError(f"invalid config key '{key}.kind': {kind!r} is not available for data set "
                              f"{dataset!r}; available: {list(OOD_KINDS[dataset])}")
        metrics = ood_metrics(config, name)
        if not metrics:
            raise ConfigError(f"invalid config key '{key}.metrics': none of the default OOD metrics (the primary "
                              f"metric, procrustes) is in 'metrics' {config['metrics']}; list them in {key}.metrics")
        bad = [m for m in metrics if m not in config["metrics"] or m not in KNOWN_METRICS]
        if bad:
            raise ConfigError(f"invalid config key '{key}.metrics': {bad} not in the top-level 'metrics' "
                              f"{config['metrics']} (the in-distribution values come from alignment.nc)")
        e2e = [m for m in metrics if m in END_TO_END_METRICS]
        if e2e:
            raise ConfigError(f"invalid config key '{key}.metrics': {e2e} compare end-to-end maps, which do not "
                              "depend on the probes; the OOD comparison is per layer")
        probes = ood.get("probes")
        transforms = dataset not in ("gaussian_linear", "teacher_mlp") and kind != "extrapolate"
        if transforms and probes is not None and probes > task["probes"]:
            raise ConfigError(f"invalid config key '{key}.probes': {probes} exceeds the task's {task['probes']} "
                              f"probes, which kind {kind!r} transforms")
        if kind == "extrapolate":
            feature = ood.get("feature", "bmi")
            if feature not in DIABETES_FEATURES and not (isinstance(feature, int) and 0 <= feature < len(DIABETES_FEATURES)):
                raise ConfigError(f"invalid config key '{key}.feature': {feature!r} is neither one of "
                                  f"{list(DIABETES_FEATURES)} nor a column index in [0, {len(DIABETES_FEATURES)})")
            k = probes or task["probes"]
            used = k + task["probes"] + task["test_size"] + (task["dataset"].get("pool") or max(task["n"]))
            if used > DIABETES_SIZE:
                raise ConfigError(
                    f"invalid config key '{key}.probes': extrapolate takes {k} OOD patients out before the split, and "
                    f"{k} + probes ({task['probes']}) + test_size ({task['test_size']}) + the pool (max(n) or "
                    f"dataset.pool) = {used} exceed the {DIABETES_SIZE} patients; lower one of them")
        if dataset in IMAGE_DATASETS and kind != "noise":  # pragma: no cover - guarded by OOD_KINDS
            raise ConfigError(f"invalid config key '{key}.kind': image data sets take noise")


def compared_layers(layers) -> tuple[str, str]:
    """(early, late): the first recorded layer and the last hidden one; with a single hidden layer,
    the hidden layer and the output layer."""
    layers = [str(x) for x in layers]
    if len(layers) < 2:
        raise ValueError(f"the drop statistic needs two layers, got {layers}")
    return (layers[0], layers[-2]) if len(layers) >= 3 else (layers[0], layers[-1])


def one_sided_p(mean, se, members: int):
    """P(T >= mean / se) for T ~ t with members - 1 degrees of freedom (NaN without an error)."""
    from scipy import stats

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
    from alignlib.stats.members import jackknife_pair_mean

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
    import pandas as pd

    from alignlib.stats.members import jackknife_pair_mean, pair_index

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


def plot_ood_by_layer(summary: pd.DataFrame, layers, png_path, title: str = "", pdf: bool = False):
    """x = layer (depth order), y = alignment; ID solid, OOD dashed, one colour per SNR, jackknife
    error bars. One row of panels per metric; columns: the largest n, the n nearest the threshold.
    Under each panel, each SNR's drop statistic D with its error and one-sided p (and n per SNR in the
    threshold column); one legend for the whole figure, outside the panels."""
    import matplotlib.patches

    from alignpipe.figures import METRIC_LABELS, plt, save_figure

    layers = [str(x) for x in layers]
    metrics = list(dict.fromkeys(summary["metric"]))
    choices = [c for c in ("largest n", "nearest threshold")
               if summary["n_choice"].str.contains(c).any()]
    snrs = sorted(summary["snr"].unique())
    colours = plt.cm.viridis(np.linspace(0.0, 0.9, len(snrs)))
    text_height = 0.16 * (len(snrs) + 1)  # inches of statistics under each panel
    panel = 2.9
    fig, axes = plt.subplots(len(metrics), len(choices), squeeze=False,
                             figsize=(4.4 * len(choices) + 1.6, (panel + text_height + 0.7) * len(metrics) + 0.6),
                             gridspec_kw={"hspace": (text_height + 0.7) / panel, "wspace": 0.3})
    x = np.arange(len(layers))
    banded = False
    offset = 0.04 * (np.arange(len(snrs)) - (len(snrs) - 1) / 2) * (len(layers) - 1)
    for r, metric in enumerate(metrics):
        for c, choice in enumerate(choices):
            ax = axes[r, c]
            part = summary[(summary["metric"] == metric) & summary["n_choice"].str.contains(choice)]
            lines = []
            for k, snr in enumerate(snrs):
                row = part[part["snr"] == snr]
                if row.empty:
                    continue
                row = row.iloc[0]
                for kind, style, marker in (("id", "-", "o"), ("ood", "--", "s")):
                    y = [row[f"{kind}_{layer}"] for layer in layers]
                    e = [row[f"{kind}_se_{layer}"] for layer in layers]
                    ax.errorbar(x + offset[k], y, yerr=np.nan_to_num(e), color=colours[k], linestyle=style,
                                marker=marker, markersize=4, capsize=2)
                n_text = "" if choice == "largest n" else f" n={int(row['n'])}"
                lines.append(f"SNR {snr:g}{n_text}: D = {row['statistic']:+.3f} ± {row['se']:.3f}, "
                             f"p = {row['p_one_sided']:.2g}")
            if not part.empty and f"chance_lo_{layers[0]}" in part:  # the chance band behind, over every SNR
                lo = part[[f"chance_lo_{layer}" for layer in layers]].min().values.astype(float)
                hi = part[[f"chance_hi_{layer}" for layer in layers]].max().values.astype(float)
                if np.isfinite(lo).any():
                    ax.fill_between(x, lo, hi, color="0.55", alpha=0.3, lw=0, zorder=0)
                    banded = True
            ax.text(0.0, -0.09, "\n".join(lines), transform=ax.transAxes, ha="left", va="top",
                    fontsize=7, family="monospace")
            n_title = f" (n = {int(part['n'].iloc[0])})" if choice == "largest n" and not part.empty else " (per SNR)"
            ax.set_title(f"{METRIC_LABELS.get(metric, metric)}: {choice}{n_title}", fontsize=9)
            ax.set_xticks(x, layers)
            ax.set_ylabel(METRIC_LABELS.get(metric, metric))
            ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=colours[k], marker="o") for k in range(len(snrs))]
    labels = [f"SNR {snr:g}" for snr in snrs]
    handles += [plt.Line2D([], [], color="grey", linestyle="-", marker="o"),
                plt.Line2D([], [], color="grey", linestyle="--", marker="s")]
    labels += ["in-distribution", "OOD probes"]
    if banded:
        from alignpipe.figures import CHANCE_LABEL

        handles.append(matplotlib.patches.Patch(color="0.55", alpha=0.3))
        labels.append(CHANCE_LABEL + ", both probe sets")
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(0.91, 0.9), fontsize=8, frameon=False)
    early, late = summary["early_layer"].iloc[0], summary["late_layer"].iloc[0]
    fig.suptitle(f"{title}\nD = drop (ID − OOD) at {late} − drop at {early}: mean over member pairs, "
                 "member-jackknife SE, one-sided p", fontsize=9)
    return save_figure(fig, png_path, pdf=pdf)
