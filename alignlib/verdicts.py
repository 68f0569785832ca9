"""From the per-cell claim tests (alignlib.claims) to one verdict per claim and task.

A verdict is ``holds``, ``fails`` or ``undecided`` (with the reason), for

* claim 1 (alignment rises with SNR): ``fails`` when alignment decreases significantly with
  SNR at some n; ``holds`` when no n decreases and more than half of the n increase
  significantly (Holm across n); else ``undecided`` (most n flat). The flat n are named.
* claim 2 (minimum near the interpolation threshold): per SNR ``holds`` / ``fails`` /
  ``undecided`` (alignlib.claims.minimum_near_threshold); the task ``holds`` when it holds
  at a majority of its SNRs, ``fails`` when more SNRs fail than hold, else ``undecided``.
* claim 4 (stronger alignment does not mean lower test error): ``holds`` when some pair of
  grid points has equivalent test errors and significantly different alignment; always
  reported with the rank correlation between alignment and test error over the grid.

The headline verdict of a task uses its primary metric (:func:`primary_metric`) at the
layer the paper is about (the first hidden layer; the end-to-end map for
``cosine_end_to_end``); every other informative (metric, layer) gets its own row, and the
headline lists the metrics whose verdict agrees. Cells a metric cannot inform (NaN with
``alignment_note``) are reported as ``excluded`` with the note, never as evidence.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from .claims import ALPHA, decoupling, increases_with_snr, minimum_near_threshold, panel
from .taskspec import END_TO_END_METRICS

CLAIM3 = "claims 1 and 2 hold for linear and nonlinear networks, regression and classification, synthetic and real data"
CLAIMS = {1: "alignment increases with SNR", 2: "alignment minimal near the interpolation threshold",
          4: "equal test error, different alignment"}


def hidden_layers(ds: xr.Dataset) -> list[str]:
    return [str(x) for x in ds["layer"].values][:-1]


def panels_of(ds: xr.Dataset):
    """(metric, layer, note) of every panel with values: hidden layers (and the output layer), e2e at output."""
    layers = [str(x) for x in ds["layer"].values]
    for metric in [str(m) for m in ds["metric"].values]:
        for layer in ([layers[-1]] if metric in END_TO_END_METRICS else layers):
            values = ds["alignment"].sel(metric=metric, layer=layer)
            note = ""
            if "alignment_note" in ds:
                note = str(ds["alignment_note"].sel(metric=metric, layer=layer).values)
            yield metric, layer, bool(np.isfinite(values).any()), note


def primary_metric(ds: xr.Dataset, requested: str | None = None) -> tuple[str, str]:
    """(metric, layer) of the headline verdict: ``requested`` when given and informative, else the
    end-to-end cosine for a linear network, else linear CKA, else the first informative metric."""
    informative = {(m, layer) for m, layer, ok, _ in panels_of(ds) if ok}
    first_hidden = hidden_layers(ds)[0] if hidden_layers(ds) else str(ds["layer"].values[-1])
    last = str(ds["layer"].values[-1])

    def place(metric):
        return (metric, last if metric in END_TO_END_METRICS else first_hidden)

    order = ([requested] if requested else []) + ["cosine_end_to_end", "cka_linear"]
    for metric in order:
        if place(metric) in informative:
            return place(metric)
    for m, layer, ok, _ in panels_of(ds):
        if ok and layer == first_hidden:
            return m, layer
    raise ValueError(f"task {ds.attrs.get('task')}: no metric has a finite value on the first hidden layer")


def claim1_verdict(rows: list[dict]) -> tuple[str, str, float]:
    calls = {r["n"]: r["call"] for r in rows}
    decided = [n for n, c in calls.items() if c != "undecided"]
    inc = [n for n in decided if calls[n] == "increases"]
    dec = [n for n in decided if calls[n] == "decreases"]
    flat = [n for n in decided if calls[n] == "flat"]
    frac = len(inc) / len(decided) if decided else np.nan
    summary = (f"increases at {len(inc)}/{len(decided)} n" + (f"; flat at n = {flat}" if flat else "")
               + (f"; DECREASES at n = {dec}" if dec else ""))
    if not decided:
        return "undecided", "fewer than 3 SNRs with finite alignment at every n", frac
    if dec:
        return "fails", summary, frac
    if len(inc) > len(decided) / 2:
        return "holds", summary, frac
    return "undecided", summary + " (most n flat)", frac


def claim2_verdict(rows: list[dict]) -> tuple[str, str, float]:
    calls = [r["call"] for r in rows]
    k_hold, k_fail = calls.count("holds"), calls.count("fails")
    frac = k_hold / len(calls) if calls else np.nan
    parts = [f"SNR {r['snr']:g}: {r['call']}" + (f" (n_min {r['n_min']:g} [{r['ci_low']:g}, {r['ci_high']:g}])"
                                                  if np.isfinite(r.get("n_min", np.nan)) else "")
             for r in rows]
    summary = f"holds at {k_hold}/{len(calls)} SNRs, fails at {k_fail}; " + "; ".join(parts)
    if k_hold > len(calls) / 2:
        return "holds", summary, frac
    if k_fail > k_hold:
        return "fails", summary, frac
    return "undecided", summary, frac


def panel_results(ds: xr.Dataset, thresholds: xr.Dataset, metric: str, layer: str, alpha: float = ALPHA) -> dict:
    """Every claim's per-cell rows and its verdict for one (metric, layer)."""
    p = panel(ds, metric, layer)
    c1 = increases_with_snr(p, alpha)
    c2 = minimum_near_threshold(p, thresholds, alpha)
    c4 = decoupling(p, ds["test_error"], alpha=alpha)
    return {1: (c1, *claim1_verdict(c1)), 2: (c2, *claim2_verdict(c2)), 4: ([c4], c4["call"], c4["detail"], c4["estimate"])}


def task_verdicts(ds: xr.Dataset, thresholds: xr.Dataset, requested_metric: str | None = None,
                  alpha: float = ALPHA) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(verdicts, summary) frames of one task: headline and per-metric verdicts, and every per-cell row."""
    task = ds.attrs.get("task", "")
    head_metric, head_layer = primary_metric(ds, requested_metric)
    results, excluded = {}, []
    for metric, layer, ok, note in panels_of(ds):
        if ok:
            results[(metric, layer)] = panel_results(ds, thresholds, metric, layer, alpha)
        elif note:
            excluded.append((metric, layer, note))
    verdict_rows, cell_rows = [], []
    for (metric, layer), res in results.items():
        for claim, (cells, verdict, detail, estimate) in res.items():
            for cell in cells:
                cell_rows.append({"task": task, "claim": claim, "claim_text": CLAIMS[claim],
                                  **{k: v for k, v in cell.items() if k not in ("claim", "pairs")}})
            verdict_rows.append(_verdict_row(task, claim, "metric", metric, layer, verdict, detail, estimate,
                                             cells, ds.sizes["seed"]))
            verdict_rows[-1]["below_chance"] = below_chance(ds, metric, layer)
    for metric, layer, note in excluded:
        for claim in CLAIMS:
            verdict_rows.append(dict(task=task, claim=claim, claim_text=CLAIMS[claim], level="metric", metric=metric,
                                     layer=layer, verdict="excluded", detail=note, members=ds.sizes["seed"]))
    frame = pd.DataFrame(verdict_rows)
    heads = []
    hidden = set(hidden_layers(ds))
    for claim in CLAIMS:
        mine = frame[(frame.claim == claim) & (frame.metric == head_metric) & (frame.layer == head_layer)].iloc[0]
        peers = frame[(frame.claim == claim) & (frame.verdict != "excluded")
                      & (frame.layer.isin(hidden) | frame.metric.isin(END_TO_END_METRICS))]
        agree = sorted(f"{m}" for m, v in zip(peers.metric, peers.verdict) if v == mine.verdict)
        heads.append(dict(mine.to_dict(), level="headline",
                          metrics_agree=f"{len(agree)}/{len(peers)}: " + " ".join(agree)))
    out = pd.concat([pd.DataFrame(heads), frame], ignore_index=True)
    if ds.attrs.get("diverged_note"):  # members excluded after diverging: every verdict says so
        out["detail"] = f"[{ds.attrs['diverged_note']}] " + out["detail"].astype(str)
    return out, pd.DataFrame(cell_rows)


def below_chance(ds: xr.Dataset, metric: str, layer: str) -> float:
    """How many grid points (snr, n) have a mean alignment over pairs at or below ``chance_hi`` (the
    95th percentile of the shuffled-probe draws, alignlib.chance); NaN without a chance level."""
    if "chance_hi" not in ds or metric not in ds["chance_hi"]["metric"].values:
        return np.nan
    hi = ds["chance_hi"].sel(metric=metric, layer=layer)
    mean = ds["alignment"].sel(metric=metric, layer=layer).mean("pair", skipna=True)
    both = np.isfinite(hi) & np.isfinite(mean)
    return float((mean <= hi).where(both, False).sum()) if bool(both.any()) else np.nan


def _verdict_row(task, claim, level, metric, layer, verdict, detail, estimate, cells, members):
    row = dict(task=task, claim=claim, claim_text=CLAIMS[claim], level=level, metric=metric, layer=layer,
               verdict=verdict, members=members, detail=detail)
    if claim == 1:
        row.update(statistic="fraction of n with a significant rise in SNR (Holm 5%)", estimate=estimate,
                   p_value=max((c["p_holm"] for c in cells if c["call"] == "increases"), default=np.nan))
    elif claim == 2:
        row.update(statistic="fraction of SNRs with a significant dip whose n_min interval meets the threshold "
                             "interval", estimate=estimate,
                   p_value=max((c["p_holm"] for c in cells if c["call"] == "holds"), default=np.nan))
    else:
        c = cells[0]
        row.update(statistic=c["statistic"], estimate=c["estimate"], ci_low=c["ci_low"], ci_high=c["ci_high"],
                   p_value=c["p_value"])
    return row


VERDICT_COLUMNS = ["claim", "task", "level", "metric", "layer", "verdict", "statistic", "estimate", "ci_low",
                   "ci_high", "p_value", "members", "metrics_agree", "detail", "claim_text",
                   "below_chance"]  # grid points where the mean alignment <= chance_hi (NaN: no chance level)


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Verdict rows in a fixed column order, headlines first, then by claim and task."""
    frame = frame.copy()
    for col in VERDICT_COLUMNS:
        if col not in frame:
            frame[col] = np.nan
    frame["_order"] = (frame["level"] != "headline").astype(int)
    frame = frame.sort_values(["_order", "claim", "task"], kind="stable").drop(columns="_order")
    return frame[VERDICT_COLUMNS].reset_index(drop=True)


def no_value_rows(task: str, reason: str) -> pd.DataFrame:
    """Explicit undecided rows for a task without a single finite alignment value."""
    return pd.DataFrame([dict(task=task, claim=c, claim_text=t, level="headline", verdict="undecided",
                              detail=reason) for c, t in CLAIMS.items()])


def all_verdicts(tables: dict, primary_metrics: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Verdicts and per-cell rows of every task ({task: alignment table}), plus claim 3 across task
    groups; a task without any finite alignment gets explicit undecided rows instead of disappearing."""
    primary_metrics = primary_metrics or {}
    return combine_task_results({task: task_result(task, table, primary_metrics.get(task))
                                 for task, table in tables.items()})


def task_result(task: str, table: xr.Dataset, primary_metric: str | None = None) -> dict:
    """One task's share of :func:`all_verdicts`: its verdict rows, its per-cell rows (None when the
    table has no finite value) and its claim-3 groups. The pipeline computes it per task, in
    parallel, and :func:`combine_task_results` stacks the tasks."""
    if not bool(np.isfinite(table["alignment"]).any()):
        verdicts, cells = no_value_rows(task, "no finite alignment value in this task's alignment.nc"), None
    else:
        verdicts, cells = task_verdicts(table, table, primary_metric)
    return {"verdicts": verdicts, "cells": cells, "groups": task_groups(table)}


def combine_task_results(results: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(verdicts, summary) of all tasks from their :func:`task_result` ({task: result}, in config order)."""
    cells = [r["cells"] for r in results.values() if r["cells"] is not None]
    frame = pd.concat([r["verdicts"] for r in results.values()], ignore_index=True)
    frame = pd.concat([frame, claim3_rows(frame, {t: r["groups"] for t, r in results.items()})],
                      ignore_index=True)
    return tidy(frame), (pd.concat(cells, ignore_index=True) if cells else pd.DataFrame())


REAL_DATASETS = ("digits", "diabetes", "mnist", "cifar10")
GROUP_AXES = {"network": ("linear", "nonlinear"), "target": ("regression", "classification"),
              "data": ("synthetic", "real")}


def task_groups(table: xr.Dataset) -> dict:
    """The task's place on claim 3's three axes, from its table's attributes."""
    return {"network": "linear" if table.attrs.get("network") == "linear" else "nonlinear",
            "target": str(table.attrs.get("target", "regression")),
            "data": "real" if table.attrs.get("dataset") in REAL_DATASETS else "synthetic"}


def _combine(verdicts: list[str]) -> str:
    if any(v == "fails" for v in verdicts):
        return "fails"
    if verdicts and all(v == "holds" for v in verdicts):
        return "holds"
    return "undecided"


def claim3_rows(frame: pd.DataFrame, groups: dict) -> pd.DataFrame:
    """Claim 3: the picture of claims 1 and 2 holds across linear/nonlinear networks, regression/
    classification and synthetic/real data.

    Per group (e.g. network = nonlinear): ``holds`` when claims 1 and 2 hold (headline verdicts) for
    every task of the group, ``fails`` when one of them fails for some task, else ``undecided``; a
    group without tasks is ``undecided``. The overall row (task ``all groups``) combines the groups
    the same way. The tasks behind each cell are named in ``detail``.
    """
    heads = frame[(frame["level"] == "headline") & frame["claim"].isin([1, 2])]
    rows, group_verdicts = [], []
    for axis, values in GROUP_AXES.items():
        for value in values:
            tasks = [t for t, g in groups.items() if g[axis] == value]
            mine = heads[heads["task"].isin(tasks)]
            by_task = {t: {int(c): v for c, v in zip(mine[mine.task == t].claim, mine[mine.task == t].verdict)}
                       for t in tasks}
            parts = [f"{t}: claim 1 {v.get(1, '?')}, claim 2 {v.get(2, '?')}" for t, v in by_task.items()]
            verdict = _combine([v for t in by_task.values() for v in t.values()]) if tasks else "undecided"
            group_verdicts.append(verdict)
            rows.append(dict(task=f"{axis} = {value}", claim=3, claim_text=CLAIM3, level="group", verdict=verdict,
                             statistic="claims 1 and 2 (headline verdicts) for every task of the group",
                             estimate=np.mean([v == "holds" for t in by_task.values() for v in t.values()])
                             if tasks else np.nan,
                             detail="; ".join(parts) if parts else "no task of this kind in the config"))
    rows.insert(0, dict(task="all groups", claim=3, claim_text=CLAIM3, level="headline",
                        verdict=_combine(group_verdicts), statistic="every group's verdict",
                        detail="; ".join(f"{r['task']}: {r['verdict']}" for r in rows)))
    return pd.DataFrame(rows)


def write_csv(frame: pd.DataFrame, path) -> None:
    """Write a CSV atomically (temporary file, then rename)."""
    import os

    tmp = f"{path}.tmp"
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def decoupled_highlights(ds: xr.Dataset, alpha: float = ALPHA) -> dict:
    """{metric: [((snr, n), (snr, n))]}: the decoupled pair with the largest alignment gap of each metric at
    its plotted layer (alignlib.claims.equal_error_different_alignment), for the test-error figure."""
    from .alignment import primary_layer
    from .claims import equal_error_different_alignment

    out = {}
    for metric in [str(m) for m in ds["metric"].values]:
        layer = primary_layer(ds, metric)
        if not bool(np.isfinite(ds["alignment"].sel(metric=metric, layer=layer)).any()):
            continue
        pairs = equal_error_different_alignment(panel(ds, metric, layer), ds["test_error"], alpha=alpha)
        if pairs:
            out[metric] = [(pairs[0]["low"], pairs[0]["high"])]
    return out
