"""alignlib.claims and alignlib.verdicts on synthetic tables with a known truth.

Every claim test is checked both ways: it calls the effect where there is one and does not
where there is none; the error rates on null tables and the power on known effects are
measured with enough seeded repetitions to be stable (see also benchmarks/bench_calibration.py).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from alignlib.calibration import (
    claim1_positive,
    claim1_rises,
    claim2_holds,
    null_panel_from,
    rejection_rates,
    synthetic_panel,
    thresholds_at,
)
from alignlib.claims import (
    decoupling,
    dip_test,
    equal_error_different_alignment,
    increases_with_snr,
    minimum_location,
    minimum_near_threshold,
    panel,
    snr_trend,
)
from alignlib.members import bootstrap_pair_means, holm, jackknife_pair_mean, resample_members
from alignlib.verdicts import all_verdicts, claim1_verdict, claim2_verdict

NS = np.array([10, 20, 30, 40, 45, 50, 55, 60, 75, 100, 200, 500, 1000])
SNRS = np.array([0.1, 0.3, 1, 3, 10, 30, 100])


def _pairs(S):
    p = list(combinations(range(S), 2))
    return np.array([a for a, _ in p]), np.array([b for _, b in p])


# ------------------------------------------------------------------ member resampling


def test_jackknife_matches_the_definition_and_is_not_the_pair_standard_error():
    rng = np.random.default_rng(0)
    S = 8
    ia, ib = _pairs(S)
    u = rng.normal(size=S)
    values = u[ia] + u[ib] + 0.1 * rng.normal(size=len(ia))
    mean, se = jackknife_pair_mean(values, ia, ib, S)
    loo = [values[(ia != i) & (ib != i)].mean() for i in range(S)]
    assert mean == pytest.approx(values.mean(), abs=1e-14)
    assert se == pytest.approx(np.sqrt((S - 1) / S * np.sum((np.array(loo) - np.mean(loo)) ** 2)), rel=1e-12)
    naive = values.std(ddof=1) / np.sqrt(len(values))
    assert se > 2 * naive  # shared members: the pair s.e. is far too small


def test_jackknife_error_matches_the_spread_over_repeated_ensembles():
    """The member-jackknife s.e. is close to (and not below) the true sd of the pair mean; the pair s.e. is ~2x too small."""
    rng = np.random.default_rng(1)
    S, reps = 8, 4000
    ia, ib = _pairs(S)
    u = rng.normal(size=(reps, S)) * 0.05
    values = 0.5 + u[:, ia] + u[:, ib] + 0.05 * rng.normal(size=(reps, len(ia)))
    mean, se = jackknife_pair_mean(values, ia, ib, S)
    true_sd = mean.std()
    assert 0.95 * true_sd < np.sqrt(np.mean(se ** 2)) < 1.3 * true_sd
    naive = values.std(-1, ddof=1) / np.sqrt(len(ia))
    assert np.sqrt(np.mean(naive ** 2)) < 0.6 * true_sd


def test_bootstrap_never_pairs_a_member_with_itself():
    S = 4
    ia, ib = _pairs(S)
    values = np.arange(len(ia), dtype=float)  # pair k has value k
    idx = np.array([[[0, 0, 1, 1]]])  # members 0 and 1 twice: only pairs (0, 1) count
    assert bootstrap_pair_means(values[None], ia, ib, S, idx)[0, 0] == pytest.approx(values[0])
    drawn = resample_members(np.random.default_rng(0), (5000,), 3)
    assert not (drawn == drawn[:, :1]).all(-1).any()


def test_holm_by_hand():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, np.nan, 0.2]), [0.04, 0.09, 0.09, np.nan, 0.2])


# ------------------------------------------------------------------ claim 1


def test_trend_statistic_by_hand():
    res = snr_trend(np.array([0.1, 0.2, 0.3]), np.array([0.01, 0.01, 0.01]), np.array([1, 10, 100]), members=6)
    assert res["slope"] == pytest.approx(0.1)  # rise per SNR step
    assert res["se"] == pytest.approx(np.sqrt(2) * 0.01 / 2)
    # Welch-Satterthwaite: the middle SNR has weight 0, the two others 5 df each
    assert res["df"] == pytest.approx(10) and res["p_up"] < 1e-4 and res["p_down"] > 0.9999
    assert np.isnan(snr_trend(np.array([0.1, np.nan, 0.3]), np.ones(3), np.arange(3), 6)["p_up"])
    # no sampling error at all: no test (not an infinitely significant one)
    flat_se = snr_trend(np.array([0.1, 0.1 + 1e-12, 0.1 + 2e-12]), np.zeros(3), np.arange(3), 6)
    assert np.isnan(flat_se["p_up"]) and np.isnan(flat_se["p_down"])


@pytest.mark.parametrize("shape, expected", [("flat", "undecided"), ("falling", "fails"), ("rising", "holds")])
def test_claim1_calls_flat_falling_rising(shape, expected):
    step = {"flat": 0.0, "falling": -0.05, "rising": 0.05}[shape]
    means = 0.5 + step * np.arange(7)[:, None] + np.zeros((7, 13))
    p = synthetic_panel(means, 8, np.random.default_rng(3), snrs=SNRS, ns=NS)
    verdict, detail, _ = claim1_verdict(increases_with_snr(p))
    assert verdict == expected, detail


def test_claim1_false_positive_rate_on_flat_tables():
    """Familywise rate of calling any n 'increases' on flat curves (8 members, sd 0.05): at most 5 %."""
    rate = rejection_rates(lambda r: synthetic_panel(np.full((7, 13), 0.5), 8, r), claim1_positive, 300, seed=11)
    assert rate <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 300)
    # a single n without the Holm correction: nominal level, not far below it (the test can fire)
    raw = rejection_rates(lambda r: synthetic_panel(np.full((7, 1), 0.5), 8, r), claim1_positive, 600, seed=12)
    assert 0.01 < raw <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 600)


def test_claim1_power_on_a_realistic_trend():
    """A rise of 0.05 per SNR step, 8 members, member sd 0.05: called at >= 80 % of n (Holm over 13 n)."""
    means = 0.5 + 0.05 * np.arange(7)[:, None] + np.zeros((7, 13))
    power = rejection_rates(lambda r: synthetic_panel(means, 8, r), claim1_rises, 100, seed=13)
    assert power.mean() >= 0.8


def test_claim1_null_from_a_task_table_keeps_its_noise_and_is_calibrated():
    rng = np.random.default_rng(14)
    means = 0.3 + 0.1 * np.arange(7)[:, None] + np.zeros((7, 13))
    real = synthetic_panel(means, 8, rng)
    assert claim1_positive(real)
    rate = rejection_rates(lambda r: null_panel_from(real, r), claim1_positive, 300, seed=15)
    assert rate <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 300)


# ------------------------------------------------------------------ claim 2


def _dip(depth, at=5, width=1.5, k=13):
    return 0.5 - depth * np.exp(-0.5 * ((np.arange(k) - at) / width) ** 2)


def test_dip_test_finds_a_deep_dip_and_not_a_flat_curve():
    rng = np.random.default_rng(0)
    se = np.full(13, 0.03)
    d, p = dip_test(_dip(0.3), se, rng)
    assert d == pytest.approx(0.3, abs=0.01) and p < 0.001
    d, p = dip_test(np.full(13, 0.5), se, rng)
    assert p > 0.5
    assert np.isnan(dip_test(np.r_[np.nan, np.full(12, 0.5)], se, rng)[1])  # an end without a value


def test_minimum_location_interval_covers_the_true_dip():
    S = 8
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(40):
        p = synthetic_panel(_dip(0.2)[None], S, rng, ns=NS)
        k, lo, hi = minimum_location(p.values[0], p.ia, p.ib, S, rng, n_boot=300)
        hits += lo <= 5 <= hi
    assert hits >= 36  # >= 90 % coverage of a 95 % interval (40 repetitions)


def test_ties_do_not_go_to_a_grid_edge():
    S = 4
    ia, ib = _pairs(S)
    flat = np.ones((5, len(ia)))
    ks = [minimum_location(flat, ia, ib, S, np.random.default_rng(s), n_boot=20)[0] for s in range(200)]
    counts = np.bincount(ks, minlength=5)
    assert counts.min() > 15  # every position, edges included, about equally often


def test_claim2_on_a_dip_at_the_threshold_holds_and_away_from_it_fails():
    th = thresholds_at(SNRS, NS, 5)  # threshold between n = 50 and 55
    rng = np.random.default_rng(2)
    at = synthetic_panel(np.tile(_dip(0.3, at=5), (7, 1)), 8, rng, snrs=SNRS, ns=NS)
    verdict, detail, _ = claim2_verdict(minimum_near_threshold(at, th, n_boot=300))
    assert verdict == "holds", detail
    away = synthetic_panel(np.tile(_dip(0.3, at=10, width=0.7), (7, 1)), 8, rng, snrs=SNRS, ns=NS)
    verdict, detail, _ = claim2_verdict(minimum_near_threshold(away, th, n_boot=300))
    assert verdict == "fails", detail
    flat = synthetic_panel(np.full((7, 13), 0.5), 8, rng, snrs=SNRS, ns=NS)
    assert claim2_verdict(minimum_near_threshold(flat, th, n_boot=300))[0] == "undecided"


def test_claim2_false_positive_rate_and_power():
    th = thresholds_at(SNRS, NS, 5)
    null = rejection_rates(lambda r: synthetic_panel(np.full((7, 13), 0.5), 8, r, snrs=SNRS, ns=NS),
                           lambda p: claim2_holds(p, th, n_boot=100), 60, seed=21)
    assert null.mean() <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / (60 * 7))
    # power on a dip of 0.3 (8 standard errors of a grid point's mean; benchmarks/bench_calibration.py
    # measures 0.995 for it and 0.64 for a dip of 0.2 with the least-favourable monotone null)
    deep = rejection_rates(lambda r: synthetic_panel(np.tile(_dip(0.3), (7, 1)), 8, r, snrs=SNRS, ns=NS),
                           lambda p: claim2_holds(p, th, n_boot=100), 30, seed=22)
    assert deep.mean() >= 0.8


def test_claim2_without_threshold_or_values_is_undecided_not_a_crash():
    rng = np.random.default_rng(3)
    p = synthetic_panel(np.tile(_dip(0.3), (7, 1)), 8, rng, snrs=SNRS, ns=NS)
    th = thresholds_at(SNRS, NS, 5)
    th["interpolation_threshold"][:] = np.nan
    assert {r["call"] for r in minimum_near_threshold(p, th, n_boot=50)} == {"undecided"}
    empty = p.__class__(p.metric, p.layer, np.full_like(p.values, np.nan), p.snrs, p.ns, p.ia, p.ib, p.S)
    rows = minimum_near_threshold(empty, thresholds_at(SNRS, NS, 5), n_boot=50)
    assert {r["call"] for r in rows} == {"undecided"} and "no finite" in rows[0]["detail"]


# ------------------------------------------------------------------ claim 4 and whole tables


def _table(values_by_metric, test_error, snrs=SNRS[:3], ns=NS[:4], S=6):
    ia, ib = _pairs(S)
    metrics = list(values_by_metric)
    arr = np.stack([values_by_metric[m] for m in metrics])[:, None]  # metric, layer, snr, n, pair
    arr = np.concatenate([arr, arr], axis=1)
    ds = xr.Dataset({"alignment": (("metric", "layer", "snr", "n", "pair"), arr),
                     "test_error": (("snr", "n", "seed"), test_error)},
                    coords={"metric": metrics, "layer": ["hidden", "output"], "snr": snrs, "n": ns,
                            "seed": np.arange(S), "pair": np.arange(len(ia)), "seed_a": ("pair", ia),
                            "seed_b": ("pair", ib)}, attrs={"task": "toy"})
    return ds


def test_equal_error_different_alignment_needs_both_tests():
    rng = np.random.default_rng(4)
    S, ia = 6, _pairs(6)[0]
    err = np.ones((3, 4, S)) + 0.001 * rng.normal(size=(3, 4, S))  # all errors equivalent
    align = np.zeros((3, 4, len(ia))) + 0.01 * rng.normal(size=(3, 4, len(ia)))
    align[0, 0] += 0.5  # one grid point much more aligned
    p = panel(_table({"cka_linear": align}, err), "cka_linear", "hidden")
    pairs = equal_error_different_alignment(p, xr.DataArray(err, dims=("snr", "n", "seed"),
                                                             coords={"snr": SNRS[:3], "n": NS[:4]}))
    assert pairs and pairs[0]["high"] == (SNRS[0], NS[0])
    # errors that differ by 50 % are not equivalent: no pair
    err2 = err * (1 + 0.5 * np.arange(12).reshape(3, 4, 1))
    ds = _table({"cka_linear": align}, err2)
    assert equal_error_different_alignment(panel(ds, "cka_linear", "hidden"), ds["test_error"]) == []


def test_coupling_is_reported_with_an_interval():
    rng = np.random.default_rng(5)
    S, ia = 6, _pairs(6)[0]
    err = np.linspace(0.1, 1.0, 12).reshape(3, 4, 1) + 0.01 * rng.normal(size=(3, 4, S))
    align = (1 - np.linspace(0.1, 1.0, 12).reshape(3, 4, 1)) + 0.01 * rng.normal(size=(3, 4, len(ia)))
    ds = _table({"cka_linear": align}, err)
    row = decoupling(panel(ds, "cka_linear", "hidden"), ds["test_error"])
    assert row["estimate"] < -0.9 and row["ci_low"] <= row["estimate"] <= row["ci_high"] < -0.5


def test_verdicts_for_a_task_without_values_are_explicit():
    ds = _table({"cka_linear": np.full((3, 4, 15), np.nan)}, np.ones((3, 4, 6)))
    verdicts, _ = all_verdicts({"toy": ds})
    mine = verdicts[verdicts.task == "toy"]
    assert set(mine["verdict"]) == {"undecided"} and sorted(mine.claim) == [1, 2, 4]
    assert mine["detail"].str.contains("no finite alignment").all()
    assert set(verdicts[verdicts.claim == 3]["verdict"]) == {"undecided"}


def test_claim3_groups_tasks_and_combines_their_verdicts():
    from alignlib.verdicts import claim3_rows

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
    assert rows.loc["network = nonlinear", "verdict"] == "fails"  # digits fails claim 2
    assert rows.loc["target = regression", "verdict"] == "undecided"  # mlp undecided on claim 2
    assert "lin: claim 1 holds, claim 2 holds" in rows.loc["data = synthetic", "detail"]
    assert rows.loc["all groups", "verdict"] == "fails" and rows.loc["all groups", "level"] == "headline"


def test_verdicts_and_figures_say_when_diverged_members_were_excluded():
    from alignlib.figures import alignment_vs_n
    from alignlib.threshold import threshold_with_interval

    rng = np.random.default_rng(6)
    align = 0.5 + 0.01 * rng.normal(size=(3, 4, 15))
    ds = _table({"cka_linear": align}, np.ones((3, 4, 6)) + 0.01 * rng.normal(size=(3, 4, 6)))
    ds = ds.merge(threshold_with_interval(xr.zeros_like(ds["test_error"]), tol=0.01, n_boot=20))
    ds = ds.merge(xr.Dataset({"test_error_peak": ("snr", [np.nan] * 3)}, coords={"snr": ds["snr"].values}))
    ds.attrs["diverged_note"] = "2 of 72 members diverged during training and are excluded"
    verdicts, _ = all_verdicts({"toy": ds})
    mine = verdicts[verdicts.task == "toy"]
    assert mine["detail"].str.startswith("[2 of 72 members diverged").all()
    fig = alignment_vs_n(ds)
    assert "diverged" in fig._suptitle.get_text()


def _hetero_panel(rng, S=8, K=7, N=13, big=8.0):
    """Flat curves whose last SNR's members are ``big`` times noisier (as on the linear task)."""
    p = synthetic_panel(np.full((K, N), 0.5), S, rng)
    noisy = synthetic_panel(np.full((1, N), 0.5), S, rng, member_sd=0.05 * big)
    values = p.values.copy()
    values[-1] = noisy.values[0]
    return p.__class__(p.metric, p.layer, values, p.snrs, p.ns, p.ia, p.ib, p.S)


def test_claim1_level_holds_when_grid_points_differ_in_noise():
    """With one SNR's members 8x noisier, a t test on sum (S - 1) df fires at ~8.5 % at one n; Welch-
    Satterthwaite degrees of freedom keep the one-sided rise test at its 5 % level."""
    def one_n(r):
        p = _hetero_panel(r, N=1)
        return increases_with_snr(p)[0]["p_value"] < 0.05
    rate = rejection_rates(lambda r: r, one_n, 800, seed=31)
    assert rate <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 800)


def test_dip_test_keeps_its_level_on_monotone_curves_that_level_off():
    """Falling then flat (and flat then rising) curves have no dip; their noise alone puts interior
    minima below an end, which a flat null ignores (10 % false dips); the monotone null does not."""
    se = np.full(13, 0.03)
    falling_then_flat = np.r_[0.8, 0.65, np.full(11, 0.5)]
    rising = falling_then_flat[::-1]
    rng = np.random.default_rng(32)
    for curve in (falling_then_flat, rising):
        ps = [dip_test(curve + rng.standard_normal(13) * se, se, rng, n_null=1000)[1] for _ in range(400)]
        assert np.mean(np.array(ps) < 0.05) <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 400)


def test_claim4_does_not_count_pairs_that_only_follow_the_coupling():
    """Alignment a function of test error (2 - error), errors 4 % apart: the old rule called such pairs
    decoupled every time; after removing the monotone relation none survive."""
    rng = np.random.default_rng(33)
    S = 6
    ia = _pairs(S)[0]
    base = np.linspace(1.0, 1.6, 12).reshape(3, 4)  # neighbouring errors about 4 % apart
    err = base[..., None] + 0.005 * rng.normal(size=(3, 4, S))
    align = (2 - base)[..., None] + 0.005 * rng.normal(size=(3, 4, len(ia)))
    ds = _table({"cka_linear": align}, err)
    assert equal_error_different_alignment(panel(ds, "cka_linear", "hidden"), ds["test_error"]) == []


def test_claim4_needs_a_sampling_error():
    """Two members (no jackknife) or identical pair values: nothing is called decoupled."""
    err = np.ones((3, 4, 2))
    align = np.linspace(0, 1, 12).reshape(3, 4, 1)
    ds = _table({"cka_linear": align}, err, S=2)
    assert equal_error_different_alignment(panel(ds, "cka_linear", "hidden"), ds["test_error"]) == []
    assert decoupling(panel(ds, "cka_linear", "hidden"), ds["test_error"])["call"] == "undecided"
