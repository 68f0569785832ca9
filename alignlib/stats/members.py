"""Member-level resampling of pair tables: the uncertainty of a mean over member pairs.

A grid point holds one value per unordered pair of its S members (``pairs`` along the
last axis, with member indices ``ia``, ``ib``). Pairs share members, so they are not
independent: the unit of replication is the member. Here are

* :func:`jackknife_pair_mean`: the mean over pairs and its delete-one-member jackknife
  standard error (for a mean over pairs, a U-statistic of degree 2, the jackknife
  variance is conservative: Efron & Stein 1981);
* :func:`bootstrap_pair_means`: the mean over pairs of members resampled with
  replacement, a member never paired with a copy of itself;
* :func:`resample_members`: the member indices of bootstrap replicates, drawn
  independently per grid point (members at different grid points are independent
  draws: each has its own noise and initialisation);
* :func:`member_bootstrap`: the same with several data draws (members nested in draws):
  each replicate draws the data draws first (with replacement, shared by every grid point:
  a draw's inputs, teacher and probes serve all its grid points), then members within each
  drawn draw, independently per grid point; its ``slots`` say which pairs a replicate may form;
* :func:`nested_mean_se`: a grid point's mean and standard error with members nested in draws;
* :func:`holm`: Holm's step-down adjustment of p-values.

All functions are vectorised over leading grid axes and over replicates.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pair_index", "pair_matrix", "jackknife_pair_mean", "resample_members", "member_bootstrap",
           "bootstrap_pair_means", "nested_mean_se", "nested_pair_mean", "draw_members", "holm"]


def pair_index(seed_a, seed_b, seeds) -> tuple[np.ndarray, np.ndarray, int]:
    """Member positions (ia, ib) of every pair, and the number of members S."""
    pos = {int(s): i for i, s in enumerate(np.asarray(seeds).tolist())}
    ia = np.array([pos[int(s)] for s in np.asarray(seed_a).tolist()], dtype=int)
    ib = np.array([pos[int(s)] for s in np.asarray(seed_b).tolist()], dtype=int)
    return ia, ib, len(pos)


def pair_matrix(values: np.ndarray, ia: np.ndarray, ib: np.ndarray, S: int) -> np.ndarray:
    """(..., S, S) symmetric member matrices from (..., P) pair values; NaN on the diagonal."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full(values.shape[:-1] + (S, S), np.nan)
    out[..., ia, ib] = values
    out[..., ib, ia] = values
    return out


def jackknife_pair_mean(values: np.ndarray, ia: np.ndarray, ib: np.ndarray, S: int):
    """Mean over pairs (last axis) and its delete-one-member jackknife standard error.

    Deleting member i removes its S - 1 pairs; the leave-one-out means theta_(i) give
    se^2 = (S - 1) / S * sum_i (theta_(i) - mean_i theta_(i))^2. A grid point with a
    non-finite pair value gets NaN for both. Needs S >= 3 (with 2 members deleting one
    leaves no pair).
    """
    values = np.asarray(values, dtype=np.float64)
    if S < 3:
        raise ValueError(f"the member jackknife needs at least 3 members, got {S}")
    P = values.shape[-1]
    incidence = np.zeros((P, S))
    incidence[np.arange(P), ia] = 1.0
    incidence[np.arange(P), ib] = 1.0
    total = values.sum(-1)
    per_member = values @ incidence  # (..., S): sum of the pairs that contain each member
    loo = (total[..., None] - per_member) / (P - (S - 1))
    se = np.sqrt((S - 1) / S * ((loo - loo.mean(-1, keepdims=True)) ** 2).sum(-1))
    return total / P, se


def resample_members(rng: np.random.Generator, shape: tuple, S: int) -> np.ndarray:
    """Bootstrap member indices (*shape, S), each replicate with at least two distinct members."""
    idx = rng.integers(0, S, size=tuple(shape) + (S,))
    same = (idx == idx[..., :1]).all(-1)
    while same.any():  # a replicate of one repeated member has no pair: redraw it
        idx[same] = rng.integers(0, S, size=(int(same.sum()), S))
        same = (idx == idx[..., :1]).all(-1)
    return idx


def draw_members(draw, S: int) -> list[np.ndarray]:
    """Member positions of each data draw (one draw of all S members when ``draw`` is None).

    Draws must have equal sizes (every draw of a task has its ``seeds`` members)."""
    if draw is None:
        return [np.arange(S)]
    draw = np.asarray(draw)
    if draw.shape != (S,):
        raise ValueError(f"draw labels: expected one per member ({S}), got shape {draw.shape}")
    groups = [np.flatnonzero(draw == d) for d in np.unique(draw)]
    if len({len(g) for g in groups}) > 1:
        raise ValueError(f"data draws of unequal sizes {[len(g) for g in groups]}: every draw needs the same members")
    return groups


def member_bootstrap(rng: np.random.Generator, grid_shape: tuple, n_boot: int, S: int,
                     draw=None) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap member indices (*grid_shape, n_boot, S) and the slot of each position (S,).

    One draw: :func:`resample_members` (slots all 0). K draws of m members each: replicate b
    picks K draws with replacement (the same for every grid point), and slot k of it resamples
    m members of its draw with replacement, independently per grid point. Pairs are formed
    within a slot only (members of different draws saw different probes; a draw picked twice
    gives two independent slots).
    """
    groups = draw_members(draw, S)
    if len(groups) == 1:
        return resample_members(rng, tuple(grid_shape) + (n_boot,), S), np.zeros(S, dtype=int)
    K, m = len(groups), len(groups[0])
    members = np.stack(groups)  # (K, m)
    picked = rng.integers(0, K, size=(n_boot, K))  # draws of each replicate, shared by the grid
    within = resample_members(rng, tuple(grid_shape) + (n_boot, K), m)  # (*grid, B, K, m)
    idx = members[picked[..., None], within]  # (*grid, B, K, m) -> member positions
    return idx.reshape(tuple(grid_shape) + (n_boot, K * m)), np.repeat(np.arange(K), m)


def nested_mean_se(x: np.ndarray, draw=None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over members (last axis) of a per-member quantity (a test error).

    One draw: the mean and sd / sqrt(S). K draws: the mean of the draws' means, and
    se^2 = max(s_b^2 / K, sum_k se_k^2 / K^2), s_b^2 the variance of the draw means: the two-stage
    estimate when the draws differ more than their members' noise explains, never below the
    members' own noise."""
    x = np.asarray(x, dtype=np.float64)
    groups = draw_members(draw, x.shape[-1])
    parts = [(x[..., g].mean(-1), x[..., g].var(-1, ddof=1) / len(g)) for g in groups]
    return _combine_draws([m for m, _ in parts], [v for _, v in parts])


def _combine_draws(means: list, variances: list) -> tuple[np.ndarray, np.ndarray]:
    if len(means) == 1:
        return means[0], np.sqrt(variances[0])
    m, v = np.stack(means), np.stack(variances)
    K = len(means)
    between = m.var(0, ddof=1) / K
    within = v.sum(0) / K ** 2
    return m.mean(0), np.sqrt(np.maximum(between, within))


def nested_pair_mean(values: np.ndarray, ia: np.ndarray, ib: np.ndarray, S: int, draw=None):
    """Mean over pairs and its standard error with members nested in draws: per draw the member
    jackknife (:func:`jackknife_pair_mean`), combined as in :func:`nested_mean_se`."""
    groups = draw_members(draw, S)
    if len(groups) == 1:
        return jackknife_pair_mean(values, ia, ib, S)
    means, variances = [], []
    for g in groups:
        local = np.full(S, -1)
        local[g] = np.arange(len(g))
        mine = (local[ia] >= 0) & (local[ib] >= 0)
        m, se = jackknife_pair_mean(np.asarray(values)[..., mine], local[ia[mine]], local[ib[mine]], len(g))
        means.append(m)
        variances.append(se ** 2)
    return _combine_draws(means, variances)


#: the most memory one block of :func:`bootstrap_pair_means`'s resampled pair matrices may take
BOOTSTRAP_BLOCK_BYTES = 2 ** 27


def bootstrap_pair_means(values: np.ndarray, ia: np.ndarray, ib: np.ndarray, S: int,
                         idx: np.ndarray, slots=None) -> np.ndarray:
    """Mean over pairs after resampling members: values (..., P), idx (..., B, S') -> (..., B).

    Replicate b averages M[idx_p, idx_q] over positions p != q that drew different members
    (and, with ``slots`` from :func:`member_bootstrap`, lie in the same slot).
    """
    m = pair_matrix(values, ia, ib, S)  # (..., S, S)
    m = np.where(np.isnan(m), 0.0, m) if np.isfinite(values).all() else m
    lead = m.shape[:-2]
    B = idx.shape[-2]
    flat_m = m.reshape((-1, S, S))
    flat_idx = np.broadcast_to(idx, lead + idx.shape[-2:]).reshape((-1, B, S))
    slots = None if slots is None else np.asarray(slots)
    # the (grid points, B, S, S) resampled matrices in blocks of at most BOOTSTRAP_BLOCK_BYTES: all at
    # once they take G x B x S^2 x 8 bytes (14 GB for 198 grid points of 96 members, B = 1000)
    step = max(1, BOOTSTRAP_BLOCK_BYTES // (8 * B * S * S))
    means = np.empty((flat_m.shape[0], B))
    for start in range(0, flat_m.shape[0], step):
        block = slice(start, start + step)
        means[block] = _resampled_pair_means(flat_m[block], flat_idx[block], slots)
    if not np.isfinite(values).all():
        bad = ~np.isfinite(values).all(-1).reshape(-1)
        means[bad] = np.nan
    return means.reshape(lead + (B,))


def _resampled_pair_means(m: np.ndarray, idx: np.ndarray, slots) -> np.ndarray:
    """m (G, S, S), idx (G, B, S) -> (G, B): the mean of M[idx_p, idx_q] over kept positions p, q."""
    g = np.arange(m.shape[0])[:, None, None, None]
    sub = m[g, idx[:, :, :, None], idx[:, :, None, :]]  # (G, B, S, S)
    keep = idx[:, :, :, None] != idx[:, :, None, :]
    if slots is not None:
        keep = keep & (slots[:, None] == slots[None, :])
    return np.where(keep, sub, 0.0).sum((-1, -2)) / keep.sum((-1, -2))


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN entries stay NaN and do not count as tests)."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    k = int(ok.sum())
    if k == 0:
        return out
    order = np.argsort(p[ok])
    adjusted = np.maximum.accumulate(np.minimum(1.0, (k - np.arange(k)) * p[ok][order]))
    res = np.empty(k)
    res[order] = adjusted
    out[ok] = res
    return out
