"""Chance levels of the alignment metrics: the permutation baseline.

Shuffling the probe order of one member breaks the correspondence between the two members'
responses to the same probe and nothing else (each member's own geometry is kept), so the
metric on a shuffled pair is what the metric gives for two representations that share no
probe-wise structure: its chance level.

For one grid point (metric, layer, snr, n) the pipeline takes K = ``draws`` shuffled pairs,
vectorised with ``alignlib.metrics.pairwise``: a round shuffles the probes of m members, each by
its own permutation from ``alignlib.seeding.stream(base_seed, task, "chance", metric, layer,
snr, n, round, slot)``, and takes ``pairwise`` of the m shuffled members; its pairs (i < j, in
``alignment.member_pairs`` order) are draws, m is the smallest number giving the draws still
needed (at most the S members), and round r uses the m members from position r*m (cyclically),
so successive rounds reach every member. A pair of two shuffled members is a pair with one
member shuffled: ``metric(x_i P_i, x_j P_j) = metric(x_i, x_j P_j P_i^-1)`` for a metric that is
unchanged when both members' probes are reordered alike (all of them; linear_predictivity's
folds are positional, so there it holds in distribution), and P_j P_i^-1 is a uniform random
permutation. Per-member work (kernels, neighbour ranks, SVDs) dominates the metrics' cost, so
m members give m(m-1)/2 draws for about m/S of the alignment's own cost, where K separate pair
comparisons would cost about 2K/S. Every draw depends on its keys alone: the same config gives
the same chance, in any align job. ``alignment.nc`` stores the mean of the draws (``chance``)
and their 95th percentile (``chance_hi``); see :func:`summarise`.

End-to-end metrics (``cosine_end_to_end``) compare weights, not responses to probes: there is
nothing to shuffle, so their chance is NaN with :data:`END_TO_END_REASON`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from alignlib.metrics._api import pairwise
from alignlib.metrics._preconditions import UninformativeWarning
from alignlib.metrics._registry import get_metric
from alignlib.seeding import stream

#: Why an end-to-end metric has no chance level.
END_TO_END_REASON = ("compares the members' end-to-end maps (weights), not their responses to "
                     "probes: there is no probe order to shuffle, so no chance level")

#: The quantile of the draws stored as ``chance_hi``.
CHANCE_QUANTILE = 0.95


def chance_reason(metric: str) -> str:
    """"" when the metric has a permutation baseline, else why not (end-to-end metrics)."""
    return END_TO_END_REASON if get_metric(metric).needs != "activations" else ""


def round_size(draws: int, members: int) -> int:
    """The smallest m <= members whose m(m-1)/2 pairs hold ``draws`` draws (members when none does)."""
    m = 2
    while m < members and m * (m - 1) // 2 < draws:
        m += 1
    return m


def chance_rounds(members: int, draws: int) -> list[tuple[np.ndarray, int]]:
    """The rounds of a chance computation: (member positions shuffled in the round, draws it gives)."""
    if members < 2:
        raise ValueError(f"a chance level needs at least 2 members, got {members}")
    if draws < 0:
        raise ValueError(f"draws must be >= 0, got {draws}")
    rounds, left, r = [], draws, 0
    while left > 0:
        m = round_size(left, members)
        take = min(left, m * (m - 1) // 2)
        rounds.append(((r * m + np.arange(m)) % members, take))
        left, r = left - take, r + 1
    return rounds


@dataclass(frozen=True)
class ChanceKey:
    """What seeds the chance draws of one grid point: (base_seed, task, metric, layer, snr, n)."""

    base_seed: int
    task: str
    metric: str
    layer: str
    snr: float
    n: int


def draw_permutation(probes: int, key: ChanceKey, round_: int, slot: int) -> np.ndarray:
    """The probe permutation of one member (slot) in one round, from its own seeded stream."""
    return stream(int(key.base_seed), str(key.task), "chance", str(key.metric), str(key.layer), float(key.snr),
                  int(key.n), int(round_), int(slot)).permutation(probes)


def shuffled_pairwise(reps, perms, metric: str, **options) -> np.ndarray:
    """``pairwise`` of the members with their probes reordered, member i by ``perms[i]``.

    ``reps``: (S, n, d) or a list of (n, d) arrays or tensors (torch input is computed on its
    device); ``perms``: integer permutations of the n probes, one per member (None: left as it is).
    The one implementation of shuffled probes: ``alignlib.stats.probes.permutation_baseline`` uses it too.
    It emits no :class:`~alignlib.metrics.UninformativeWarning`: a chance draw is the baseline such a
    warning points to, and its callers warn (``stats``) or flag the cell (``compute_alignment``) once.
    """
    if get_metric(metric).needs != "activations":
        raise ValueError(f"{metric} {END_TO_END_REASON}")
    shuffled = []
    for x, perm in zip(reps, perms):
        if perm is None:
            shuffled.append(x)
            continue
        index = np.asarray(perm)
        shuffled.append(x[torch.as_tensor(index, device=x.device)] if isinstance(x, torch.Tensor) else x[index])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UninformativeWarning)
        return pairwise(shuffled, metric, **options)


def chance_draws(block, key: ChanceKey, draws: int, *, options: dict | None = None, keep=None) -> np.ndarray:
    """The K = ``draws`` shuffled-pair values of one grid point, ``key`` = (base_seed, task, metric,
    layer, snr, n); ``options``: the metric's options.

    ``block``: the members' representations (S, probes, units), NumPy or torch; ``keep``: (S,)
    bool, the members that count (diverged ones left out), None = all. Returns (draws,) float64,
    all NaN when fewer than 2 members count or the metric has no chance level.
    """
    out = np.full(draws, np.nan)
    index = np.arange(len(block)) if keep is None else np.flatnonzero(keep)
    if draws == 0 or len(index) < 2 or chance_reason(key.metric):
        return out
    probes, filled = block.shape[1], 0
    for r, (positions, take) in enumerate(chance_rounds(len(index), draws)):
        perms = [draw_permutation(probes, key, r, t) for t in range(len(positions))]
        matrix = shuffled_pairwise([block[int(index[p])] for p in positions], perms, key.metric, **(options or {}))
        ia, ib = np.triu_indices(len(positions), k=1)  # member_pairs order: (0, 1), (0, 2), ..., (1, 2), ...
        out[filled:filled + take] = matrix[ia[:take], ib[:take]]
        filled += take
    return out


def summarise(draws: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """(mean, 95th percentile) of the draws along ``axis``; NaN where the draws are NaN."""
    draws = np.asarray(draws, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        mean = draws.mean(axis=axis)
        hi = np.quantile(draws, CHANCE_QUANTILE, axis=axis) if draws.shape[axis] else mean
    return mean, hi
