"""From the per-cell claim tests (alignlib.claims.claim_tests) to one verdict per claim and task.

A verdict is ``holds``, ``fails`` or ``undecided`` (with the reason). Every claim's cells
(claim 1: each n; claim 2: each SNR; claim 4: the whole grid; claim 3: each task's headline
verdict of claims 1 and 2 within a group of tasks) are turned into a verdict by one rule,
:func:`aggregate`, fixed in advance (docs/methods.md):

* ``holds`` when the claim holds at more than half of the decided cells and fails at none;
* ``fails`` when it fails at more than half of the decided cells;
* ``undecided`` otherwise, and when no cell is decided.

The headline verdict of a task uses its primary metric (:func:`primary_metric`) at the
layer the paper is about (the first hidden layer; the end-to-end map for
``cosine_end_to_end``); every other informative (metric, layer) gets its own row. The
metrics whose verdict agrees are listed as a description, not as corroboration (they are
functions of the same members). Cells a metric cannot inform (NaN with ``alignment_note``)
are reported as ``excluded`` with the note, never as evidence.
"""

from __future__ import annotations

import os

import numpy as np
from scipy import stats as sps

from alignlib._extras import pipeline_import  # noqa: E402

pd = pipeline_import("pandas", __name__)
xr = pipeline_import("xarray", __name__)

from alignlib.stats.members import holm

from alignlib.claims.claim_tests import (ALPHA, Criteria, decoupling, grid_step_tests, increases_with_snr,
                                         minimum_near_threshold, panel)
from alignlib.ensembles.alignment import primary_layer
from alignlib.ensembles.datasets import REAL_DATASETS
from alignlib.names import END_TO_END_METRICS

CLAIM3 = "claims 1 and 2 hold for linear and nonlinear networks, regression and classification, synthetic and real data"
CLAIMS = {1: "alignment increases monotonically with SNR", 2: "alignment minimal near the interpolation threshold",
          4: "higher alignment does not imply lower test error"}
CELL_OF = {1: "n", 2: "SNR", 3: "task and claim", 4: "grid"}


def aggregate(calls) -> str:
    """The one rule from cells to a verdict: holds at a majority of the decided cells and fails at
    none -> ``holds``; fails at a majority of the decided cells -> ``fails``; else ``undecided``."""
    calls = list(calls)
    unknown = set(calls) - {"holds", "fails", "undecided"}
    if unknown:
        raise ValueError(f"cell calls must be holds/fails/undecided, got {sorted(unknown)}")
    held, failed = calls.count("holds"), calls.count("fails")
    decided = held + failed
    if decided and held > decided / 2 and failed == 0:
        return "holds"
    if decided and failed > decided / 2:
        return "fails"
    return "undecided"


def aggregate_summary(calls, labels, unit: str) -> str:
    """One line naming the cells that hold, fail and stay undecided."""
    groups = {c: [str(lab) for lab, call in zip(labels, calls) if call == c] for c in ("holds", "fails", "undecided")}
    parts = [f"{c} at {len(v)} {unit}" + (f" ({', '.join(v)})" if v and c != "holds" else "") for c, v in groups.items() if v]
    return f"{len([c for c in calls if c != 'undecided'])}/{len(calls)} {unit} decided: " + "; ".join(parts)


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
    """Claim 1 from its cells (one per n): the verdict, its summary and the fraction of n that hold."""
    calls = [r["call"] for r in rows]
    frac = calls.count("holds") / len(calls) if calls else np.nan
    return aggregate(calls), aggregate_summary(calls, [f"n={r['n']}" for r in rows], "n"), frac


def _location(r) -> str:
    if not np.isfinite(r.get("r", np.nan)) and not np.isfinite(r.get("r_low", np.nan)):
        return f"SNR {r['snr']:g}: {r['call']}"
    return (f"SNR {r['snr']:g}: {r['call']}, r {r['r']:.2f} [{r['r_low']:.2f}, {r['r_high']:.2f}], "
            f"shape at t {r.get('shape_at_threshold', '?')}")


def claim2_verdict(rows: list[dict]) -> tuple[str, str, float]:
    """Claim 2 from its cells (one per SNR)."""
    calls = [r["call"] for r in rows]
    frac = calls.count("holds") / len(calls) if calls else np.nan
    summary = aggregate_summary(calls, [f"SNR {r['snr']:g}" for r in rows], "SNRs")
    return aggregate(calls), summary + "; " + "; ".join(_location(r) for r in rows), frac


def claim4_verdict(cell: dict) -> tuple[str, str, float]:
    """Claim 4 from its one cell (the grid)."""
    return aggregate([cell["call"]]), cell["detail"], cell["estimate"]


def panel_results(ds: xr.Dataset, metric: str, layer: str, crit: Criteria | None = None) -> dict:
    """Every claim's per-cell rows and its verdict for one (metric, layer)."""
    crit = crit or Criteria()
    p = panel(ds, metric, layer)
    c1 = increases_with_snr(p, crit.alpha)
    c2 = minimum_near_threshold(p, crit)
    c4 = decoupling(p, crit.alpha)
    return {1: (c1, *claim1_verdict(c1)), 2: (c2, *claim2_verdict(c2)), 4: ([c4], *claim4_verdict(c4))}


def _cell_rows(task: str, claim: int, cells: list[dict]) -> list[dict]:
    """summary.csv rows of one claim's cells (claim 4: its grid cell, then one row per step test)."""
    rows = []
    for cell in cells:
        rows.append({"task": task, "claim": claim, "claim_text": CLAIMS[claim], "level": "cell",
                     **{k: v for k, v in cell.items() if k not in ("claim", "step_tests")}})
        for step in cell.get("step_tests", []):
            rows.append({"task": task, "claim": claim, "claim_text": CLAIMS[claim], "level": "step",
                         "metric": cell["metric"], "layer": cell["layer"], "call": step["kind"], **step})
    return rows


def task_verdicts(ds: xr.Dataset, crit: Criteria | None = None, requested_metric: str | None = None
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(verdicts, summary) frames of one task: headline and per-metric verdicts, and every per-cell row."""
    crit = crit or Criteria()
    task = ds.attrs.get("task", "")
    head_metric, head_layer = primary_metric(ds, requested_metric)
    results, excluded = {}, []
    for metric, layer, ok, note in panels_of(ds):
        if ok:
            results[(metric, layer)] = panel_results(ds, metric, layer, crit)
        elif note:
            excluded.append((metric, layer, note))
    verdict_rows, cell_rows = [], []
    for (metric, layer), res in results.items():
        for claim, (cells, verdict, detail, estimate) in res.items():
            cell_rows += _cell_rows(task, claim, cells)
            row = verdict_row(task=task, claim=claim, metric=metric, layer=layer, verdict=verdict, detail=detail,
                              estimate=estimate, cells=cells, crit=crit)
            row.update(members=ds.sizes["seed"], below_chance=below_chance(ds, metric, layer))
            verdict_rows.append(row)
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
                          metrics_agree=f"{len(agree)}/{len(peers)} (description, not corroboration): "
                                        + " ".join(agree)))
    out = pd.concat([pd.DataFrame(heads), frame], ignore_index=True)
    out["data_draws"] = int(ds.attrs.get("data_draws", 1))
    if ds.attrs.get("diverged_note"):  # members excluded after diverging: every verdict says so
        out["detail"] = f"[{ds.attrs['diverged_note']}] " + out["detail"].astype(str)
    return out, pd.DataFrame(cell_rows)


def below_chance(ds: xr.Dataset, metric: str, layer: str) -> float:
    """How many grid points (snr, n) have a mean alignment over pairs at or below ``chance_hi`` (the
    95th percentile of the shuffled-probe draws, alignlib.stats.chance); NaN without a chance level."""
    if "chance_hi" not in ds or metric not in ds["chance_hi"]["metric"].values:
        return np.nan
    hi = ds["chance_hi"].sel(metric=metric, layer=layer)
    mean = ds["alignment"].sel(metric=metric, layer=layer).mean("pair", skipna=True)
    both = np.isfinite(hi) & np.isfinite(mean)
    return float((mean <= hi).where(both, False).sum()) if bool(both.any()) else np.nan


def _claim2_cells_text(cells: list[dict]) -> str:
    return " | ".join(f"SNR {c['snr']:g}: r {c['r']:.3f} [{c['r_low']:.3f}, {c['r_high']:.3f}], "
                      f"shape {c['shape_at_threshold']}, {c['call']}" for c in cells)


def verdict_row(*, task: str, claim: int, metric: str, layer: str, verdict: str, detail: str, estimate: float,
                cells: list[dict], crit: Criteria) -> dict:
    """One row of verdicts.csv: the verdict with its statistic and the numbers behind it."""
    row = dict(task=task, claim=claim, claim_text=CLAIMS[claim], level="metric", metric=metric, layer=layer,
               verdict=verdict, detail=detail, cells=len(cells),
               cells_holding=sum(c["call"] == "holds" for c in cells),
               cells_failing=sum(c["call"] == "fails" for c in cells))
    if claim == 1:
        row.update(statistic="fraction of n where alignment rises with SNR (Holm) and falls at no SNR step (Holm)",
                   estimate=estimate,
                   p_value=max((c["p_holm"] for c in cells if c["call"] == "holds"), default=np.nan))
    elif claim == 2:
        finite = [c for c in cells if np.isfinite(c.get("r", np.nan))]
        row.update(statistic="fraction of SNRs with a significant dip whose r = log(n_min/t) lies in [-log c, log c] "
                             f"({crit.location_level:.0%} joint member bootstrap)", estimate=estimate,
                   p_value=max((c["p_holm"] for c in cells if c["call"] == "holds"), default=np.nan),
                   near_factor=crit.near_factor, location_level=crit.location_level,
                   r=float(np.median([c["r"] for c in finite])) if finite else np.nan,
                   r_cells=_claim2_cells_text(cells))
    else:
        c = cells[0]
        row.update(statistic=c["statistic"], estimate=c["estimate"], ci_low=c["ci_low"], ci_high=c["ci_high"],
                   p_value=c["p_value"], steps=c["steps"], error_steps=c["error_steps"],
                   decoupled_steps=c["decoupled_steps"], coupled_steps=c["coupled_steps"])
    return row


VERDICT_COLUMNS = ["claim", "task", "level", "metric", "layer", "verdict", "statistic", "estimate", "ci_low",
                   "ci_high", "p_value", "members", "data_draws", "cells", "cells_holding", "cells_failing",
                   "near_factor", "location_level", "r", "r_cells",  # claim 2: r = log(n_min / t) per SNR
                   "steps", "error_steps", "decoupled_steps", "coupled_steps",  # claim 4: the grid-step tests
                   "metrics_agree", "detail", "claim_text",
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


def all_verdicts(tables: dict, primary_metrics: dict | None = None, crit: Criteria | None = None
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Verdicts and per-cell rows of every task ({task: alignment table}), plus claim 3 across task
    groups; a task without any finite alignment gets explicit undecided rows instead of disappearing."""
    primary_metrics = primary_metrics or {}
    return combine_task_results({task: task_result(task, table, primary_metrics.get(task), crit)
                                 for task, table in tables.items()})


def task_result(task: str, table: xr.Dataset, primary_metric: str | None = None, crit: Criteria | None = None) -> dict:
    """One task's share of :func:`all_verdicts`: its verdict rows, its per-cell rows (None when the
    table has no finite value) and its claim-3 groups. The pipeline computes it per task, in
    parallel, and :func:`combine_task_results` stacks the tasks."""
    if not bool(np.isfinite(table["alignment"]).any()):
        verdicts, cells = no_value_rows(task, "no finite alignment value in this task's alignment.nc"), None
    else:
        verdicts, cells = task_verdicts(table, crit, primary_metric)
    return {"verdicts": verdicts, "cells": cells, "groups": task_groups(table)}


def combine_task_results(results: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(verdicts, summary) of all tasks from their :func:`task_result` ({task: result}, in config order)."""
    cells = [r["cells"] for r in results.values() if r["cells"] is not None]
    cells = pd.concat(cells, ignore_index=True) if cells else pd.DataFrame()
    frame = pd.concat([r["verdicts"] for r in results.values()], ignore_index=True)
    groups = {t: r["groups"] for t, r in results.items()}
    frame = pd.concat([frame, claim3_rows(frame, groups), group_comparison_rows(frame, cells, groups)],
                      ignore_index=True)
    return tidy(frame), cells


GROUP_AXES = {"network": ("linear", "nonlinear"), "target": ("regression", "classification"),
              "data": ("synthetic", "real")}


def task_groups(table: xr.Dataset) -> dict:
    """The task's place on claim 3's three axes, from its table's attributes."""
    return {"network": "linear" if table.attrs.get("network") == "linear" else "nonlinear",
            "target": str(table.attrs.get("target", "regression")),
            "data": "real" if table.attrs.get("dataset") in REAL_DATASETS else "synthetic"}


def claim3_rows(frame: pd.DataFrame, groups: dict) -> pd.DataFrame:
    """Claim 3: the picture of claims 1 and 2 holds across linear/nonlinear networks, regression/
    classification and synthetic/real data.

    Per group (e.g. network = nonlinear) the cells are its tasks' headline verdicts of claims 1
    and 2, turned into the group's verdict by :func:`aggregate`; a group without tasks is
    ``undecided``. The overall row (task ``all groups``) aggregates the six groups the same way.
    The tasks behind each cell are named in ``detail``.
    """
    heads = frame[(frame["level"] == "headline") & frame["claim"].isin([1, 2])]
    rows = []
    for axis, values in GROUP_AXES.items():
        for value in values:
            tasks = [t for t, g in groups.items() if g[axis] == value]
            mine = heads[heads["task"].isin(tasks)]
            calls = [str(v) for v in mine.verdict]
            labels = [f"{t} claim {int(c)}" for t, c in zip(mine.task, mine.claim)]
            rows.append(dict(task=f"{axis} = {value}", claim=3, claim_text=CLAIM3, level="group",
                             verdict=aggregate(calls), cells=len(calls), cells_holding=calls.count("holds"),
                             cells_failing=calls.count("fails"),
                             statistic="claims 1 and 2 (headline verdicts) of the group's tasks, aggregated",
                             estimate=calls.count("holds") / len(calls) if calls else np.nan,
                             detail=aggregate_summary(calls, labels, "task verdicts") if calls
                             else "no task of this kind in the config"))
    group_calls = [r["verdict"] for r in rows]
    rows.insert(0, dict(task="all groups", claim=3, claim_text=CLAIM3, level="headline",
                        verdict=aggregate(group_calls), cells=len(group_calls),
                        cells_holding=group_calls.count("holds"), cells_failing=group_calls.count("fails"),
                        statistic="the groups' verdicts, aggregated",
                        detail="; ".join(f"{r['task']}: {r['verdict']}" for r in rows)))
    return pd.DataFrame(rows)


def _task_effects(frame: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Per task, on its headline panel: the mean claim-2 location r over its SNRs with finite intervals
    and the mean claim-1 rise per SNR step over its n, each with a standard error from the cells'
    intervals (normal approximation; cells at different grid points have independent members)."""
    rows = []
    if cells.empty:
        return pd.DataFrame(columns=["task", "quantity", "value", "se"])
    heads = frame[(frame["level"] == "headline") & frame["claim"].isin([1, 2])]
    for task, claim, metric, layer in zip(heads.task, heads.claim, heads.metric, heads.layer):
        mine = cells[(cells.task == task) & (cells.claim == claim) & (cells.metric == metric)
                     & (cells.layer == layer) & (cells.get("level", "cell") == "cell")]
        if claim == 2:
            lo, hi, est = (mine[c].astype(float) for c in ("r_low", "r_high", "r"))
            z = sps.norm.ppf(0.5 + float(mine["location_level"].iloc[0]) / 2) if len(mine) else np.nan
            quantity = "claim 2: r = log(n_min / t)"
        else:
            lo, hi, est = (mine[c].astype(float) for c in ("ci_low", "ci_high", "estimate"))
            z = sps.norm.ppf(0.975)
            quantity = "claim 1: rise per SNR step"
        ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(est)
        if ok.sum():
            se = (hi[ok] - lo[ok]) / (2 * z)
            rows.append(dict(task=task, quantity=quantity, value=float(est[ok].mean()),
                             se=float(np.sqrt((se ** 2).sum()) / ok.sum())))
    return pd.DataFrame(rows, columns=["task", "quantity", "value", "se"])


def group_comparison_rows(frame: pd.DataFrame, cells: pd.DataFrame, groups: dict) -> pd.DataFrame:
    """Claim 3 compares the groups of each axis: for the claim-2 location r and the claim-1 rise, the
    mean over each group's tasks (:func:`_task_effects`) and a two-sided z test of their difference,
    Holm across the comparisons. ``alike`` when the difference is not significant, ``differ`` when it
    is, ``undecided`` when a group has no estimate. A description of how alike the groups are, beside
    the verdict of claim 3 (not a verdict: the groups' tasks use different metrics and scales)."""
    effects = _task_effects(frame, cells)
    rows, pvals = [], []
    for axis, (g1, g2) in GROUP_AXES.items():
        for quantity in sorted(set(effects.quantity)):
            parts = []
            for value in (g1, g2):
                tasks = [t for t, g in groups.items() if g[axis] == value]
                mine = effects[(effects.quantity == quantity) & effects.task.isin(tasks)]
                parts.append((float(mine.value.mean()), float(np.sqrt((mine.se ** 2).sum()) / len(mine)), list(mine.task))
                             if len(mine) else (np.nan, np.nan, []))
            (m1, s1, t1), (m2, s2, t2) = parts
            diff, se = m1 - m2, float(np.hypot(s1, s2))
            p = float(2 * sps.norm.sf(abs(diff) / se)) if np.isfinite(diff) and se > 0 else np.nan
            pvals.append(p)
            rows.append(dict(task=f"{axis}: {g1} vs {g2}", claim=3, claim_text=CLAIM3, level="comparison",
                             statistic=f"difference of group means, {quantity}", estimate=diff,
                             ci_low=diff - 1.96 * se, ci_high=diff + 1.96 * se, p_value=p,
                             detail=f"{g1}: {m1:.3g} (se {s1:.2g}; {', '.join(t1) or 'no task'}); "
                                    f"{g2}: {m2:.3g} (se {s2:.2g}; {', '.join(t2) or 'no task'})"))
    adjusted = holm(pvals)
    for row, q in zip(rows, adjusted):
        row["verdict"] = "undecided" if not np.isfinite(q) else ("differ" if q < ALPHA else "alike")
        row["detail"] += f"; Holm p = {q:.3g}" if np.isfinite(q) else "; a group has no estimate"
    return pd.DataFrame(rows)


def write_csv(frame: pd.DataFrame, path) -> None:
    """Write a CSV atomically (temporary file, then rename)."""
    tmp = f"{path}.tmp"
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def decoupled_highlights(ds: xr.Dataset, alpha: float = ALPHA) -> dict:
    """{metric: [((snr, n), (snr, n))]}: the decoupled grid step with the largest alignment change of each
    metric at its plotted layer (alignlib.claims.claim_tests.grid_step_tests), for the test-error figure."""
    out = {}
    for metric in [str(m) for m in ds["metric"].values]:
        layer = primary_layer(ds, metric)
        if not bool(np.isfinite(ds["alignment"].sel(metric=metric, layer=layer)).any()):
            continue
        steps = [s for s in grid_step_tests(panel(ds, metric, layer), alpha) if s["kind"] == "decoupled"]
        if steps:
            s = max(steps, key=lambda s: abs(s["alignment_change"]))
            out[metric] = [((s["snr_from"], s["n_from"]), (s["snr_to"], s["n_to"]))]
    return out
