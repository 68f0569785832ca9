"""Uncertainty and chance levels for alignment metrics.

* :func:`bootstrap_probes` / :func:`bootstrap_probes_pair`: percentile bootstrap
  confidence intervals from resampling probes (the same probe indices for every
  member), for the whole (S, S) matrix or for one pair.
* :func:`bootstrap_members`: a confidence interval for the mean alignment over
  member pairs, resampling members.
* :func:`permutation_baseline` / :func:`permutation_baseline_pair`: the chance level,
  i.e. the metric after shuffling the probe order of one member, which breaks the
  probe correspondence and nothing else.

Every function takes ``seed`` (an int, a ``numpy.random.Generator`` or None) and is
deterministic for a given int seed. Resampling with replacement duplicates probes;
for neighbour-based metrics (information imbalance, k-NN overlap, mutual k-NN) and
RSA, a duplicated probe is its own nearest neighbour in every member, which inflates
alignment, so for them use ``replace=False`` with ``fraction < 1`` (subsampling).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from alignlib.stats.chance import shuffled_pairwise
from alignlib.metrics._api import evaluate, prepare
from alignlib.metrics._registry import get_metric, resolve_options

__all__ = [
    "Interval",
    "NullDistribution",
    "bootstrap_members",
    "bootstrap_probes",
    "bootstrap_probes_pair",
    "permutation_baseline",
    "permutation_baseline_pair",
]


@dataclass(frozen=True)
class Interval:
    """A point estimate, a percentile interval at ``level`` and the resampled values."""

    estimate: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray
    level: float
    samples: np.ndarray


@dataclass(frozen=True)
class NullDistribution:
    """The metric on the real data (``observed``) and after probe shuffles (``null``).

    ``mean`` is the chance level, ``low``/``high`` the central ``level`` band of the null,
    ``p_value`` the one-sided permutation p-value (1 + #{null >= observed}) / (1 + n_perm).
    """

    observed: float | np.ndarray
    null: np.ndarray
    mean: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray
    level: float
    p_value: float | np.ndarray


def _rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def _check_level(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    return float(level)


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _band(samples: np.ndarray, level: float):
    lo, hi = np.quantile(samples, [(1.0 - level) / 2.0, (1.0 + level) / 2.0], axis=0)
    return lo, hi


def _setup(reps, metric: str, options: dict):
    info = get_metric(metric)
    opts = resolve_options(info, options)
    if info.needs != "activations":
        raise ValueError(f"{metric} compares whole maps, not probes; probe resampling does not apply")
    return info, opts, prepare(reps, info)


def _matrix(members, info, opts) -> np.ndarray:
    out = evaluate(members, info, opts, pair=False).cpu().numpy()
    return out


def _resample_index(rng: np.random.Generator, n: int, replace: bool, fraction: float) -> np.ndarray:
    size = round(fraction * n)
    if not replace and size >= n:
        raise ValueError("replace=False needs fraction < 1 (subsampling without replacement)")
    if size < 2:
        raise ValueError(f"fraction={fraction} leaves fewer than 2 probes")
    return rng.choice(n, size=size, replace=replace)


def _probe_samples(members, info, opts, n_boot, seed, replace, fraction, pair):
    rng = _rng(seed)
    n = members[0].shape[0]
    out = []
    for _ in range(n_boot):
        idx = torch.as_tensor(_resample_index(rng, n, replace, fraction), device=members[0].device)
        sub = [m[idx] for m in members]
        if pair:
            out.append(float(evaluate(sub, info, opts, pair=True)))
        else:
            out.append(_matrix(sub, info, opts))
    return np.asarray(out)


def bootstrap_probes(reps, metric: str, *, n_boot: int = 200, level: float = 0.95, seed=None,
                     replace: bool = True, fraction: float = 1.0, **options) -> Interval:
    """Percentile bootstrap over probes for the whole (S, S) matrix of ``pairwise(reps, metric)``.

    Each replicate draws ``round(fraction * n)`` probe indices (with replacement by default)
    and recomputes all pairs on those probes. Returns an :class:`Interval` of (S, S) arrays;
    ``samples`` has shape (n_boot, S, S).
    """
    info, opts, members = _setup(reps, metric, options)
    n_boot, level = _check_count(n_boot, "n_boot"), _check_level(level)
    estimate = _matrix(members, info, opts) if len(members) > 1 else np.ones((1, 1))
    samples = _probe_samples(members, info, opts, n_boot, seed, replace, fraction, pair=False)
    low, high = _band(samples, level)
    return Interval(estimate, low, high, level, samples)


def bootstrap_probes_pair(a, b, metric: str, *, n_boot: int = 1000, level: float = 0.95, seed=None,
                          replace: bool = True, fraction: float = 1.0, **options) -> Interval:
    """Percentile bootstrap over probes for ``compare(a, b, metric)`` (floats; samples (n_boot,))."""
    info, opts, members = _setup([a, b], metric, options)
    n_boot, level = _check_count(n_boot, "n_boot"), _check_level(level)
    estimate = float(evaluate(members, info, opts, pair=True))
    samples = _probe_samples(members, info, opts, n_boot, seed, replace, fraction, pair=True)
    low, high = _band(samples, level)
    return Interval(estimate, float(low), float(high), level, samples)


def bootstrap_members(matrix, *, n_boot: int = 1000, level: float = 0.95, seed=None) -> Interval:
    """Bootstrap CI for the mean alignment over member pairs.

    ``matrix`` is a square (S, S) ``pairwise`` result (the statistic is the mean over
    ordered pairs i != j) or a rectangular (S_a, S_b) block between two ensembles (the mean
    of all entries). Square: each replicate resamples S members with replacement and
    averages ``M[I_p, I_q]`` over positions p != q that drew different members (a member
    is never paired with itself). Rectangular: rows and columns are resampled independently.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or min(m.shape) < 1:
        raise ValueError(f"matrix must be 2-D, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("matrix contains NaN or infinite values")
    n_boot, level = _check_count(n_boot, "n_boot"), _check_level(level)
    rng = _rng(seed)
    square = m.shape[0] == m.shape[1]
    if square:
        S = m.shape[0]
        if S < 2:
            raise ValueError("need at least 2 members to average over pairs")
        off = ~np.eye(S, dtype=bool)
        estimate = float(m[off].mean())
        samples = np.empty(n_boot)
        for b in range(n_boot):
            while True:
                idx = rng.integers(0, S, size=S)
                keep = idx[:, None] != idx[None, :]
                if keep.any():
                    break
            samples[b] = m[np.ix_(idx, idx)][keep].mean()
    else:
        estimate = float(m.mean())
        samples = np.array([m[np.ix_(rng.integers(0, m.shape[0], m.shape[0]),
                                     rng.integers(0, m.shape[1], m.shape[1]))].mean()
                            for _ in range(n_boot)])
    low, high = _band(samples, level)
    return Interval(estimate, float(low), float(high), level, samples)


def permutation_baseline(reps, metric: str, *, n_perm: int = 20, level: float = 0.95, seed=None,
                         **options) -> NullDistribution:
    """Chance level of every entry of ``pairwise(reps, metric)``.

    Each permutation draws an independent probe shuffle ``P_j`` per member and records
    ``metric(reps[i], reps[j][P_j])`` for all (i, j), the diagonal included (a member
    against a shuffled copy of itself). ``null`` has shape (n_perm, S, S); ``p_value`` is
    per entry.
    """
    info, opts, members = _setup(reps, metric, options)
    n_perm, level = _check_count(n_perm, "n_perm"), _check_level(level)
    rng = _rng(seed)
    S, n = len(members), members[0].shape[0]
    observed = _matrix(members, info, opts) if S > 1 else np.ones((1, 1))
    null = []
    for _ in range(n_perm):
        perms = [rng.permutation(n) for _ in members]
        null.append(shuffled_pairwise(members + members, [None] * S + perms, metric, **opts)[:S, S:])
    return _null(observed, np.asarray(null), level)


def permutation_baseline_pair(a, b, metric: str, *, n_perm: int = 200, level: float = 0.95, seed=None,
                              **options) -> NullDistribution:
    """Chance level of ``compare(a, b, metric)``: the metric after shuffling b's probe order."""
    info, opts, members = _setup([a, b], metric, options)
    n_perm, level = _check_count(n_perm, "n_perm"), _check_level(level)
    rng = _rng(seed)
    observed = float(evaluate(members, info, opts, pair=True))
    n = members[0].shape[0]
    null = np.array([shuffled_pairwise(members, [None, rng.permutation(n)], metric, **opts)[0, 1]
                     for _ in range(n_perm)])
    res = _null(observed, null, level)
    return NullDistribution(observed, null, float(res.mean), float(res.low), float(res.high), level,
                            float(res.p_value))


def _null(observed, null: np.ndarray, level: float) -> NullDistribution:
    low, high = _band(null, level)
    p = (1.0 + (null >= observed).sum(0)) / (1.0 + null.shape[0])
    return NullDistribution(observed, null, null.mean(0), low, high, level, p)
