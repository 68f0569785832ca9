"""Out-of-distribution probes, the pipeline's side: the config checks a schema cannot express and the
metrics a task's OOD alignment computes (:func:`check_ood_config`, :func:`ood_metrics`: light, the
Snakefile imports this module), and the figure (:func:`plot_ood_by_layer`: x = layer, ID solid, OOD
dashed, one colour per SNR). A task with an ``ood`` section has a second probe set ``ood_x`` in
data/ood.nc (alignlib.ensembles.data.ood_probe_set), the members' activations on it
(``activations_ood/``) and their alignment ``alignment_ood.nc`` (the layout of alignment.nc); the
statistic comparing layers is alignlib.claims.ood's."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from alignlib.metrics.names import METRIC_NAMES as KNOWN_METRICS
from alignpipe.errors import ConfigError
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
