"""alignlib.claims.verdicts: the one aggregation rule, a verdict row, and whole alignment tables turned
into verdicts (claim 3's groups, tasks without values, diverged members)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from alignlib.claims.calibration import GRIDS, threshold_noise_fit
from alignlib.claims.claim_tests import Criteria, panel
from alignlib.claims.verdicts import (
    CLAIMS,
    aggregate,
    all_verdicts,
    claim1_verdict,
    claim2_verdict,
    claim3_rows,
    claim4_verdict,
    verdict_row,
)
from alignlib.ensembles.alignment import member_pairs
from alignlib.stats.threshold import threshold_with_interval
from alignpipe.figures import alignment_vs_n

# the tables' grid: the first 3 SNRs and 4 sample sizes of the calibration's linear grid
TABLE_SNRS, TABLE_NS = np.array([0.1, 0.3, 1.0]), GRIDS["linear"][0][:4]


# ------------------------------------------------------------------ the one aggregation rule


@pytest.mark.parametrize("calls, expected", [
    (["holds", "holds", "undecided"], "holds"),  # undecided cells do not count
    (["holds", "holds", "fails"], "undecided"),  # a majority holds, but it fails somewhere
    (["fails", "fails", "holds"], "fails"),
    (["undecided"] * 3, "undecided"),  # nothing decided
    (["holds", "fails"], "undecided"),  # no majority either way
    (["fails"], "fails"),
    (["holds"], "holds"),
    (["fails", "undecided", "undecided"], "fails"),
    (["holds", "fails", "fails", "undecided"], "fails"),
    ([], "undecided"),
])
def test_aggregate_mixed_cells(calls, expected):
    assert aggregate(calls) == expected


def test_aggregate_rejects_unknown_labels():
    with pytest.raises(ValueError, match="holds/fails/undecided"):
        aggregate(["holds", "increases"])


def test_every_claim_verdict_is_the_aggregate_of_its_cells():
    rows = [dict(call=c, n=k, snr=float(k)) for k, c in enumerate(["holds", "holds", "fails", "undecided"])]
    assert claim1_verdict(rows)[0] == aggregate([r["call"] for r in rows]) == "undecided"
    rows2 = [dict(r, r=np.nan, r_low=np.nan, r_high=np.nan) for r in rows[:2] + rows[3:]]
    assert claim2_verdict(rows2)[0] == "holds"
    assert claim4_verdict(dict(call="fails", detail="", estimate=-0.9))[0] == "fails"


# ------------------------------------------------------------------ whole tables through alignlib.claims.verdicts


def _table(values_by_metric, test_error, snrs=TABLE_SNRS, ns=TABLE_NS, S=6):
    ia, ib = member_pairs(range(S))
    metrics = list(values_by_metric)
    arr = np.stack([values_by_metric[m] for m in metrics])[:, None]  # metric, layer, snr, n, pair
    arr = np.concatenate([arr, arr], axis=1)
    fit = threshold_noise_fit((len(snrs), len(ns)), ns, (ns[1], ns[2]), S)
    ds = xr.Dataset({"alignment": (("metric", "layer", "snr", "n", "pair"), arr),
                     "test_error": (("snr", "n", "seed"), test_error),
                     "noise_fit": (("snr", "n", "seed"), fit)},
                    coords={"metric": metrics, "layer": ["hidden", "output"], "snr": snrs, "n": ns,
                            "seed": np.arange(S), "pair": np.arange(len(ia)), "seed_a": ("pair", ia),
                            "seed_b": ("pair", ib)}, attrs={"task": "toy"})
    return ds


def test_panel_reads_noise_fit_and_test_error_from_the_table():
    rng = np.random.default_rng(4)
    err = rng.random((3, 4, 6))
    ds = _table({"cka_linear": rng.random((3, 4, 15))}, err)
    p = panel(ds, "cka_linear", "hidden")
    np.testing.assert_array_equal(p.test_error, err)
    assert p.noise_fit.shape == (3, 4, 6) and (p.noise_fit[:, :2] == 0).all() and (p.noise_fit[:, 2:] == 1).all()


def test_verdicts_for_a_task_without_values_are_explicit():
    ds = _table({"cka_linear": np.full((3, 4, 15), np.nan)}, np.ones((3, 4, 6)))
    verdicts, _ = all_verdicts({"toy": ds})
    mine = verdicts[verdicts.task == "toy"]
    assert set(mine["verdict"]) == {"undecided"} and sorted(mine.claim) == [1, 2, 4]
    assert mine["detail"].str.contains("no finite alignment").all()
    assert set(verdicts[verdicts.claim == 3]["verdict"]) == {"undecided"}


def test_claim3_groups_tasks_and_combines_their_verdicts_by_the_common_rule():
    heads = pd.DataFrame([
        dict(task="lin", claim=1, level="headline", verdict="holds"), dict(task="lin", claim=2, level="headline", verdict="holds"),
        dict(task="mlp", claim=1, level="headline", verdict="holds"), dict(task="mlp", claim=2, level="headline", verdict="undecided"),
        dict(task="dig", claim=1, level="headline", verdict="holds"), dict(task="dig", claim=2, level="headline", verdict="fails"),
    ])
    groups = {"lin": dict(network="linear", target="regression", data="synthetic"),
              "mlp": dict(network="nonlinear", target="regression", data="synthetic"),
              "dig": dict(network="nonlinear", target="classification", data="real")}
    rows = claim3_rows(heads, groups).set_index("task")
    assert rows.loc["network = linear", "verdict"] == "holds"
    assert rows.loc["network = nonlinear", "verdict"] == "undecided"  # holds, undecided, holds, fails: fails once
    assert rows.loc["target = regression", "verdict"] == "holds"  # 3 of 3 decided cells hold
    assert rows.loc["target = classification", "verdict"] == "undecided"  # holds, fails: no majority
    assert "mlp claim 2" in rows.loc["data = synthetic", "detail"]
    assert rows.loc["all groups", "verdict"] == "holds" and rows.loc["all groups", "level"] == "headline"


def test_verdicts_and_figures_say_when_diverged_members_were_excluded():
    rng = np.random.default_rng(6)
    align = 0.5 + 0.01 * rng.normal(size=(3, 4, 15))
    ds = _table({"cka_linear": align}, np.ones((3, 4, 6)) + 0.01 * rng.normal(size=(3, 4, 6)))
    ds = ds.merge(threshold_with_interval(ds["noise_fit"], tol=0.01, n_boot=20))
    ds = ds.merge(xr.Dataset({"test_error_peak": ("snr", [np.nan] * 3)}, coords={"snr": ds["snr"].values}))
    ds.attrs["diverged_note"] = "2 of 72 members diverged during training and are excluded"
    verdicts, _ = all_verdicts({"toy": ds})
    mine = verdicts[verdicts.task == "toy"]
    assert mine["detail"].str.startswith("[2 of 72 members diverged").all()
    fig = alignment_vs_n(ds)
    assert "diverged" in fig._suptitle.get_text()


# ------------------------------------------------------------------ one verdict row


def _row(claim, cells, **kw):
    return verdict_row(task="t", claim=claim, metric="cka_linear", layer="hidden", verdict="undecided",
                       detail="d", estimate=0.5, cells=cells, crit=Criteria(), **kw)


def test_a_verdict_row_counts_its_cells_and_takes_the_largest_p_of_those_that_hold():
    cells = [dict(call="holds", p_holm=0.01), dict(call="fails", p_holm=0.2), dict(call="holds", p_holm=0.03)]
    row = _row(1, cells)
    assert (row["cells"], row["cells_holding"], row["cells_failing"]) == (3, 2, 1)
    assert row["p_value"] == 0.03 and row["estimate"] == 0.5 and row["claim_text"] == CLAIMS[1]
    assert row["level"] == "metric" and row["verdict"] == "undecided"
    assert np.isnan(_row(1, [dict(call="fails", p_holm=0.2)])["p_value"])  # nothing holds: no p-value
    step = dict(call="holds", statistic="s", estimate=0.7, ci_low=0.6, ci_high=0.8, p_value=0.001, steps=9,
                error_steps=4, decoupled_steps=2, coupled_steps=1)
    row = _row(4, [step])
    assert {k: row[k] for k in step if k != "call"} == {k: v for k, v in step.items() if k != "call"}


def test_a_verdict_row_takes_keywords_only():
    with pytest.raises(TypeError, match="positional"):
        verdict_row("t", 1, "cka_linear", "hidden", "holds", "", 1.0, [], Criteria())


def test_group_comparison_labels_differ_and_alike_by_hand():
    """Claim 3's group comparison: per task the mean r of its claim-2 cells (se from their 90 %
    intervals) and the mean rise of its claim-1 cells (se from their 95 % intervals); per group the
    mean over its tasks; a two-sided z test of the difference, Holm across the comparisons.
    A description labelled alike / differ, never a claim's verdict."""
    import pandas as pd

    from alignlib.claims.verdicts import group_comparison_rows

    z90, z95 = 1.6448536269514722, 1.959963984540054
    heads, cells = [], []
    for task, r, rise in (("lin", 0.0, 0.2), ("mlp", 0.5, 0.2)):
        heads += [dict(task=task, claim=c, level="headline", metric="m", layer="h") for c in (1, 2)]
        cells.append(dict(task=task, claim=2, level="cell", metric="m", layer="h", r=r, r_low=r - 0.1 * z90,
                          r_high=r + 0.1 * z90, location_level=0.9, estimate=np.nan, ci_low=np.nan, ci_high=np.nan))
        cells.append(dict(task=task, claim=1, level="cell", metric="m", layer="h", estimate=rise,
                          ci_low=rise - 0.05 * z95, ci_high=rise + 0.05 * z95, r=np.nan, r_low=np.nan, r_high=np.nan,
                          location_level=np.nan))
    groups = {"lin": {"network": "linear", "target": "regression", "data": "synthetic"},
              "mlp": {"network": "nonlinear", "target": "regression", "data": "synthetic"}}
    rows = group_comparison_rows(pd.DataFrame(heads), pd.DataFrame(cells), groups)
    net = rows[rows.task == "network: linear vs nonlinear"].set_index("statistic")
    location = net.filter(like="claim 2", axis=0).iloc[0]
    rise = net.filter(like="claim 1", axis=0).iloc[0]
    assert location.estimate == pytest.approx(-0.5) and location.verdict == "differ"  # z = 0.5 / (0.1 sqrt 2) = 3.5
    assert location.p_value == pytest.approx(2 * (1 - __import__("scipy").stats.norm.cdf(0.5 / (0.1 * np.sqrt(2)))))
    assert rise.estimate == pytest.approx(0.0) and rise.verdict == "alike"
    # a group without tasks cannot be compared
    assert set(rows[rows.task == "target: regression vs classification"].verdict) == {"undecided"}
