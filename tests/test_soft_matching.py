"""alignlib.metrics.soft_matching: soft_matching (issue 13, item 1): closed forms, invariances,
pairwise == compare, and values against independent implementations of the published definition
(brute-force permutations, scipy's assignment and scipy's LP solver for the transport problem)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from metric_references import invertible, lp_soft_matching, related, rng_, unit_curves
from scipy.optimize import linear_sum_assignment
from scipy.stats import ortho_group

from alignlib.metrics import METRICS, compare, pairwise

pytestmark = pytest.mark.usefixtures("single_torch_thread")

SOFT = "soft_matching"


# --------------------------------------------------------------------------- soft matching: references


def brute_force_matching(x, y):
    """max over permutations of the mean correlation of matched units (equal widths)."""
    c = unit_curves(x).T @ unit_curves(y)
    d = c.shape[0]
    return max(c[np.arange(d), list(p)].mean() for p in itertools.permutations(range(d)))


def test_soft_matching_with_equal_widths_is_the_best_permutation():
    for seed in range(3):
        a, b = related(20 + seed, widths=(5, 5))[:2]
        expected = brute_force_matching(a, b)
        c = unit_curves(a).T @ unit_curves(b)
        r, k = linear_sum_assignment(-c)
        assert c[r, k].mean() == pytest.approx(expected, abs=1e-12)
        assert compare(a, b, SOFT) == pytest.approx(expected, abs=1e-12)
        assert compare(a, b, SOFT, hard=True) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("widths", [(3, 5), (7, 4), (6, 6)])
def test_soft_matching_matches_an_independent_transport_lp(widths):
    a, b = related(30, widths=widths)[:2]
    assert compare(a, b, SOFT) == pytest.approx(lp_soft_matching(a, b), abs=1e-9)


def test_soft_matching_hand_computed_two_unit_cases():
    u1 = np.array([1.0, -1.0, 0.0, 0.0]) / np.sqrt(2)     # centred, unit norm, orthogonal
    u2 = np.array([0.0, 0.0, 1.0, -1.0]) / np.sqrt(2)
    a = np.stack([u1, u2], 1)
    b = np.stack([u1, (u1 + u2) / np.sqrt(2)], 1)
    # correlations [[1, 1/sqrt2], [0, 1/sqrt2]]: best matching u1-u1, u2-(u1+u2)/sqrt2
    assert compare(a, b, SOFT) == pytest.approx((1 + 1 / np.sqrt(2)) / 2, abs=1e-15)
    assert compare(a, b, SOFT, hard=True) == pytest.approx((1 + 1 / np.sqrt(2)) / 2, abs=1e-15)
    # one unit against two: mass 1/2 to each, correlations 1 and 0
    assert compare(u1[:, None], a, SOFT) == pytest.approx(0.5, abs=1e-15)
    assert compare(u1[:, None], -u1[:, None], SOFT) == pytest.approx(-1.0, abs=1e-15)


# --------------------------------------------------------------------------- soft matching: invariances


def test_soft_matching_permutation_is_exactly_one_and_rotation_lowers_it():
    a = related(40, widths=(8,))[0]
    perm = rng_(41).permutation(8)
    assert compare(a, a[:, perm], SOFT) == pytest.approx(1.0, abs=1e-14)
    assert compare(a, a[:, perm], SOFT, hard=True) == pytest.approx(1.0, abs=1e-14)
    assert compare(a, 3.0 * a[:, perm] - 2.0, SOFT) == pytest.approx(1.0, abs=1e-14)
    rotated = a @ ortho_group.rvs(8, random_state=42)
    assert compare(a, rotated, SOFT) < 0.9
    # against a third member: permutations/translation/scaling of either side hold, rotations do not
    b = related(43, widths=(8,))[0]
    base = compare(a, b, SOFT)
    for t in (lambda x: x[:, perm], lambda x: 0.3 * x + 1.0):
        assert compare(t(a), b, SOFT) == pytest.approx(base, abs=1e-12)
        assert compare(a, t(b), SOFT) == pytest.approx(base, abs=1e-12)
    assert abs(compare(rotated, b, SOFT) - base) > 1e-3
    assert abs(compare(a @ invertible(8, 44), b, SOFT) - base) > 1e-3
    assert compare(np.stack([a[:, 0], -a[:, 1]], 1), a[:, :2], SOFT) < 1 - 1e-3   # not sign flips either


def test_soft_matching_keeps_constant_units_as_zero_curves():
    a = related(50, widths=(5,))[0]
    a[:, 2] = 3.0                                       # a dead unit
    assert compare(a, a.copy(), SOFT) == pytest.approx(1.0, abs=1e-14)
    live = np.delete(a, 2, axis=1)
    # the dead unit matched to a live one counts 1/2: (4 x 1 + 1/2) / 5 with hard matching
    assert compare(a, np.column_stack([live, live[:, 0]]), SOFT, hard=True) == pytest.approx(4.5 / 5, abs=1e-12)


# --------------------------------------------------------------------------- soft matching: API


@pytest.mark.parametrize("hard", [False, True])
def test_soft_matching_pairwise_equals_compare_for_every_pair(hard):
    widths = (6, 6, 6, 6) if hard else (6, 4, 7, 6)
    reps = related(60, widths=widths)
    m = pairwise(reps, SOFT, hard=hard)
    np.testing.assert_array_equal(np.diag(m), 1.0)
    np.testing.assert_allclose(m, m.T, atol=0)
    for i, j in itertools.combinations(range(4), 2):
        assert m[i, j] == pytest.approx(compare(reps[i], reps[j], SOFT, hard=hard), abs=1e-12)
    assert np.allclose(pairwise(torch.tensor(np.stack(reps)) if hard else [torch.tensor(r) for r in reps],
                                SOFT, hard=hard), m, atol=1e-12)


def test_soft_matching_errors():
    a, b = related(70, widths=(4, 5))[:2]
    with pytest.raises(ValueError, match="equal width"):
        compare(a, b, SOFT, hard=True)
    with pytest.raises(ValueError, match="hard"):
        compare(a, b, SOFT, hard="yes")
    with pytest.raises(ValueError, match="constant"):
        compare(a, np.ones_like(b), SOFT)
    info = METRICS[SOFT]
    assert info.symmetric and info.range == (-1.0, 1.0)
    assert info.invariances == {"translation", "isotropic_scaling", "permutation"}


def test_without_pot_soft_matching_names_the_extra_and_hard_matching_still_works(monkeypatch):
    """POT is the soft-matching extra, imported on first use (issue 19, item 4)."""
    import sys

    a, b = related(40, widths=(4, 4))[:2]
    monkeypatch.setitem(sys.modules, "ot", None)           # import ot -> ImportError
    for call in (lambda: compare(a, b, SOFT), lambda: pairwise([a, b, a], SOFT)):
        with pytest.raises(ImportError, match=r'pip install "alignlib\[soft-matching\]"'):
            call()
    assert compare(a, b, SOFT, hard=True) == pytest.approx(brute_force_matching(a, b), abs=1e-12)


def test_importing_the_metrics_does_not_import_pot_or_scipy_optimize():
    import subprocess
    import sys

    code = ("import sys, alignlib.metrics, alignlib.stats; "
            "print(sorted(m for m in ('ot', 'scipy.optimize', 'xarray', 'pandas', 'sklearn', 'matplotlib') "
            "if m in sys.modules))")
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo)
    assert out.stdout.strip() == "[]"
