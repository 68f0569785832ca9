"""alignlib.metrics.predictivity: linear_predictivity (issue 13, item 1): closed forms, invariances both
ways, pairwise == compare, and values against sklearn's Ridge fold by fold."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from metric_references import invertible, member, ref_predictivity, related, rng_
from scipy.stats import ortho_group

from alignlib.metrics import METRICS, compare, pairwise

pytestmark = pytest.mark.usefixtures("single_torch_thread")

PRED = "linear_predictivity"


# --------------------------------------------------------------------------- predictivity: reference


@pytest.mark.parametrize("ridge", [0.0, 0.01, 1.0, "cv"])
@pytest.mark.parametrize("widths", [(6, 4), (3, 7)])
def test_predictivity_matches_sklearn_ridge_with_interleaved_folds(ridge, widths):
    a, b = related(3, n=60, widths=widths)
    assert compare(a, b, PRED, ridge=ridge, direction="a_to_b") == pytest.approx(ref_predictivity(a, b, ridge), abs=1e-9)
    assert compare(a, b, PRED, ridge=ridge, direction="b_to_a") == pytest.approx(ref_predictivity(b, a, ridge), abs=1e-9)


@pytest.mark.filterwarnings("ignore::alignlib.metrics.UninformativeWarning")   # n < d on purpose
def test_predictivity_matches_sklearn_when_n_is_below_d():
    a, b = related(4, n=40, widths=(60, 50))
    for ridge in (0.1, 10.0):
        assert compare(a, b, PRED, ridge=ridge, direction="a_to_b", folds=4) == pytest.approx(
            ref_predictivity(a, b, ridge, k=4), abs=1e-9)


# --------------------------------------------------------------------------- predictivity: closed forms


def test_predictivity_identity_is_one():
    a = member(0)
    assert compare(a, a, PRED) == pytest.approx(1.0, abs=1e-12)              # cv picks ridge 0
    assert compare(a, a.copy(), PRED, ridge=0.0) == pytest.approx(1.0, abs=1e-12)
    # a fixed ridge shrinks the fit: close to 1, not exactly (the deficit grows with the ridge)
    gaps = [1 - compare(a, a, PRED, ridge=r) for r in (1e-4, 1e-2, 1.0)]
    assert 0 < gaps[0] < 1e-4 and gaps[0] < gaps[1] < gaps[2] < 0.2
    m = pairwise(np.stack([a, a.copy(), member(1)]), PRED)
    np.testing.assert_array_equal(np.diag(m), 1.0)
    assert m[0, 1] == pytest.approx(1.0, abs=1e-12)


def test_predictivity_of_an_invertible_linear_map_is_one_from_the_predictor_side():
    a = member(2)
    b = a @ invertible(6, 3) + 5.0
    assert compare(a, b, PRED, direction="a_to_b") == pytest.approx(1.0, abs=1e-10)
    assert compare(b, a, PRED, direction="a_to_b") == pytest.approx(1.0, abs=1e-10)
    assert compare(a, b, PRED, ridge=0.0) == pytest.approx(1.0, abs=1e-10)


def test_predictivity_of_independent_gaussians_is_near_zero():
    rng = rng_(5)
    x, y = rng.normal(size=(2000, 10)), rng.normal(size=(2000, 10))
    v = compare(x, y, PRED)
    assert abs(v) < 0.01 and v < 0          # held out: slightly below 0 (~ -d/n)
    assert abs(compare(x, y, PRED, ridge=0.1)) < 0.01


@pytest.mark.filterwarnings("ignore::alignlib.metrics.UninformativeWarning")   # n < d on purpose
def test_predictivity_is_below_one_for_identical_members_when_folds_do_not_span_them():
    x = rng_(6).normal(size=(50, 100))
    v = compare(x, x, PRED)
    assert 0.2 < v < 0.6                       # held-out probes lie outside the 40 training probes' span


# --------------------------------------------------------------------------- predictivity: invariances


def test_predictivity_invariances_both_ways():
    a, b = related(7, widths=(6, 6))[:2]
    rng = rng_(8)
    q, m = ortho_group.rvs(6, random_state=9), invertible(6, 10)
    perm = rng.permutation(6)
    for ridge in (0.0, 0.1, "cv"):
        base = compare(a, b, PRED, ridge=ridge, direction="a_to_b")
        for t in (lambda x: x + 4.0, lambda x: 3.7 * x, lambda x: x @ q, lambda x: x[:, perm]):
            assert compare(t(a), b, PRED, ridge=ridge, direction="a_to_b") == pytest.approx(base, abs=1e-10)
            assert compare(a, t(b), PRED, ridge=ridge, direction="a_to_b") == pytest.approx(base, abs=1e-10)
        # an anisotropic map of the target is never an invariance (variance-weighted R^2)
        assert abs(compare(a, b @ m, PRED, ridge=ridge, direction="a_to_b") - base) > 1e-3
    # invertible linear maps of the predictor: invariant in the ridge -> 0 limit only
    base0 = compare(a, b, PRED, ridge=0.0, direction="a_to_b")
    assert compare(a @ m, b, PRED, ridge=0.0, direction="a_to_b") == pytest.approx(base0, abs=1e-10)
    assert abs(compare(a @ m, b, PRED, ridge=1.0, direction="a_to_b")
               - compare(a, b, PRED, ridge=1.0, direction="a_to_b")) > 1e-3
    gaps = [abs(compare(a @ m, b, PRED, ridge=r, direction="a_to_b") - base0) for r in (1e-6, 1e-8, 1e-10)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-7            # -> 0 linearly with the ridge


# --------------------------------------------------------------------------- predictivity: API


@pytest.mark.parametrize("ridge", [0.1, "cv"])
def test_predictivity_pairwise_equals_compare_for_every_pair_and_direction(ridge):
    reps = related(11, widths=(6, 4, 7, 6))
    mats = {d: pairwise(reps, PRED, ridge=ridge, direction=d) for d in ("a_to_b", "b_to_a", "symmetric")}
    for i, j in itertools.permutations(range(4), 2):
        for d, mat in mats.items():
            assert mat[i, j] == pytest.approx(compare(reps[i], reps[j], PRED, ridge=ridge, direction=d), abs=1e-12)
    np.testing.assert_allclose(mats["a_to_b"], mats["b_to_a"].T, atol=0)
    np.testing.assert_allclose(mats["symmetric"], (mats["a_to_b"] + mats["b_to_a"]) / 2, atol=1e-15)
    assert np.abs(mats["a_to_b"] - mats["a_to_b"].T).max() > 1e-3


def test_predictivity_torch_input_gives_the_numpy_numbers():
    reps = np.stack(related(12, widths=(5, 5, 5)))
    np.testing.assert_allclose(pairwise(torch.tensor(reps, dtype=torch.float32), PRED),
                               pairwise(reps.astype(np.float32), PRED), atol=1e-12)
    assert compare(torch.tensor(reps[0]), torch.tensor(reps[1]), PRED) == pytest.approx(
        compare(reps[0], reps[1], PRED), abs=1e-12)


def test_predictivity_bad_options_are_errors():
    a, b = related(13, n=15, widths=(4, 4))[:2]
    with pytest.raises(ValueError, match="folds"):
        compare(a, b, PRED, folds=1)
    with pytest.raises(ValueError, match="probes"):
        compare(a, b, PRED)                    # 5 folds with an inner cv need 20 probes
    assert np.isfinite(compare(a, b, PRED, ridge=0.1))
    with pytest.raises(ValueError, match="ridge"):
        compare(a, b, PRED, ridge=-1.0)
    with pytest.raises(ValueError, match="ridge"):
        compare(a, b, PRED, ridge="auto")
    with pytest.raises(ValueError, match="direction"):
        compare(a, b, PRED, direction="both")
    with pytest.raises(ValueError, match="constant"):
        compare(a, np.ones_like(b), PRED, ridge=0.1)
    info = METRICS[PRED]
    assert info.symmetric and info.options["ridge"] == "cv" and info.options["folds"] == 5
    assert "invertible_linear" not in info.invariances and "orthogonal" in info.invariances
