"""Figures of a task's alignment table (matplotlib, no display needed).

Every figure is drawn once and saved as PNG (and, when asked, as PDF beside it), each file
written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from alignlib.ensembles.alignment import linear_input_dim, pair_mean, primary_layer  # noqa: E402
from alignlib.names import METRIC_LABELS  # noqa: E402
from alignlib.stats.threshold import below_threshold_fit, fit_by_n  # noqa: E402
from alignpipe.taskspec import END_TO_END_METRICS  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd



def _suptitle(fig, ds: xr.Dataset, text: str) -> None:
    """The figure's title, with a second line when members diverged and were left out."""
    note = ds.attrs.get("diverged_note")
    fig.suptitle(text + (f"\n{note}" if note else ""), fontsize=None if not note else 10)


def metric_label(metric: str, layer: str) -> str:
    return f"{METRIC_LABELS.get(metric, metric)} ({layer})"


def save_figure(fig, png_path, pdf: bool = False) -> list[Path]:
    """Save ``fig`` as ``png_path`` and, with ``pdf``, the same name with .pdf (one drawing); atomic per file."""
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for path in (png_path, png_path.with_suffix(".pdf")) if pdf else (png_path,):
        tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        fig.savefig(tmp, dpi=150, bbox_inches="tight")
        os.replace(tmp, path)
        written.append(path)
    plt.close(fig)
    return written


def _panels(ds: xr.Dataset, metrics=None):
    metrics = list(metrics) if metrics is not None else [str(m) for m in ds["metric"].values]
    panels = []
    for metric in metrics:
        layer = primary_layer(ds, metric)
        values = ds["alignment"].sel(metric=metric, layer=layer)
        if bool(np.isfinite(values).any()):
            panels.append((metric, layer, values))
    return panels


def _grid(n_panels: int, width=5.0, height=3.8):
    cols = min(n_panels, 3)
    rows = int(np.ceil(n_panels / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    for ax in axes.flat[:n_panels]:
        ax.ticklabel_format(axis="y", useOffset=False)  # "1e-5+9.9999e-1" style offsets are unreadable
    return fig, axes.flat


def _snr_colors(snrs):
    cmap = plt.get_cmap("viridis")
    return [cmap(x) for x in np.linspace(0.0, 0.9, len(snrs))]


def _mark_thresholds(ax, ds, snrs, colors):
    """Per SNR, in its colour along the bottom of the panel: the interpolation threshold's interval
    (a bar from its low to its high end; open ends reach the panel's edge) and, where test error
    has a significant interior maximum, its peak (a triangle), both from ``ds``
    (alignlib.stats.threshold.task_thresholds; ``test_error_peak`` is NaN where there is no peak)."""
    if "interpolation_threshold_low" not in ds:
        return
    trans = matplotlib.transforms.blended_transform_factory(ax.transData, ax.transAxes)
    lo_edge, hi_edge = float(ds["n"].min()) / 1.5, float(ds["n"].max()) * 1.5
    for k, (snr, color) in enumerate(zip(snrs, colors)):
        y = 0.03 + 0.03 * k
        th = ds.sel(snr=snr)
        if np.isfinite(float(th["interpolation_threshold"])):
            lo, hi = float(th["interpolation_threshold_low"]), float(th["interpolation_threshold_high"])
            ax.plot([lo if np.isfinite(lo) else lo_edge, hi if np.isfinite(hi) else hi_edge], [y, y],
                    color=color, lw=2.5, solid_capstyle="butt", transform=trans, alpha=0.9)
        if "test_error_peak" in ds and np.isfinite(float(th["test_error_peak"])):
            ax.plot([float(th["test_error_peak"])], [y], marker="v", color=color, ms=5, mec="k", mew=0.4,
                    transform=trans, ls="none")
    ax.set_xlim(lo_edge, hi_edge)


CHANCE_LABEL = "chance (probes shuffled)"


def _chance(ds: xr.Dataset, metric: str, layer: str):
    """(chance, chance_hi) of one metric and layer over (snr, n), or None when ``ds`` has none there."""
    if "chance" not in ds or metric not in ds["chance"]["metric"].values:
        return None
    mean = ds["chance"].sel(metric=metric, layer=layer)
    hi = ds["chance_hi"].sel(metric=metric, layer=layer)
    return (mean, hi) if bool(np.isfinite(mean).any()) else None


def chance_band(ax, ds: xr.Dataset, metric: str, layer: str, along: str = "n", label: bool = True) -> bool:
    """A grey band from the chance level (mean of the shuffled-probe draws) to its 95th percentile
    against ``along`` ("n" or "snr"); where a panel has several curves (one per SNR or per n), the band
    spans them all: from the lowest mean to the highest 95th percentile. ``along=None``: one
    horizontal band over every grid point. Returns whether a band was drawn."""
    chance = _chance(ds, metric, layer)
    if chance is None:
        return False
    mean, hi = chance
    kwargs = dict(color="0.55", alpha=0.3, lw=0, zorder=0, label=CHANCE_LABEL if label else None)
    if along is None:
        ax.axhspan(float(mean.min()), float(hi.max()), **kwargs)
        return True
    other = "snr" if along == "n" else "n"
    lo, top = mean.min(other, skipna=True), hi.max(other, skipna=True)
    ax.fill_between(ds[along].values, lo.values, top.values, **kwargs)
    return True


def _curves_vs_n(ax, values, snrs, colors, theory=None, metric=None):
    mean, sem = pair_mean(values)
    for snr, color in zip(snrs, colors):
        ax.errorbar(values["n"].values, mean.sel(snr=snr), yerr=sem.sel(snr=snr), color=color, marker="o",
                    ms=3, lw=1.3, capsize=2, label=f"SNR {snr:g}")
        if theory is not None and metric in theory["metric"].values:
            ax.plot(theory["n"].values, theory.sel(metric=metric, snr=snr), color=color, ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("training samples n")
    ax.grid(alpha=0.3)


def _threshold_legend(ax, threshold, ds, theory):
    if threshold is not None:
        ax.axvline(threshold, color="0.3", ls=":", lw=1.2, label=f"n = {threshold:g} (d)")
    if ds is not None and "interpolation_threshold_low" in ds:
        ax.plot([], [], color="0.3", lw=2.5, label="interpolation threshold,\n95% interval (per SNR)")
        ax.plot([], [], color="0.3", marker="v", ls="none", ms=5, label="test-error peak (significant only)")
    if theory is not None:
        ax.plot([], [], color="0.3", ls="--", lw=1, label="theory")
    handles, labels = ax.get_legend_handles_labels()
    # below the panels, so that it never hides a curve
    ax.figure.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(labels), 6),
                     fontsize=7, frameon=False)


def _excluded_note(fig, ds, layers=None):
    """A footnote naming the metric/layer panels left out because the metric is uninformative there."""
    if "alignment_note" not in ds:
        return
    notes = []
    for metric in ds["metric"].values:
        for layer in (layers or ds["layer"].values):
            note = str(ds["alignment_note"].sel(metric=metric, layer=layer).values)
            if note and not bool(np.isfinite(ds["alignment"].sel(metric=metric, layer=layer)).any()):
                notes.append(f"{metric} ({layer}): {note}")
    if notes:
        fig.text(0.01, -0.08, "Not shown (uninformative by construction): " + "; ".join(notes), fontsize=6,
                 va="top", wrap=True, color="0.35")


def alignment_vs_n(ds: xr.Dataset, *, threshold=None, theory=None, metrics=None):
    """Mean over pairs ± member-jackknife s.e. against n (log axis), one curve per SNR, one panel per metric.

    ``threshold``: a vertical line (e.g. n = d); each SNR's interpolation-threshold interval and
    test-error peak (when ``ds`` has them) are drawn along the bottom; ``theory``: a DataArray
    theory(metric, snr, n) drawn as dashed lines in the same colours. Metrics that are NaN
    everywhere (uninformative by construction) are left out and named in a footnote.
    """
    panels = _panels(ds, metrics)
    fig, axes = _grid(len(panels))
    snrs = ds["snr"].values
    colors = _snr_colors(snrs)
    banded = False
    for ax, (metric, layer, values) in zip(axes, panels):
        banded |= chance_band(ax, ds, metric, layer, "n", label=False)
        _curves_vs_n(ax, values, snrs, colors, theory, metric)
        _mark_thresholds(ax, ds, snrs, colors)
        if threshold is not None:
            ax.axvline(threshold, color="0.3", ls=":", lw=1.2)
        ax.set_ylabel(metric_label(metric, layer))
    if banded:  # the legend entry once, whichever panels have a band
        axes[0].fill_between([], [], [], color="0.55", alpha=0.3, lw=0, label=CHANCE_LABEL)
    _threshold_legend(axes[0], threshold, ds, theory)
    _excluded_note(fig, ds, [primary_layer(ds, "")])
    _suptitle(fig, ds, f"{ds.attrs.get('task', '')}: alignment against sample size")
    fig.tight_layout(rect=(0, 0, 1, 0.97))  # room for the suptitle
    return fig


def per_layer_metrics(ds: xr.Dataset) -> list[str]:
    """The metrics drawn per layer: those compared on activations with a value at some layer."""
    return [str(m) for m in ds["metric"].values if str(m) not in END_TO_END_METRICS
            and bool(np.isfinite(ds["alignment"].sel(metric=m)).any())]


def alignment_per_layer_vs_n(ds: xr.Dataset, metrics=None, *, threshold=None):
    """One row per metric, one column per layer: mean ± member-jackknife s.e. against n, one curve per
    SNR, the chance band behind. ``metrics``: a name or a list (default: every metric compared on
    activations with a value somewhere, :func:`per_layer_metrics`); a (metric, layer) that is NaN
    everywhere gets an empty panel saying so."""
    metrics = per_layer_metrics(ds) if metrics is None else ([metrics] if isinstance(metrics, str) else list(metrics))
    layers = [str(x) for x in ds["layer"].values]
    fig, grid = plt.subplots(len(metrics), len(layers), figsize=(3.6 * len(layers) + 0.6, 2.5 * len(metrics) + 0.6),
                             squeeze=False, sharex=True)
    snrs = ds["snr"].values
    colors = _snr_colors(snrs)
    banded = False
    for r, metric in enumerate(metrics):
        for c, layer in enumerate(layers):
            ax = grid[r, c]
            ax.ticklabel_format(axis="y", useOffset=False)
            values = ds["alignment"].sel(metric=metric, layer=layer)
            if not bool(np.isfinite(values).any()):
                note = str(ds["alignment_note"].sel(metric=metric, layer=layer).values) if "alignment_note" in ds else ""
                ax.text(0.5, 0.5, "not informative here" + (f":\n{note[:80]}" if note else ""), ha="center",
                        va="center", fontsize=6, color="0.35", wrap=True, transform=ax.transAxes)
                ax.set_xscale("log")
                ax.set_yticks([])
            else:
                banded |= chance_band(ax, ds, metric, layer, "n", label=False)
                _curves_vs_n(ax, values, snrs, colors)
                _mark_thresholds(ax, ds, snrs, colors)
                if threshold is not None:
                    ax.axvline(threshold, color="0.3", ls=":", lw=1.2)
            if c == 0:
                ax.set_ylabel(METRIC_LABELS.get(metric, metric), fontsize=8)
            if r == 0:
                ax.set_title(f"layer {layer}", fontsize=9)
            if r < len(metrics) - 1:
                ax.set_xlabel("")
    if banded:
        grid[0, 0].fill_between([], [], [], color="0.55", alpha=0.3, lw=0, label=CHANCE_LABEL)
    _threshold_legend(grid[0, 0], threshold, ds, None)
    title = "alignment per layer" if len(metrics) > 1 else f"{METRIC_LABELS.get(metrics[0], metrics[0])} per layer"
    for ax in grid.flat:  # a short log range labels its minor ticks, and they overlap
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    _suptitle(fig, ds, f"{ds.attrs.get('task', '')}: {title}")
    fig.tight_layout(rect=(0, 0, 1, 0.97))  # room for the suptitle
    return fig


def _log_x_panel(fig, ax, xlabel: str, ylabel: str, norm, cmap) -> None:
    """A panel with a log x axis, its labels, a grid and a colour bar of the training samples n."""
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax)
    bar.set_label("training samples n")


def alignment_vs_snr(ds: xr.Dataset, *, theory=None, metrics=None):
    """Mean over pairs ± member-jackknife s.e. against SNR (log axis), one curve per n (colour bar), one panel per metric."""
    panels = _panels(ds, metrics)
    fig, axes = _grid(len(panels))
    ns = ds["n"].values
    norm = matplotlib.colors.LogNorm(vmin=ns.min(), vmax=max(ns.max(), ns.min() + 1))
    cmap = plt.get_cmap("plasma")
    banded = False
    for ax, (metric, layer, values) in zip(axes, panels):
        banded |= chance_band(ax, ds, metric, layer, "snr", label=False)
        mean, sem = pair_mean(values)
        for n in ns:
            color = cmap(norm(n) * 0.9)
            ax.errorbar(ds["snr"].values, mean.sel(n=n), yerr=sem.sel(n=n), color=color, marker="o",
                        ms=3, lw=1.2, capsize=2)
            if theory is not None and metric in theory["metric"].values:
                ax.plot(theory["snr"].values, theory.sel(metric=metric, n=n), color=color, ls="--", lw=0.9)
        _log_x_panel(fig, ax, "signal-to-noise ratio", metric_label(metric, layer), norm, cmap)
    if banded:  # below the panels, so that it never hides a curve
        fig.legend([matplotlib.patches.Patch(color="0.55", alpha=0.3)], [CHANCE_LABEL], loc="upper center",
                   bbox_to_anchor=(0.5, 0.0), fontsize=7, frameon=False)
    _suptitle(fig, ds, f"{ds.attrs.get('task', '')}: alignment against SNR" +
                 (" (dashed: theory)" if theory is not None else ""))
    fig.tight_layout(rect=(0, 0, 1, 0.97))  # room for the suptitle
    return fig


def alignment_vs_test_error(ds: xr.Dataset, *, highlight=None, metrics=None):
    """Mean alignment against mean clean test error, one point per (snr, n).

    Colour = n, marker = SNR. ``highlight``: {metric: [((snr, n), (snr, n)), ...]} pairs
    of grid points to connect (equivalent test error, significantly different alignment:
    alignlib.claims.verdicts.decoupled_highlights).
    """
    panels = _panels(ds, metrics)
    fig, axes = _grid(len(panels))
    ns, snrs = ds["n"].values, ds["snr"].values
    norm = matplotlib.colors.LogNorm(vmin=ns.min(), vmax=max(ns.max(), ns.min() + 1))
    cmap = plt.get_cmap("plasma")
    markers = "os^Dv<>pP*h"
    err = ds["test_error"].mean("seed")
    for ax, (metric, layer, values) in zip(axes, panels):
        chance_band(ax, ds, metric, layer, None, label=metric == panels[0][0])  # over every grid point: x is the error
        mean, _ = pair_mean(values)
        for k, snr in enumerate(snrs):
            ax.scatter(err.sel(snr=snr), mean.sel(snr=snr), c=cmap(norm(ns) * 0.9), marker=markers[k % len(markers)],
                       s=28, edgecolors="k", linewidths=0.3, label=f"SNR {snr:g}")
        for a, b in (highlight or {}).get(metric, []):
            xs = [float(err.sel(snr=p[0], n=p[1])) for p in (a, b)]
            ys = [float(mean.sel(snr=p[0], n=p[1])) for p in (a, b)]
            ax.plot(xs, ys, color="red", lw=1.5, ls="-", zorder=0)
            ax.annotate("equivalent error,\ndifferent alignment", (xs[1], ys[1]), fontsize=7, color="red",
                        xytext=(5, 5), textcoords="offset points")
        _log_x_panel(fig, ax, "clean test error (mean over members)", metric_label(metric, layer), norm, cmap)
    axes[0].legend(fontsize=7, frameon=False, loc="best")
    _suptitle(fig, ds, f"{ds.attrs.get('task', '')}: alignment against test error")
    fig.tight_layout(rect=(0, 0, 1, 0.97))  # room for the suptitle
    return fig


def theory_residuals(ds: xr.Dataset):
    """Simulation minus theory against n, per SNR: solid = minus the exact expectation given the
    task's data, dashed = minus the closed form; one panel per metric with a theory."""
    theory = ds["theory"]
    metrics = [str(m) for m in theory["metric"].values if bool(np.isfinite(theory.sel(metric=m)).any())]
    fig, axes = _grid(len(metrics))
    snrs = ds["snr"].values
    colors = _snr_colors(snrs)
    for ax, metric in zip(axes, metrics):
        layer = primary_layer(ds, metric)
        mean, sem = pair_mean(ds["alignment"].sel(metric=metric, layer=layer))
        for snr, color in zip(snrs, colors):
            given = ds["theory_given_data"].sel(metric=metric, snr=snr)
            closed = ds["theory"].sel(metric=metric, snr=snr)
            ax.errorbar(ds["n"].values, mean.sel(snr=snr) - given, yerr=sem.sel(snr=snr), color=color, marker="o",
                        ms=3, lw=1.2, capsize=2, label=f"SNR {snr:g}")
            ax.plot(ds["n"].values, mean.sel(snr=snr) - closed, color=color, ls="--", lw=0.9)
        ax.axvline(linear_input_dim(ds), color="0.3", ls=":", lw=1.2)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("training samples n")
        ax.set_ylabel(f"simulation − theory: {metric_label(metric, layer)}")
        ax.grid(alpha=0.3)
    axes[0].plot([], [], color="0.3", ls="--", lw=0.9, label="minus closed form")
    axes[0].plot([], [], color="0.3", marker="o", ms=3, lw=1.2, label="minus exact expectation\ngiven the data")
    axes[0].legend(fontsize=7, frameon=False)
    _suptitle(fig, ds, f"{ds.attrs.get('task', '')}: simulation minus theory (error bars: member-jackknife s.e.)")
    fig.tight_layout(rect=(0, 0, 1, 0.97))  # room for the suptitle
    return fig


def noise_floor_vs_n(ds: xr.Dataset, tol: float):
    """Did training interpolate where it should? Per SNR against n: the fraction of members that reached
    their noise floor (noise_fit <= tol, solid) and the fraction that ran out of steps without reaching
    it (dashed), with each SNR's threshold interval along the bottom and n = threshold / 1.5 marked."""
    fit = fit_by_n(ds, tol)
    snrs = ds["snr"].values
    colors = _snr_colors(snrs)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for snr, color in zip(snrs, colors):
        ax.plot(ds["n"].values, fit["reached_noise_floor"].sel(snr=snr).values, "-o", ms=3, color=color,
                label=f"SNR {snr:g}")
        short = fit["stopped_short"].sel(snr=snr).values
        if np.isfinite(short).any():
            ax.plot(ds["n"].values, short, "--", lw=1, color=color)
        if "interpolation_threshold" in ds:
            t = float(ds["interpolation_threshold"].sel(snr=snr))
            if np.isfinite(t):
                ax.axvline(t / 1.5, color=color, ls=":", lw=0.8)
    _mark_thresholds(ax, ds, snrs, colors)
    ax.axhline(0.95, color="0.4", lw=0.8)
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("training sample size n")
    ax.set_ylabel("fraction of members")
    ax.plot([], [], "k-", label="reached the noise floor")
    ax.plot([], [], "k--", lw=1, label=f"stopped at max_steps ({ds.attrs.get('max_steps', '?')}) short of it")
    ax.plot([], [], "k:", lw=0.8, label="threshold / 1.5")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    summary = below_threshold_fit(ds, tol) if "interpolation_threshold" in ds else None
    if summary and summary["members"]:
        ax.set_title(f"at n <= threshold/1.5: {summary['fraction']:.1%} of {summary['members']} members reached "
                     f"the noise floor (noise_fit <= {tol:g})", fontsize=8)
    _suptitle(fig, ds, f"{ds.attrs.get('task', '')}: training reaching the noise floor")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


# --------------------------------------------------------------------------- alignment during training

def threshold_labels(ns, thresholds=None) -> dict:
    """n -> "below / at / above the threshold" from the interpolation thresholds over SNR
    (alignment.nc's ``interpolation_threshold(snr)``): below the smallest finite one, above the
    largest, at it in between (or equal); "" where no threshold is known."""
    t = np.asarray([] if thresholds is None else thresholds, dtype=np.float64)
    t = t[np.isfinite(t)]
    if not len(t):
        return {int(n): "" for n in ns}
    lo, hi = t.min(), t.max()
    span = f"{lo:g}" if lo == hi else f"{lo:g}–{hi:g}"
    return {int(n): ("below" if n < lo else "above" if n > hi else "at") + f" threshold ({span})" for n in ns}


def alignment_training_figure(table: xr.Dataset, metric: str | None = None, thresholds=None):
    """Alignment (pair mean ± member-jackknife SE) against training time on a log axis, checkpoint 0
    drawn at the left edge; one panel per recorded n (labelled against the threshold when known),
    one curve per SNR, the final alignment as a dashed line of the same colour."""
    metric = metric or str(table["metric"].values[0])
    layer = primary_layer(table, metric)
    mean, se = pair_mean(table["alignment"].sel(metric=metric, layer=layer))
    fmean, fse = pair_mean(table["final_alignment"].sel(metric=metric, layer=layer))
    steps = table["step"].values.astype(float)
    positive = steps[steps > 0]
    zero_x = positive.min() / 3 if len(positive) else 1.0
    x = np.where(steps > 0, steps, zero_x)
    ns, snrs = table["n"].values, table["snr"].values
    labels = threshold_labels(ns, thresholds)
    colors = [plt.get_cmap("viridis")(v) for v in np.linspace(0.0, 0.9, len(snrs))]
    fig, axes = plt.subplots(1, len(ns), figsize=(4.6 * len(ns), 3.8), squeeze=False, sharey=True)
    unit = table.attrs.get("step_unit", "step")
    for ax, n in zip(axes.flat, ns):
        for snr, color in zip(snrs, colors):
            m, s = mean.sel(n=n, snr=snr).values, se.sel(n=n, snr=snr).values
            ax.plot(x, m, marker="o", ms=3, color=color, label=f"SNR {snr:g}")
            ax.fill_between(x, m - s, m + s, color=color, alpha=0.2, lw=0)
            ax.axhline(float(fmean.sel(n=n, snr=snr)), color=color, ls="--", lw=1, alpha=0.7)
        ax.set_xscale("log")
        ticks = sorted(set(x.tolist()))
        ax.set_xticks(ticks)
        ax.set_xticklabels(["init" if t == zero_x and 0 in steps else f"{t:g}" for t in ticks], fontsize=7)
        ax.minorticks_off()
        ax.set_xlim(zero_x / 1.5, x.max() * 1.5)
        ax.set_title(f"n = {int(n)}" + (f"\n{labels[int(n)]}" if labels[int(n)] else ""), fontsize=10)
        ax.set_xlabel(f"training {unit}s (log; init at the left edge)")
    axes.flat[0].set_ylabel(metric_label(metric, layer))
    axes.flat[-1].legend(fontsize=7, title="dashed: final", title_fontsize=7, loc="upper left",
                         bbox_to_anchor=(1.02, 1.0))  # beside the panels, never over the curves
    fig.suptitle(f"{table.attrs.get('task', '')}: alignment during training (mean ± member-jackknife SE)")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- OOD probes, by layer

def plot_ood_by_layer(summary: pd.DataFrame, layers, png_path, title: str = "", pdf: bool = False):
    """x = layer (depth order), y = alignment; ID solid, OOD dashed, one colour per SNR, jackknife
    error bars. One row of panels per metric; columns: the largest n, the n nearest the threshold.
    Under each panel, each SNR's drop statistic D with its error and one-sided p (and n per SNR in the
    threshold column); one legend for the whole figure, outside the panels."""
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
        handles.append(matplotlib.patches.Patch(color="0.55", alpha=0.3))
        labels.append(CHANCE_LABEL + ", both probe sets")
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(0.91, 0.9), fontsize=8, frameon=False)
    early, late = summary["early_layer"].iloc[0], summary["late_layer"].iloc[0]
    fig.suptitle(f"{title}\nD = drop (ID − OOD) at {late} − drop at {early}: mean over member pairs, "
                 "member-jackknife SE, one-sided p", fontsize=9)
    return save_figure(fig, png_path, pdf=pdf)
