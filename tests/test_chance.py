"""alignlib.stats.chance: the permutation baseline, its rounds and seeds, and its place in alignment.nc."""

import io

import numpy as np
import pytest
import xarray as xr
from scipy import stats
from tiny_linear import tiny_linear_cube

from alignlib.ensembles.alignment import compute_alignment
from alignlib.stats.chance import (
    CHANCE_QUANTILE,
    END_TO_END_REASON,
    ChanceKey,
    chance_draws,
    chance_reason,
    chance_rounds,
    round_size,
    shuffled_pairwise,
    summarise,
)
from alignlib.metrics import compare, pairwise


def structured_cube(snrs=(1.0, 10.0), ns=(8, 20), seeds=4, probes=40, width=5, shared=1.0, seed=0):
    """Members = shared * (a common probe signal mixed by a member's own map) + independent noise.

    ``shared`` = 0 gives independent members (alignment at chance); large ``shared``, strongly
    aligned ones. One hidden layer and a 2-unit output layer.
    """
    rng = np.random.default_rng(seed)
    acts = np.full((len(snrs), len(ns), seeds, 2, probes, width), np.nan, np.float32)
    for i in range(len(snrs)):
        for j in range(len(ns)):
            z = rng.standard_normal((probes, 3))
            for s in range(seeds):
                x = shared * z @ rng.standard_normal((3, width)) + rng.standard_normal((probes, width))
                acts[i, j, s, 0] = x
                acts[i, j, s, 1, :, :2] = x[:, :2]
    ds = xr.Dataset({"activation": (("snr", "n", "seed", "layer", "probe", "unit"), acts),
                     "layer_width": (("layer",), np.array([width, 2]))},
                    coords={"snr": list(snrs), "n": list(ns), "seed": np.arange(seeds), "layer": ["hidden", "output"]},
                    attrs={"task": "fake"})
    grid = (len(snrs), len(ns), seeds)
    ds["test_error"] = (("snr", "n", "seed"), rng.random(grid))
    ds["diverged"] = (("snr", "n", "seed"), np.zeros(grid, np.int8))
    return ds


def test_rounds_give_the_draws_from_the_fewest_members():
    assert [round_size(k, 6) for k in (1, 2, 3, 4, 6, 7, 10, 15, 16)] == [2, 3, 3, 4, 4, 5, 5, 6, 6]
    rounds = chance_rounds(4, 9)  # 6 pairs of all 4 members, then 3 more from 3 members
    assert [take for _, take in rounds] == [6, 3]
    assert rounds[0][0].tolist() == [0, 1, 2, 3] and rounds[1][0].tolist() == [3, 0, 1]
    assert chance_rounds(5, 0) == []
    with pytest.raises(ValueError, match="at least 2 members"):
        chance_rounds(1, 3)


def test_a_pair_of_shuffled_members_is_a_pair_with_one_member_shuffled():
    """metric(x P, y Q) = metric(x, y Q P^-1): the draws are one-member shuffles, exactly."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((30, 4)), rng.standard_normal((30, 6))
    p, q = rng.permutation(30), rng.permutation(30)
    for metric in ("cka_linear", "procrustes", "mutual_knn", "rsa", "cca"):
        both = shuffled_pairwise([x, y], [p, q], metric)[0, 1]
        one = compare(x, y[q][np.argsort(p)], metric)
        assert both == pytest.approx(one, abs=1e-10), metric


def test_unshuffled_pairs_are_the_alignment():
    rng = np.random.default_rng(2)
    reps = rng.standard_normal((3, 25, 4))
    identity = [np.arange(25)] * 3
    np.testing.assert_allclose(shuffled_pairwise(reps, identity, "cka_linear"), pairwise(reps, "cka_linear"))


def test_independent_members_lie_inside_the_chance_band_about_95_percent_of_the_time():
    """On independent representations the alignment of a pair and the shuffled draws are exchangeable,
    so the alignment exceeds the draws' 95th percentile with probability about 5 %.

    With K draws and numpy's interpolated quantile, P(alignment <= quantile) = (h + 1)/(K + 1) for the
    position h = 0.95 (K - 1) of the order statistic (interpolation between two ranks: between their
    probabilities). We measure the fraction over T independent trials and ask that it lies within a
    99.9 % binomial interval around that probability (loose: the pair shares members with the draws).
    """
    for K, metric in ((19, "cka_linear"), (19, "procrustes"), (3, "cka_linear")):  # K = 3: the default
        T = 150
        h = CHANCE_QUANTILE * (K - 1)
        expected = (h + 1) / (K + 1)  # 0.905 for K = 19, 0.725 for K = 3
        inside = 0
        for t in range(T):
            rng = np.random.default_rng(1000 + t)
            block = rng.standard_normal((7, 30, 4))
            draws = chance_draws(block, ChanceKey(base_seed=t, task="null", metric=metric, layer="h", snr=1.0, n=10),
                                 K)
            _, hi = summarise(draws)
            inside += compare(block[5], block[6], metric) <= hi  # a pair outside the draws' members
        lo_ok, hi_ok = stats.binom.interval(0.999, T, expected)
        assert lo_ok <= inside <= hi_ok, (K, metric, inside / T, expected)


def test_identical_members_are_far_above_chance():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((60, 8))
    block = np.stack([x] * 5)
    for metric in ("cka_linear", "procrustes", "neighborhood_overlap", "rsa"):
        draws = chance_draws(block, ChanceKey(base_seed=0, task="t", metric=metric, layer="h", snr=1.0, n=5), 10)
        mean, hi = summarise(draws)
        assert pairwise(block, metric)[0, 1] == pytest.approx(1.0)
        assert hi < 0.5 and mean < 0.35, (metric, mean, hi)


def test_chance_is_stored_with_the_alignment_and_excluded_where_it_is():
    cube = structured_cube(shared=2.0)
    cube["activation"][{"snr": 1, "n": 0, "layer": 0}] = 1.0  # a dead hidden layer at one grid point
    table = compute_alignment(cube, ["cka_linear", "procrustes"], log=io.StringIO(), chance_draws=6, task="fake")
    assert table["chance"].dims == table["chance_hi"].dims == ("metric", "layer", "snr", "n")
    cell_nan = table["alignment"].isnull().all("pair")
    xr.testing.assert_equal(table["chance"].isnull(), cell_nan)
    xr.testing.assert_equal(table["chance_hi"].isnull(), cell_nan)
    assert bool(cell_nan.sel(layer="hidden", snr=10.0, n=8).all())
    assert bool(((table["chance_hi"] >= table["chance"] - 1e-12) | cell_nan).all())
    mean = table["alignment"].mean("pair")
    assert bool((mean > table["chance_hi"]).where(~cell_nan, True).all())  # shared signal: above chance
    assert table["chance"].attrs["draws"] == 6 and "95th percentile" in table["chance_hi"].attrs["description"]
    # the values are the draws of alignlib.stats.chance at that cell, keyed by (seed, task, metric, layer, snr, n)
    block = cube["activation"].sel(snr=1.0, n=20, layer="hidden").values.astype(np.float64)
    key = ChanceKey(base_seed=0, task="fake", metric="procrustes", layer="hidden", snr=1.0, n=20)
    draws = chance_draws(block, key, 6)
    assert float(table["chance"].sel(metric="procrustes", layer="hidden", snr=1.0, n=20)) == pytest.approx(draws.mean())
    # no draws: no chance variables
    plain = compute_alignment(cube, ["cka_linear"], log=io.StringIO())
    assert "chance" not in plain and "chance_hi" not in plain


def test_chance_is_deterministic_from_its_seeds():
    cube = structured_cube(shared=0.5)
    run = lambda **kw: compute_alignment(cube, ["cka_linear", "rsa"], log=io.StringIO(), chance_draws=5, **kw)
    a, b = run(task="fake", base_seed=3), run(task="fake", base_seed=3)
    xr.testing.assert_identical(a[["chance", "chance_hi"]], b[["chance", "chance_hi"]])
    other_seed, other_task = run(task="fake", base_seed=4), run(task="other", base_seed=3)
    assert not np.allclose(a["chance"], other_seed["chance"])
    assert not np.allclose(a["chance"], other_task["chance"])
    alone = compute_alignment(cube, ["rsa"], log=io.StringIO(), chance_draws=5, task="fake", base_seed=3)
    xr.testing.assert_identical(alone["chance"].sel(metric="rsa"), a["chance"].sel(metric="rsa"))


def test_diverged_members_are_left_out_of_the_chance():
    cube = structured_cube(seeds=4)
    cube["diverged"][{"snr": 0, "n": 0, "seed": 3}] = 1
    cube["diverged"][{"snr": 1, "n": 1, "seed": slice(1, 4)}] = 1  # one member left: no pair, no chance
    block = cube["activation"].sel(snr=1.0, n=8, layer="hidden").values.astype(np.float64)
    table = compute_alignment(cube, ["cka_linear"], log=io.StringIO(), chance_draws=3, task="fake")
    key = ChanceKey(base_seed=0, task="fake", metric="cka_linear", layer="hidden", snr=1.0, n=8)
    kept = chance_draws(block[:3], key, 3)
    assert float(table["chance"].sel(metric="cka_linear", layer="hidden", snr=1.0, n=8)) == pytest.approx(kept.mean())
    assert np.isnan(table["chance"].sel(snr=10.0, n=20)).all()


def test_end_to_end_metrics_have_no_chance_and_say_why():
    assert chance_reason("cosine_end_to_end") == END_TO_END_REASON and chance_reason("cka_linear") == ""
    key = ChanceKey(base_seed=0, task="t", metric="cosine_end_to_end", layer="output", snr=1.0, n=4)
    assert np.isnan(chance_draws(np.zeros((3, 4, 4)), key, 4)).all()
    with pytest.raises(ValueError, match="no probe order to shuffle"):
        shuffled_pairwise(np.ones((2, 3, 3)), [np.arange(3)] * 2, "cosine_end_to_end")
    table = compute_alignment(tiny_linear_cube(), ["cka_linear", "cosine_end_to_end"], log=io.StringIO(),
                              chance_draws=3, task="linear_regression")
    assert bool(np.isfinite(table["alignment"].sel(metric="cosine_end_to_end", layer="output")).all())
    assert bool(table["chance"].sel(metric="cosine_end_to_end").isnull().all())
    assert str(table["chance_note"].sel(metric="cosine_end_to_end").values) == END_TO_END_REASON
    assert str(table["chance_note"].sel(metric="cka_linear").values) == ""


def test_the_tiny_run_stores_the_chance_and_the_verdicts_compare_with_it(tiny_run, tiny_config):
    import pandas as pd

    from alignpipe.cubes import read_netcdf

    for task in tiny_config["tasks"]:
        table = read_netcdf(tiny_run / task / "alignment.nc")
        assert table["chance"].attrs["draws"] == tiny_config["chance"]["draws"]
        finite = table["alignment"].notnull().any("pair")
        finite = finite.sel(metric=[m for m in table["metric"].values if m != "cosine_end_to_end"])
        xr.testing.assert_equal(table["chance"].sel(metric=finite["metric"]).notnull(), finite)
    verdicts = pd.read_csv(tiny_run / "verdicts.csv")
    rows = verdicts[(verdicts.level == "metric") & (verdicts.metric == "cka_linear")]
    assert rows["below_chance"].notnull().all() and (rows["below_chance"] >= 0).all()
    assert verdicts[verdicts.metric == "cosine_end_to_end"]["below_chance"].isnull().all()


def test_chance_config_key_defaults_and_errors(tiny_config):
    import copy

    import jsonschema
    import yaml

    from alignpipe.config import describe_validation_error
    from conftest import REPO, validated

    plain = {k: v for k, v in copy.deepcopy(tiny_config).items() if k != "chance"}
    assert validated(plain)["chance"] == {"draws": 3}
    assert validated(dict(plain, chance={}))["chance"] == {"draws": 3}
    assert validated(dict(plain, chance={"draws": 0}))["chance"] == {"draws": 0}
    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    for value, fragment in ((-1, "-1 is less than the minimum of 0"), (2.5, "2.5 is not of type 'integer'")):
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(dict(plain, chance={"draws": value})))
        assert len(errors) == 1
        message = describe_validation_error(errors[0])
        assert "invalid config key 'chance.draws'" in message and fragment in message, message
