"""Two other forms of the metrics: an angular distance and a cross-validated (held-out) score.

* :func:`distance` / :func:`pairwise_distance`: ``arccos(similarity)`` for the metrics whose
  value is the cosine of an angle between two vectors built from the members (CKA: centred
  Gram matrices; Procrustes: the angular shape distance of Williams et al. 2021, as in
  netrep; RSA: RDM triangles; cosine_end_to_end: the maps). An angle between unit vectors
  is a metric -- symmetric, zero for identical members, obeying the triangle inequality -- on
  the members up to the metric's invariances, so a matrix of them can go into MDS,
  hierarchical clustering or a nearest-model search.
* :func:`cross_validated`: for the metrics that fit an alignment map (Procrustes' rotation,
  predictivity's regression, CCA's canonical directions), fit the map on some probes and score
  it on the others, over K folds -- as netrep's ``fit``/``score``. In-sample, a fitted map
  makes independent members look aligned when n is not large against the widths; held out,
  they score near chance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ._api import _check_stacked, evaluate, setup
from ._preconditions import warn_if_uninformative
from ._registry import METRICS, MetricInfo, get_metric


def distance_metrics() -> tuple[str, ...]:
    """Metrics with a distance form (``METRICS[m].distance`` non-empty)."""
    return tuple(m for m, info in METRICS.items() if info.distance)


def heldout_metrics() -> tuple[str, ...]:
    """Metrics with a held-out score (``METRICS[m].heldout``), for :func:`cross_validated`."""
    return tuple(m for m, info in METRICS.items() if info.heldout is not None)


def _distance_info(metric: str, options: dict) -> MetricInfo:
    info = get_metric(metric)
    if not info.distance:
        raise ValueError(f"{metric} has no distance form (its value is not the cosine of an angle); "
                         f"metrics with one: {', '.join(distance_metrics())}")
    if metric == "procrustes" and options.get("kind", "nuclear") != "nuclear":
        raise ValueError("procrustes: the distance is arccos of the nuclear form, so kind does not apply "
                         f"(got kind={options['kind']!r}); leave it out")
    return info


def _angle(similarity):
    return np.arccos(np.clip(similarity, -1.0, 1.0))


def distance(a, b, metric: str, **options) -> float:
    """Angular distance ``arccos(metric(a, b))`` in radians, for the metrics that have one.

    ``metric``: ``cka_linear``, ``cka_linear_debiased``, ``cka_rbf`` (arccos of CKA, the angle
    between the centred kernel matrices), ``procrustes`` (arccos ||A~^T B~||_*, the angular shape
    distance of Williams et al. 2021 and netrep, in [0, pi/2]), ``rsa``, ``cosine_end_to_end``
    (see ``METRICS[metric].distance``). It is a metric on members up to the similarity's
    invariances: symmetric, 0 for identical members, and obeying the triangle inequality.
    Near 0 it resolves differences only down to about sqrt(2 x 1e-16) ~ 1.5e-8 rad (arccos of a
    value within rounding of 1), so a member against itself gives 0 to ~1e-8. Inputs and options
    as for :func:`compare`; the same :class:`UninformativeWarning`.
    """
    info = _distance_info(metric, options)
    info, opts, members, eps = setup([a, b], metric, options)
    value = float(evaluate(members, info, opts, pair=True))
    warn_if_uninformative(members, info, opts, eps)
    return float(_angle(value))


def pairwise_distance(reps, metric: str, **options) -> np.ndarray:
    """The (S, S) matrix of :func:`distance` for all members at once (zero diagonal, symmetric),
    ready for MDS or clustering (e.g. ``scipy.cluster.hierarchy.linkage(squareform(D))``).
    Inputs and options as for :func:`pairwise`."""
    info = _distance_info(metric, options)
    _check_stacked(reps, info)
    info, opts, members, eps = setup(reps, metric, options)
    if len(members) == 1:
        evaluate(members + members, info, opts, pair=True)
        return np.zeros((1, 1))
    sim = evaluate(members, info, opts, pair=False).detach().cpu().numpy().astype(np.float64, copy=True)
    warn_if_uninformative(members, info, opts, eps)
    out = _angle(0.5 * (sim + sim.T))
    np.fill_diagonal(out, 0.0)
    return out


@dataclass(frozen=True)
class HeldOutScore:
    """Result of :func:`cross_validated`: the mean over folds and each fold's held-out score."""

    mean: float
    scores: np.ndarray
    metric: str
    folds: int
    seed: object

    def __repr__(self) -> str:
        return (f"HeldOutScore(metric={self.metric!r}, mean={self.mean:.6g}, folds={self.folds}, "
                f"scores={np.array2string(self.scores, precision=4)})")


def fold_indices(n: int, folds: int, seed) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) probe indices of K folds: a seeded random permutation of the n probes, fold f
    holding every K-th probe of it from position f; indices sorted within each set."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    order = rng.permutation(n)
    out = []
    for f in range(folds):
        test = np.sort(order[f::folds])
        train = np.sort(np.setdiff1d(order, test, assume_unique=True))
        out.append((train, test))
    return out


#: Fewest held-out probes per fold (a correlation or an R^2 over fewer says little).
MIN_TEST_PROBES = 3


def cross_validated(a, b, metric: str, *, folds: int = 5, seed=0, **options) -> HeldOutScore:
    """Held-out score of a fitted metric: fit its alignment map on K - 1 folds of the probes and
    score it on the remaining fold, for each of K folds (netrep's ``fit``/``score``).

    ``metric``:

    * ``procrustes``: the rotation Q fitted on the training probes; score = cosine between the
      held-out A and the held-out B rotated by Q (each centred by its own mean), or its
      angular form with ``kind='angular'``.
    * ``linear_predictivity``: the ridge regression fitted on the training probes (its ``ridge``;
      "cv" is chosen by an inner cross-validation with the metric's ``folds`` option on the
      training probes); score = variance-weighted R^2 on the held-out probes; ``direction``
      as the metric's. (The metric itself already pools interleaved out-of-fold predictions;
      this gives per-fold scores on random folds.)
    * ``cca``, ``svcca``, ``pwcca``: canonical directions fitted on the training probes (the
      metric's ``ridge``, ``rank_eps``, ``variance``); score = the metric's summary of the
      held-out correlations of the canonical variates.

    Folds: a random permutation of the probes from ``seed`` (an int, a Generator or None), fold f
    its every K-th probe from position f (:func:`fold_indices`); each fold needs at least 3
    probes. Returns a :class:`HeldOutScore` with the mean over folds and the per-fold scores.
    Identical members score 1 (when the training probes span them); members unrelated beyond
    what a map fitted on the training probes can absorb score near chance (about 0, for
    predictivity slightly below), well below the in-sample value when n is not large against the
    widths. Inputs as for :func:`compare`.
    """
    info = get_metric(metric)
    if info.heldout is None:
        raise ValueError(f"{metric} fits no alignment map, so it has no held-out score; metrics with "
                         f"one: {', '.join(heldout_metrics())}")
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    info, opts, members, _ = setup([a, b], metric, options)
    n = members[0].shape[0]
    if n < MIN_TEST_PROBES * folds:
        raise ValueError(f"{folds} folds of at least {MIN_TEST_PROBES} held-out probes need n >= "
                         f"{MIN_TEST_PROBES * folds} probes, got n = {n}")
    device = members[0].device
    scores = []
    with torch.no_grad():
        for train, test in fold_indices(n, int(folds), seed):
            tr = torch.as_tensor(train, device=device)
            te = torch.as_tensor(test, device=device)
            scores.append(float(info.heldout(members[0], members[1], tr, te, opts)))
    scores = np.asarray(scores)
    if not np.isfinite(scores).all():
        raise ValueError(f"{metric}: a fold's held-out score is not finite ({scores}); a member may be "
                         f"constant on some fold's probes")
    return HeldOutScore(float(scores.mean()), scores, metric, int(folds), seed)


__all__ = ["HeldOutScore", "cross_validated", "distance", "distance_metrics", "fold_indices",
           "heldout_metrics", "pairwise_distance"]
