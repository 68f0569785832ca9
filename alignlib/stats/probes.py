"""Uncertainty and chance levels for alignment metrics.

* :func:`bootstrap_probes` / :func:`bootstrap_probes_pair`: confidence intervals from
  resampling probes (the same probe indices for every member), for the whole (S, S) matrix
  or for one pair. By default by subsampling *without* replacement (80 % of the probes, the
  spread rescaled to n probes): resampling with replacement duplicates probes, and a
  duplicated probe inflates CKA, Procrustes, CCA, predictivity (a duplicated probe can sit
  in the training and the held-out fold) and the neighbour metrics, so the classic
  percentile bootstrap's intervals could exclude the point estimate itself (n = 500,
  d = 64: cka_linear 0.391 against [0.442, 0.467]).
* :func:`bootstrap_members`: a confidence interval for the mean alignment over member
  pairs, resampling members.
* :func:`permutation_baseline` / :func:`permutation_baseline_pair`: the chance level,
  i.e. the metric after shuffling the probe order of one member, which breaks the
  probe correspondence and nothing else.

Every function takes ``seed`` (an int, a ``numpy.random.Generator`` or None) and is
deterministic for a given int seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from alignlib.stats.chance import shuffled_pairwise
from alignlib.metrics._api import evaluate, setup
from alignlib.metrics._preconditions import warn_if_uninformative

from alignlib.stats import __all__  # noqa: E402  (the package lists these names without importing torch)


@dataclass(frozen=True, repr=False)
class Interval:
    """A point estimate, an interval at ``level``, how it was made, and the resampled values.

    ``method`` names the scheme (e.g. "subsample: 250 of 500 probes without replacement,
    rescaled to n"); ``samples`` holds the metric on each resample (``n_resamples`` of them;
    not shown in the repr).
    """

    estimate: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray
    level: float
    samples: np.ndarray
    method: str = "percentile bootstrap"

    @property
    def n_resamples(self) -> int:
        return int(np.shape(self.samples)[0])

    def __repr__(self) -> str:
        def show(v):
            return f"{v:.6g}" if np.ndim(v) == 0 else np.array2string(np.asarray(v), precision=4, threshold=50)
        return (f"Interval(estimate={show(self.estimate)}, low={show(self.low)}, high={show(self.high)}, "
                f"level={self.level:g}, method={self.method!r}, n_resamples={self.n_resamples})")


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
    """(info, options, members) for the probe-resampling functions; warns once (on the full data)
    when the metric's preconditions fail, not once per resample."""
    info, opts, members, eps = setup(reps, metric, options)
    if info.needs != "activations":
        raise ValueError(f"{metric} compares whole maps, not probes; probe resampling does not apply")
    warn_if_uninformative(members, info, opts, eps, stacklevel=4)
    return info, opts, members


def _matrix(members, info, opts) -> np.ndarray:
    out = evaluate(members, info, opts, pair=False).cpu().numpy()
    return out


#: Probe-resampling schemes of :func:`bootstrap_probes` and :func:`bootstrap_probes_pair`.
PROBE_METHODS = ("subsample", "bootstrap")
#: Default fraction of the probes each resample keeps, per scheme.
DEFAULT_FRACTION = {"subsample": 0.8, "bootstrap": 1.0}


def _probe_plan(method: str, fraction, n: int) -> tuple[int, str]:
    """(probes per resample, description) for a scheme; ValueError for a bad combination."""
    if method not in PROBE_METHODS:
        raise ValueError(f"method must be one of {list(PROBE_METHODS)}, got {method!r}")
    fraction = DEFAULT_FRACTION[method] if fraction is None else float(fraction)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r}")
    size = round(fraction * n)
    if method == "subsample" and size >= n:
        raise ValueError(f"method='subsample' draws without replacement and needs fraction < 1 (a proper "
                         f"subset of the n = {n} probes), got fraction={fraction!r}")
    if size < 3:
        raise ValueError(f"fraction={fraction!r} of n = {n} leaves {size} probes per resample; the metrics need "
                         f"at least 3")
    if method == "subsample":
        return size, f"subsample: {size} of {n} probes without replacement, spread rescaled to n"
    return size, f"percentile bootstrap: {size} of {n} probes with replacement"


def _probe_samples(members, info, opts, n_boot, rng, size, replace, pair):
    n = members[0].shape[0]
    out = []
    for _ in range(n_boot):
        idx = torch.as_tensor(rng.choice(n, size=size, replace=replace), device=members[0].device)
        sub = [m[idx] for m in members]
        if pair:
            out.append(float(evaluate(sub, info, opts, pair=True)))
        else:
            out.append(_matrix(sub, info, opts))
    return np.asarray(out)


def _probe_band(estimate, samples: np.ndarray, level: float, method: str, size: int, n: int):
    """(low, high). Bootstrap: percentiles of the samples. Subsample: percentiles of
    ``estimate + sqrt(m / (n - m)) (samples - mean(samples))``, the subsamples' spread about
    their own mean, moved to the estimate and rescaled from m to n probes."""
    if method == "bootstrap":
        return _band(samples, level)
    spread = math.sqrt(size / (n - size)) * (samples - samples.mean(0))
    return _band(estimate + spread, level)


INTERVAL_NOTES = """

    Schemes (``method``):

    * ``"subsample"`` (default): each of ``n_boot`` resamples draws m = ``fraction`` x n probes
      (default 0.8) *without* replacement, so no probe is duplicated, and recomputes the metric.
      A subset of m of the n probes varies about the full-data value with variance
      sigma^2 (1/m - 1/n) = sigma^2 (n - m) / (m n) (sampling from the finite set of n probes),
      while the estimate varies with sigma^2 / n, so the subsamples' variance times m / (n - m)
      estimates the estimate's (the delete-d jackknife's factor, Shao & Wu 1989: 4 for the
      default m = 0.8 n). m close to n keeps the subsamples' spread close to the spread at n for
      metrics whose variance is not proportional to 1/n at small n (predictivity at n = 100,
      d = 16: with half-samples its 95 % interval covered the mean at n in 100 % of a pilot
      simulation's repetitions, with m = 0.8 n in 98 %). The interval is the ``level``
      percentile range of ``estimate + sqrt(m / (n - m)) (sample - mean(samples))``: the
      subsamples' spread, rescaled to n probes and centred on the point estimate (which it
      contains unless that spread is extremely skewed; no duplicates inflate it).
    * ``"bootstrap"``: the classic percentile bootstrap with replacement (``fraction`` 1). A
      duplicated probe is its own nearest neighbour and counts twice in every Gram matrix, so
      it inflates CKA, Procrustes, CCA, predictivity and the neighbour metrics: at n = 500, d = 64
      the 95 % interval for cka_linear was [0.442, 0.467] around an estimate of 0.391. Kept for
      comparison; do not use it for those metrics.

    What the interval covers. It describes the metric's *sampling variability at this n*: how
    the value would move on another draw of n probes. It is not corrected for the metric's bias
    in n, and most metrics are biased in n -- their expected value at n probes differs from
    the value with infinitely many, which is what a "population" alignment would be:

    * biased upwards: ``cka_linear``, ``cka_rbf`` (by O(d_eff / n), d_eff the effective number of
      dimensions: large when n is not much above the width), ``procrustes`` (by O(sqrt(d / n)):
      the nuclear norm adds up the noise singular values of every unrelated direction, so
      the bias shrinks only as 1 / sqrt(n)), ``cca``, ``svcca``, ``pwcca`` (by ~ r / n, r the
      ranks; see the UninformativeWarning), ``soft_matching`` (matching picks the largest noise
      correlations, O(1 / sqrt(n)));
    * biased downwards: ``linear_predictivity`` (held-out R^2 grows with the training probes,
      by ~ d / n), ridge CCA (held-out correlations);
    * nearly unbiased: ``cka_linear_debiased`` (unbiased HSIC in numerator and denominator;
      the ratio's bias is O(1 / n)), ``rsa`` (a correlation over probe pairs, O(1 / n));
    * defined per n: the neighbour metrics (``information_imbalance``, ``neighborhood_overlap``,
      ``mutual_knn``) compare the k nearest of n probes, so a subsample of m probes measures a
      coarser neighbourhood; their subsample interval is only indicative.

    Coverage, by simulation: ``python benchmarks/bench_probe_intervals.py --jobs 2`` (62 min on 2 cores)
    (two members sharing a 4-dimensional Gaussian latent, 16 units each, unit noise; population
    values in closed form; 400 repetitions of 200 subsamples per row, 100 of 100 for the CV
    ridge; nominal 0.95, +- the Monte-Carlo 95 % margin)::

        metric                   n   covers population value   covers mean at n   population   mean at n
        cka_linear             100      0.940 +- 0.023           0.955 +- 0.020       0.8177       0.8261
        cka_linear             500      0.927 +- 0.025           0.927 +- 0.025       0.8177       0.8192
        procrustes             100      0.015 +- 0.012           0.948 +- 0.022       0.7803       0.8297
        procrustes             500      0.077 +- 0.026           0.935 +- 0.024       0.7803       0.8006
        linear_predictivity    100      0.155 +- 0.035           0.983 +- 0.013       0.7518       0.6806
          (ridge 0)            500      0.693 +- 0.045           0.935 +- 0.024       0.7518       0.7399
        linear_predictivity    100      0.630 +- 0.095           0.980 +- 0.027       0.7518       0.7133
          (CV ridge)           500      0.840 +- 0.072           0.950 +- 0.043       0.7518       0.7436

    Not within 2 % of nominal: the population value for procrustes (upward bias of several
    interval widths, shrinking as 1/sqrt(n)) and linear_predictivity (downward bias) at both n,
    and for cka_linear at n = 500 (0.927; its bias there is small, 0.0015, so this is the
    interval's own slight undercoverage, within the Monte-Carlo margin of 0.95); the mean at n
    for cka_linear at n = 500 (0.927, same) and linear_predictivity at n = 100 (0.98 with both
    ridges: conservative -- fitted on 0.8 of 80 training probes, the regression varies more
    than the 1/n scaling of the rescaling assumes).
    """


def bootstrap_probes(reps, metric: str, *, n_boot: int = 200, level: float = 0.95, seed=None,
                     method: str = "subsample", fraction: float | None = None, **options) -> Interval:
    """Probe-resampling interval for the whole (S, S) matrix of ``pairwise(reps, metric)``.

    Each resample recomputes all pairs on the same probe subset; the interval is per entry.
    Returns an :class:`Interval` of (S, S) arrays; ``samples`` has shape (n_boot, S, S).
    ``method``, ``fraction``: see below; the same as :func:`bootstrap_probes_pair`.
    """
    info, opts, members = _setup(reps, metric, options)
    n_boot, level = _check_count(n_boot, "n_boot"), _check_level(level)
    n = members[0].shape[0]
    size, described = _probe_plan(method, fraction, n)
    estimate = _matrix(members, info, opts) if len(members) > 1 else np.ones((1, 1))
    samples = _probe_samples(members, info, opts, n_boot, _rng(seed), size, method == "bootstrap", pair=False)
    low, high = _probe_band(estimate, samples, level, method, size, n)
    return Interval(estimate, low, high, level, samples, described)


def bootstrap_probes_pair(a, b, metric: str, *, n_boot: int = 1000, level: float = 0.95, seed=None,
                          method: str = "subsample", fraction: float | None = None, **options) -> Interval:
    """Probe-resampling interval for ``compare(a, b, metric)`` (floats; ``samples`` (n_boot,))."""
    info, opts, members = _setup([a, b], metric, options)
    n_boot, level = _check_count(n_boot, "n_boot"), _check_level(level)
    n = members[0].shape[0]
    size, described = _probe_plan(method, fraction, n)
    estimate = float(evaluate(members, info, opts, pair=True))
    samples = _probe_samples(members, info, opts, n_boot, _rng(seed), size, method == "bootstrap", pair=True)
    low, high = _probe_band(estimate, samples, level, method, size, n)
    return Interval(estimate, float(low), float(high), level, samples, described)


bootstrap_probes.__doc__ += INTERVAL_NOTES
bootstrap_probes_pair.__doc__ += INTERVAL_NOTES


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
    return Interval(estimate, float(low), float(high), level, samples, "percentile bootstrap over members")


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
