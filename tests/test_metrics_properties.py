"""Property tests over every registered metric: declared invariances hold, undeclared ones
are violated, identity gives 1, symmetric metrics give symmetric matrices."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ortho_group

from alignlib.metrics import METRICS, TRANSFORMATIONS, compare, metric_names, pairwise

SEEDS = st.integers(min_value=0, max_value=2 ** 32 - 1)
#: Few examples keep CI fast; raise ALIGNLIB_PROPERTY_EXAMPLES for a deeper local run.
FEW = settings(max_examples=int(os.environ.get("ALIGNLIB_PROPERTY_EXAMPLES", "4")), deadline=None)
N, D = 60, 6
#: A decaying spectrum so that SVCCA's 99 % PCA cut drops directions.
SPECTRUM = np.array([3.0, 2.0, 1.0, 0.3, 0.05, 0.02])


# tiny problems: one intra-op thread (see conftest.single_torch_thread)
pytestmark = pytest.mark.usefixtures("single_torch_thread")


def pair_of_members(seed: int, metric: str):
    """Two related, generic members: (n, d) activations or (d_in, d_out) end-to-end maps."""
    rng = np.random.default_rng(seed)
    if METRICS[metric].needs == "end_to_end":
        a = rng.normal(size=(5, D))
        return a, a + 0.8 * rng.normal(size=a.shape)
    rot = ortho_group.rvs(D, random_state=rng)
    a = (rng.normal(size=(N, D)) * SPECTRUM) @ rot + rng.normal(size=D)
    mix = rng.normal(size=(D, D)) / np.sqrt(D)
    b = np.tanh(a @ mix) + 0.1 * rng.normal(size=(N, D)) * SPECTRUM + rng.normal(size=D)
    return a, b


def transformation(name: str, rng: np.random.Generator):
    """X -> T(X), acting on the units (last axis)."""
    if name == "translation":
        c = 3.0 * rng.normal(size=D)
        return lambda x: x + c
    if name == "isotropic_scaling":
        s = float(rng.uniform(0.2, 5.0))
        return lambda x: s * x
    if name == "orthogonal":
        q = ortho_group.rvs(D, random_state=rng)
        return lambda x: x @ q
    if name == "invertible_linear":
        m = ortho_group.rvs(D, random_state=rng) @ np.diag(np.logspace(-1, 1, D)) @ ortho_group.rvs(
            D, random_state=rng)
        return lambda x: x @ m
    if name == "permutation":
        perm = np.roll(np.arange(D), 1 + int(rng.integers(D - 1)))
        return lambda x: x[..., perm]
    raise AssertionError(name)


CASES = [(m, t) for m in metric_names() for t in sorted(TRANSFORMATIONS)]


@pytest.mark.parametrize("metric,name", CASES, ids=[f"{m}-{t}" for m, t in CASES])
@FEW
@given(seed=SEEDS)
def test_declared_invariances_hold_and_undeclared_ones_are_violated(metric, name, seed):
    info = METRICS[metric]
    a, b = pair_of_members(seed, metric)
    t = transformation(name, np.random.default_rng(seed + 1))
    base = compare(a, b, metric)
    one_sided = [compare(t(a), b, metric), compare(a, t(b), metric)]
    joint = compare(t(a), t(b), metric)
    if name in info.joint_invariances:
        assert joint == pytest.approx(base, abs=1e-9)
        assert max(abs(v - base) for v in one_sided) > 1e-6   # only jointly
    elif name in info.invariances:
        for v in one_sided + [joint]:
            assert v == pytest.approx(base, abs=1e-9)
    else:
        assert max(abs(v - base) for v in one_sided + [joint]) > 1e-6


@pytest.mark.parametrize("metric", metric_names())
@FEW
@given(seed=SEEDS)
def test_identity_gives_one_and_values_lie_in_the_declared_range(metric, seed):
    a, b = pair_of_members(seed, metric)
    assert compare(a, a, metric) == pytest.approx(1.0, abs=1e-10)
    lo, hi = METRICS[metric].range
    assert lo - 1e-12 <= compare(a, b, metric) <= hi + 1e-12
    m = pairwise(np.stack([a, a.copy(), b]), metric)
    assert m[0, 1] == pytest.approx(1.0, abs=1e-10) and m[1, 0] == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("metric", metric_names())
@FEW
@given(seed=SEEDS)
def test_symmetric_metrics_give_symmetric_matrices_with_unit_diagonal(metric, seed):
    rng = np.random.default_rng(seed)
    a, b = pair_of_members(seed, metric)
    reps = np.stack([a, b, b + 0.3 * rng.normal(size=b.shape), 2 * a + rng.normal(size=a.shape)])
    m = pairwise(reps, metric)
    np.testing.assert_array_equal(np.diag(m), 1.0)
    if METRICS[metric].symmetric:
        np.testing.assert_allclose(m, m.T, atol=1e-12)
    else:
        assert np.abs(m - m.T).max() > 1e-6


@FEW
@given(seed=SEEDS)
def test_information_imbalance_directions_are_transposes(seed):
    a, b = pair_of_members(seed, "information_imbalance")
    reps = np.stack([a, b, np.sin(a)])
    ab = pairwise(reps, "information_imbalance", direction="a_to_b")
    ba = pairwise(reps, "information_imbalance", direction="b_to_a")
    sym = pairwise(reps, "information_imbalance")
    np.testing.assert_allclose(ab, ba.T, atol=1e-15)
    np.testing.assert_allclose(sym, (ab + ba) / 2, atol=1e-15)
    assert np.abs(ab - ab.T).max() > 0
