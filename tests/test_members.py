"""alignlib.stats.members: the member jackknife of a pair mean, member bootstrap, Holm's adjustment."""
import numpy as np
import pytest

from alignlib.claims.calibration import point_se
from alignlib.ensembles.alignment import member_pairs
from alignlib.stats.members import (
    bootstrap_pair_means,
    holm,
    jackknife_pair_mean,
    pair_index,
    pair_matrix,
    resample_members,
)


def test_jackknife_matches_the_definition_and_is_not_the_pair_standard_error():
    rng = np.random.default_rng(0)
    S = 8
    ia, ib = member_pairs(range(S))
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
    ia, ib = member_pairs(range(S))
    u = rng.normal(size=(reps, S)) * 0.05
    values = 0.5 + u[:, ia] + u[:, ib] + 0.05 * rng.normal(size=(reps, len(ia)))
    mean, se = jackknife_pair_mean(values, ia, ib, S)
    true_sd = mean.std()
    assert true_sd == pytest.approx(point_se(S), rel=0.05)
    assert 0.95 * true_sd < np.sqrt(np.mean(se ** 2)) < 1.3 * true_sd
    naive = values.std(-1, ddof=1) / np.sqrt(len(ia))
    assert np.sqrt(np.mean(naive ** 2)) < 0.6 * true_sd


def test_bootstrap_never_pairs_a_member_with_itself():
    S = 4
    ia, ib = member_pairs(range(S))
    values = np.arange(len(ia), dtype=float)  # pair k has value k
    idx = np.array([[[0, 0, 1, 1]]])  # members 0 and 1 twice: only pairs (0, 1) count
    assert bootstrap_pair_means(values[None], ia, ib, S, idx)[0, 0] == pytest.approx(values[0])
    drawn = resample_members(np.random.default_rng(0), (5000,), 3)
    assert not (drawn == drawn[:, :1]).all(-1).any()


@pytest.mark.parametrize("draws", [1, 3])
def test_bootstrap_in_blocks_equals_all_at_once_and_the_loop_by_hand(monkeypatch, draws):
    """Grid points resampled a few at a time (the memory bound) give the same bits as all at once, and each
    replicate is the mean of M[idx_p, idx_q] over p != q drawing different members in the same slot."""
    from alignlib.stats import members
    rng = np.random.default_rng(3)
    S, B = 6, 7
    ia, ib = member_pairs(range(S))
    values = rng.normal(size=(4, 5, len(ia)))
    draw = np.repeat(np.arange(draws), S // draws)
    idx, slots = members.member_bootstrap(rng, (4, 5), B, S, draw)
    whole = bootstrap_pair_means(values, ia, ib, S, idx, slots)
    monkeypatch.setattr(members, "BOOTSTRAP_BLOCK_BYTES", 8 * B * S * S * 3)  # 3 grid points a block
    np.testing.assert_array_equal(bootstrap_pair_means(values, ia, ib, S, idx, slots), whole)
    m = pair_matrix(values, ia, ib, S)
    i, j, b = 2, 4, 5
    kept = [m[i, j, idx[i, j, b, p], idx[i, j, b, q]] for p in range(S) for q in range(S)
            if idx[i, j, b, p] != idx[i, j, b, q] and slots[p] == slots[q]]
    assert whole[i, j, b] == pytest.approx(np.mean(kept), rel=1e-13)


def test_holm_by_hand():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, np.nan, 0.2]), [0.04, 0.09, 0.09, np.nan, 0.2])


def test_pair_index_and_pair_matrix_by_hand():
    ia, ib, S = pair_index([10, 10, 11], [11, 12, 12], [10, 11, 12])
    assert ia.tolist() == [0, 0, 1] and ib.tolist() == [1, 2, 2] and S == 3
    np.testing.assert_array_equal(pair_matrix([1.0, 2.0, 3.0], ia, ib, S),
                                  [[np.nan, 1.0, 2.0], [1.0, np.nan, 3.0], [2.0, 3.0, np.nan]])
    with pytest.raises(ValueError, match="at least 3 members, got 2"):
        jackknife_pair_mean(np.ones(1), np.array([0]), np.array([1]), 2)
