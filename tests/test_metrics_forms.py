"""alignlib.metrics' other forms: angular distances (a metric: symmetric, zero on identical
members, triangle inequality) and cross-validated held-out scores of the fitted metrics
(identical members 1, independent ones near chance and below their in-sample value; one fold
against a reference fit)."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ortho_group
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score

from alignlib.metrics import (
    METRICS,
    HeldOutScore,
    UninformativeWarning,
    compare,
    cross_validated,
    distance,
    pairwise,
    pairwise_distance,
)
from alignlib.metrics._forms import distance_metrics, fold_indices, heldout_metrics

pytestmark = pytest.mark.usefixtures("single_torch_thread")

FEW = settings(max_examples=int(os.environ.get("ALIGNLIB_PROPERTY_EXAMPLES", "20")), deadline=None)
#: sqrt(2 eps): arccos of a value within rounding of 1.
ANGLE_ROUNDING = 3e-8


def ensemble(seed: int, widths=(4, 6, 5, 8, 3), n: int = 40, shared: float = 1.0):
    """Members sharing a latent, of different widths (end-to-end: equal shapes)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    return [shared * z @ rng.normal(size=(3, w)) + rng.normal(size=(n, w)) for w in widths]


# --------------------------------------------------------------------------- distance


def test_distance_metrics_are_those_whose_value_is_a_cosine():
    assert distance_metrics() == ("cka_linear", "cka_linear_debiased", "cka_rbf", "procrustes", "rsa",
                                  "cosine_end_to_end")
    for metric in distance_metrics():
        assert "arccos" in METRICS[metric].distance


def test_distance_hand_cases():
    """One unit each, correlation rho: Procrustes' nuclear norm is |rho|, linear CKA rho^2."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    y = 0.6 * x + rng.normal(size=50)
    rho = np.corrcoef(x, y)[0, 1]
    assert distance(x, y, "procrustes") == pytest.approx(np.arccos(abs(rho)), abs=1e-12)
    assert distance(x, -y, "procrustes") == pytest.approx(np.arccos(abs(rho)), abs=1e-12)
    assert distance(x, y, "cka_linear") == pytest.approx(np.arccos(rho ** 2), abs=1e-12)
    u, v = np.array([1.0, 0.0, 0.0]), np.array([1.0, 1.0, 0.0])
    assert distance(u, v, "cosine_end_to_end") == pytest.approx(np.pi / 4, abs=1e-12)
    assert distance(u, -u, "cosine_end_to_end") == pytest.approx(np.pi, abs=1e-12)


def test_distance_is_zero_up_to_the_invariances():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(30, 6))
    moved = 3.0 * a @ ortho_group.rvs(6, random_state=rng) + rng.normal(size=6)
    for metric in ("procrustes", "cka_linear", "cka_rbf", "cka_linear_debiased"):
        assert distance(a, moved, metric) < ANGLE_ROUNDING
        assert distance(a, a, metric) < ANGLE_ROUNDING
    d = pairwise_distance(np.stack([a, moved, rng.normal(size=(30, 6))]), "procrustes")
    assert d[0, 1] < ANGLE_ROUNDING and d[0, 2] > 0.5


@pytest.mark.parametrize("metric", ["procrustes", "cka_linear", "cka_linear_debiased", "cka_rbf", "rsa"])
@FEW
@given(seed=st.integers(0, 2 ** 32 - 1), shared=st.floats(0.0, 3.0))
def test_distance_is_a_metric(metric, seed, shared):
    """Symmetric, zero diagonal, equal to the pair form, and the triangle inequality for every triple
    of five members (different widths: Procrustes' partial isometries)."""
    reps = ensemble(seed, shared=shared)
    d = pairwise_distance(reps, metric)
    assert d.shape == (5, 5)
    np.testing.assert_array_equal(d, d.T)
    np.testing.assert_array_equal(np.diag(d), 0.0)
    assert (d >= 0).all()
    assert d[1, 3] == pytest.approx(distance(reps[1], reps[3], metric), abs=1e-9)
    worst = max(d[i, k] - d[i, j] - d[j, k] for i in range(5) for j in range(5) for k in range(5))
    assert worst <= 1e-12
    hi = np.pi / 2 if metric in ("procrustes", "cka_linear", "cka_rbf") else np.pi
    assert d.max() <= hi


def test_distance_refuses_metrics_without_one_and_the_angular_kind():
    a, b = ensemble(2)[:2]
    with pytest.raises(ValueError, match="pwcca has no distance form.*metrics with one: cka_linear"):
        distance(a, b, "pwcca")
    with pytest.raises(ValueError, match="no distance form"):
        pairwise_distance(np.stack([a[:, :3], b[:, :3]]), "linear_predictivity")
    with pytest.raises(ValueError, match="kind does not apply"):
        distance(a, b, "procrustes", kind="angular")
    with pytest.raises(ValueError, match=r"expected \(members, probes, units\)"):
        pairwise_distance(a, "cka_linear")


def test_distance_warns_like_the_similarity():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(10, 40)), rng.normal(size=(10, 40))
    with pytest.warns(UninformativeWarning) as record:
        distance(a, b, "procrustes")
    assert len(record) == 1 and record[0].filename == __file__


# --------------------------------------------------------------------------- cross-validated


def test_heldout_metrics_are_the_fitted_ones():
    assert heldout_metrics() == ("procrustes", "cca", "svcca", "pwcca", "linear_predictivity")


def test_folds_partition_the_probes_and_are_seeded():
    splits = fold_indices(23, 5, seed=4)
    tests = np.concatenate([te for _, te in splits])
    assert sorted(tests) == list(range(23))
    for train, test in splits:
        assert set(train).isdisjoint(test) and len(train) + len(test) == 23
    assert [len(te) for _, te in splits] == [5, 5, 5, 4, 4]
    again = fold_indices(23, 5, seed=4)
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(splits, again))
    assert not np.array_equal(splits[0][1], fold_indices(23, 5, seed=5)[0][1])


@pytest.mark.parametrize("metric", ["procrustes", "linear_predictivity", "cca", "svcca", "pwcca"])
def test_identical_members_score_one_on_every_fold(metric):
    a = ensemble(5, widths=(6,), n=80)[0]
    res = cross_validated(a, a.copy(), metric, folds=4, seed=1)
    assert isinstance(res, HeldOutScore) and res.scores.shape == (4,) and res.folds == 4
    np.testing.assert_allclose(res.scores, 1.0, atol=1e-9)
    assert res.mean == pytest.approx(1.0, abs=1e-9)
    rotated = a @ ortho_group.rvs(6, random_state=np.random.default_rng(0)) * 2.0 + 1.0
    if metric != "pwcca":                       # pwcca is not rotation-invariant on the weighting side
        assert cross_validated(a, rotated, metric, folds=4, seed=1).mean == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("metric,options", [("procrustes", {}), ("linear_predictivity", {}), ("cca", {}),
                                            ("svcca", {}), ("pwcca", {})])
def test_independent_members_score_near_chance_and_below_their_in_sample_value(metric, options):
    """60 probes x 20 independent units: a map fitted in-sample absorbs much of the noise
    (Procrustes ~0.46, CCA ~0.35, least-squares R^2 ~ 20/60); held out, it carries nothing over."""
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(60, 20)), rng.normal(size=(60, 20))
    res = cross_validated(a, b, metric, folds=5, seed=0, **options)
    if metric == "linear_predictivity":          # the metric is itself out-of-fold: fit and score on all
        in_sample = np.mean([r2_score(y, LinearRegression().fit(x, y).predict(x), multioutput="variance_weighted")
                             for x, y in ((a, b), (b, a))])
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UninformativeWarning)
            in_sample = compare(a, b, metric, **options)
    assert res.mean < in_sample - 0.1
    # chance: the held-out score after shuffling one member's probes, over a few shuffles
    chance = [cross_validated(a, b[rng.permutation(60)], metric, folds=5, seed=0, **options).mean
              for _ in range(8)]
    assert abs(res.mean - np.mean(chance)) < 3 * np.std(chance) + 0.02
    assert -0.3 < res.mean < 0.15


def test_related_members_keep_their_alignment_held_out():
    a, b = ensemble(7, widths=(5, 5), n=150, shared=2.0)
    for metric in ("procrustes", "linear_predictivity", "cca"):
        res = cross_validated(a, b, metric, folds=5, seed=0)
        assert 0.3 < res.mean < compare(a, b, metric) + 0.05


def test_heldout_procrustes_and_predictivity_match_a_reference_fit_on_one_fold():
    a, b = ensemble(8, widths=(4, 6), n=50, shared=1.5)
    train, test = fold_indices(50, 5, seed=3)[2]
    # Procrustes: Q = V U^T from the centred training probes, cosine on the held-out probes
    at, bt = a[train] - a[train].mean(0), b[train] - b[train].mean(0)
    u, _, vt = np.linalg.svd(at.T @ bt, full_matrices=False)
    q = vt.T @ u.T
    ae, be = a[test] - a[test].mean(0), b[test] - b[test].mean(0)
    expected = np.sum(ae * (be @ q)) / (np.linalg.norm(ae) * np.linalg.norm(be))
    assert cross_validated(a, b, "procrustes", folds=5, seed=3).scores[2] == pytest.approx(expected, abs=1e-12)
    # predictivity with ridge 0: least squares with an intercept, R^2 of the fold (sklearn)
    r2 = r2_score(b[test], LinearRegression().fit(a[train], b[train]).predict(a[test]),
                  multioutput="variance_weighted")
    got = cross_validated(a, b, "linear_predictivity", folds=5, seed=3, ridge=0.0, direction="a_to_b")
    assert got.scores[2] == pytest.approx(r2, abs=1e-10)


def test_cross_validated_errors():
    a, b = ensemble(9, widths=(3, 3), n=20)
    with pytest.raises(ValueError, match="cka_linear fits no alignment map.*metrics with one: procrustes"):
        cross_validated(a, b, "cka_linear")
    with pytest.raises(ValueError, match="folds must be an integer >= 2"):
        cross_validated(a, b, "procrustes", folds=1)
    with pytest.raises(ValueError, match="n >= 30 probes, got n = 20"):
        cross_validated(a, b, "procrustes", folds=10)
    with pytest.raises(TypeError, match="unknown option"):
        cross_validated(a, b, "procrustes", ridge=1.0)
    assert repr(cross_validated(a, b, "procrustes", folds=2)).startswith("HeldOutScore(metric='procrustes', mean=")
    np.testing.assert_array_equal(cross_validated(a, b, "cca", seed=11).scores,
                                  cross_validated(a, b, "cca", seed=11).scores)
    assert pairwise(np.stack([a, b]), "procrustes").shape == (2, 2)
