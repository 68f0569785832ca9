"""alignlib.stats.probes: probe and member bootstraps, permutation baselines; seeded and deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from alignlib.metrics import compare, pairwise
from alignlib.stats.probes import (
    bootstrap_members,
    bootstrap_probes,
    bootstrap_probes_pair,
    permutation_baseline,
    permutation_baseline_pair,
)


# tiny problems: one intra-op thread (see conftest.single_torch_thread)
pytestmark = pytest.mark.usefixtures("single_torch_thread")


def ensemble(seed=0, S=4, n=60, d=5, noise=1.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    return np.stack([z @ rng.normal(size=(3, d)) + noise * rng.normal(size=(n, d)) for _ in range(S)])


def test_pair_bootstrap_is_seeded_and_brackets_the_estimate():
    reps = ensemble()
    res = bootstrap_probes_pair(reps[0], reps[1], "cka_linear", n_boot=100, seed=3)
    again = bootstrap_probes_pair(reps[0], reps[1], "cka_linear", n_boot=100, seed=3)
    other = bootstrap_probes_pair(reps[0], reps[1], "cka_linear", n_boot=100, seed=4)
    np.testing.assert_array_equal(res.samples, again.samples)
    assert not np.array_equal(res.samples, other.samples)
    assert res.estimate == compare(reps[0], reps[1], "cka_linear")
    assert res.samples.shape == (100,) and res.level == 0.95
    assert res.low < res.estimate < res.high
    assert res.high - res.low < 0.5
    gen = bootstrap_probes_pair(reps[0], reps[1], "cka_linear", n_boot=100, seed=np.random.default_rng(3))
    np.testing.assert_array_equal(gen.samples, res.samples)


def test_matrix_bootstrap_uses_the_same_probes_for_every_pair():
    reps = ensemble(1, S=3)
    mat = bootstrap_probes(reps, "information_imbalance", n_boot=20, seed=5, direction="a_to_b")
    pair = bootstrap_probes_pair(reps[0], reps[2], "information_imbalance", n_boot=20, seed=5,
                                 direction="a_to_b")
    assert mat.samples.shape == (20, 3, 3) and mat.low.shape == (3, 3)
    np.testing.assert_allclose(mat.samples[:, 0, 2], pair.samples, atol=1e-12)
    np.testing.assert_allclose(mat.estimate, pairwise(reps, "information_imbalance", direction="a_to_b"))
    assert np.all(mat.low <= mat.high)


def test_subsampling_without_replacement():
    reps = ensemble(2, S=2, n=50)
    res = bootstrap_probes_pair(reps[0], reps[1], "neighborhood_overlap", n_boot=10, seed=0,
                                method="subsample", fraction=0.8, k=5)
    assert res.samples.shape == (10,) and np.isfinite(res.samples).all()
    assert res.method == "subsample: 40 of 50 probes without replacement, spread rescaled to n"
    with pytest.raises(ValueError, match="fraction < 1"):
        bootstrap_probes_pair(reps[0], reps[1], "cka_linear", n_boot=2, fraction=1.0)
    with pytest.raises(ValueError, match="method must be one of"):
        bootstrap_probes_pair(reps[0], reps[1], "cka_linear", n_boot=2, method="bca")
    with pytest.raises(ValueError, match="at least 3"):
        bootstrap_probes_pair(reps[0], reps[1], "cka_linear", n_boot=2, fraction=0.02)


def issue_members(seed=0, n=500, d=64):
    """Two members sharing a 64-dimensional latent, as in issue 19 (n = 500, d = 64)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, d))
    a = z + 1.2 * rng.normal(size=(n, d))
    b = z @ rng.normal(size=(d, d)) / np.sqrt(d) + rng.normal(size=(n, d))
    return a, b


@pytest.mark.parametrize("metric,n_boot", [("cka_linear", 100), ("cka_linear_debiased", 100),
                                           ("procrustes", 100), ("linear_predictivity", 20)])
def test_probe_interval_contains_the_estimate_that_the_percentile_bootstrap_excluded(metric, n_boot):
    """Resampling with replacement duplicates probes, which inflates these metrics: the classic
    bootstrap's 95 % interval lay wholly above the estimate. The default (subsampling without
    replacement) is centred on it."""
    a, b = issue_members()
    options = {"ridge": 0.0} if metric == "linear_predictivity" else {}
    res = bootstrap_probes_pair(a, b, metric, n_boot=n_boot, seed=1, **options)
    assert res.low < res.estimate < res.high
    assert res.estimate == compare(a, b, metric, **options)
    old = bootstrap_probes_pair(a, b, metric, n_boot=n_boot, seed=1, method="bootstrap", **options)
    assert not old.low <= old.estimate <= old.high
    # subsamples move the way the metric is biased in n (up for CKA and Procrustes, down for
    # predictivity): hence the interval takes their spread, not their location
    shift = {"cka_linear": 1, "procrustes": 1, "linear_predictivity": -1}.get(metric, 0)
    assert shift * (res.samples.mean() - res.estimate) > (res.high - res.low) / 2 or shift == 0


def test_subsample_interval_is_the_rescaled_spread_about_the_estimate():
    """low/high = percentiles of estimate + sqrt(m / (n - m)) (sample - mean): factor 1 for
    half-samples, 2 for m = 0.8 n (the default)."""
    reps = ensemble(8, S=2, n=60)
    for fraction, factor in ((0.5, 1.0), (0.8, 2.0)):
        res = bootstrap_probes_pair(reps[0], reps[1], "cka_linear", n_boot=50, seed=2, fraction=fraction)
        moved = res.estimate + factor * (res.samples - res.samples.mean())
        assert (res.low, res.high) == tuple(np.quantile(moved, [0.025, 0.975]))
        # each sample is the metric on a subset of distinct probes
        rng = np.random.default_rng(2)
        idx = rng.choice(60, size=round(fraction * 60), replace=False)
        assert len(set(idx)) == len(idx)
        assert res.samples[0] == compare(reps[0][idx], reps[1][idx], "cka_linear")
    mat = bootstrap_probes(reps, "cka_linear", n_boot=30, seed=3)
    assert mat.samples.shape == (30, 2, 2)
    moved = mat.estimate + 2.0 * (mat.samples - mat.samples.mean(0))
    np.testing.assert_array_equal(mat.low, np.quantile(moved, 0.025, axis=0))


def test_interval_repr_shows_estimate_bounds_method_and_count_not_the_samples():
    reps = ensemble(9, S=2)
    res = bootstrap_probes_pair(reps[0], reps[1], "cka_linear", n_boot=1000, seed=0)
    text = repr(res)
    assert text.startswith(f"Interval(estimate={res.estimate:.6g}, low={res.low:.6g}, high={res.high:.6g}, ")
    assert "method='subsample: 48 of 60 probes without replacement, spread rescaled to n'" in text
    assert text.endswith("n_resamples=1000)") and len(text) < 300
    assert res.n_resamples == 1000
    assert "percentile bootstrap over members" in repr(bootstrap_members(pairwise(ensemble(3), "cka_linear"),
                                                                          n_boot=10, seed=0))


def test_probe_intervals_warn_once_when_the_metric_is_uninformative():
    from alignlib.metrics import UninformativeWarning

    rng = np.random.default_rng(10)
    a, b = rng.normal(size=(20, 300)), rng.normal(size=(20, 300))
    with pytest.warns(UninformativeWarning) as record:
        bootstrap_probes_pair(a, b, "cka_linear", n_boot=20, seed=0)
    assert len(record) == 1 and record[0].filename == __file__


def test_member_bootstrap_of_a_square_matrix():
    m = pairwise(ensemble(3, S=6), "cka_linear")
    res = bootstrap_members(m, n_boot=300, seed=1)
    assert res.estimate == pytest.approx(m[~np.eye(6, dtype=bool)].mean())
    assert res.low <= res.estimate <= res.high
    np.testing.assert_array_equal(res.samples, bootstrap_members(m, n_boot=300, seed=1).samples)
    # never pairs a member with itself: a matrix with a huge diagonal leaves the CI unchanged
    big = m.copy()
    np.fill_diagonal(big, 1e6)
    np.testing.assert_array_equal(bootstrap_members(big, n_boot=300, seed=1).samples, res.samples)
    const = np.full((5, 5), 0.3)
    np.fill_diagonal(const, 1.0)
    flat = bootstrap_members(const, n_boot=50, seed=0)
    assert flat.low == pytest.approx(0.3) and flat.high == pytest.approx(0.3)


def test_member_bootstrap_of_a_cross_block():
    rng = np.random.default_rng(4)
    block = rng.uniform(size=(4, 7))
    res = bootstrap_members(block, n_boot=200, seed=2)
    assert res.estimate == pytest.approx(block.mean())
    assert block.min() <= res.low <= res.high <= block.max()


def test_pair_permutation_baseline_gives_the_chance_level():
    reps = ensemble(5, n=80, noise=0.5)
    res = permutation_baseline_pair(reps[0], reps[1], "cka_linear_debiased", n_perm=60, seed=0)
    assert res.null.shape == (60,)
    assert abs(res.mean) < 0.05 < res.observed
    assert res.p_value == pytest.approx(1 / 61)
    again = permutation_baseline_pair(reps[0], reps[1], "cka_linear_debiased", n_perm=60, seed=0)
    np.testing.assert_array_equal(again.null, res.null)
    ii = permutation_baseline_pair(reps[0], reps[1], "information_imbalance", n_perm=30, seed=0)
    assert abs(ii.mean) < 0.1 and ii.low <= ii.mean <= ii.high


def test_matrix_permutation_baseline_covers_every_entry():
    reps = ensemble(6, S=3, n=50, noise=0.5)
    res = permutation_baseline(reps, "pwcca", n_perm=5, seed=1)
    assert res.null.shape == (5, 3, 3) and res.p_value.shape == (3, 3)
    assert np.all(res.null < res.observed)           # the diagonal too (a member vs its shuffle)
    np.testing.assert_array_equal(res.null, permutation_baseline(reps, "pwcca", n_perm=5, seed=1).null)
    # entry (i, j) is metric(reps[i], shuffled reps[j]): reproduce one with the same permutation
    rng = np.random.default_rng(1)
    perms = [rng.permutation(50) for _ in range(3)]
    assert res.null[0, 0, 2] == pytest.approx(compare(reps[0], reps[2][perms[2]], "pwcca"), abs=1e-12)
    assert res.null[0, 2, 0] == pytest.approx(compare(reps[2], reps[0][perms[0]], "pwcca"), abs=1e-12)


def test_stats_errors():
    reps = ensemble(7, S=2)
    with pytest.raises(ValueError, match="whole maps"):
        bootstrap_probes(reps, "cosine_end_to_end", n_boot=2)
    with pytest.raises(ValueError, match="level"):
        bootstrap_probes_pair(reps[0], reps[1], "cka_linear", level=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_probes_pair(reps[0], reps[1], "cka_linear", n_boot=0)
    with pytest.raises(ValueError, match="n_perm"):
        permutation_baseline(reps, "cka_linear", n_perm=-1)
    with pytest.raises(ValueError, match="unknown metric"):
        permutation_baseline(reps, "nope")
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_members(np.array([[1.0, np.nan], [0.5, 1.0]]))
    with pytest.raises(ValueError, match="at least 2 members"):
        bootstrap_members(np.ones((1, 1)))
