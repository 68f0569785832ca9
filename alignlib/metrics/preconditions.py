"""Cells where an alignment metric is uninformative by construction.

Each function takes one grid point's members as a float64 array ``block`` of shape
(S members, n probes, d units) -- the values as they were *stored* (float32 or float16
cubes), converted to float64 -- the storage dtype, and the metric's options, and returns
None when the metric is informative there, or a one-line reason why its value would be
fixed by construction rather than by the members. ``compute_alignment`` stores NaN for
such cells and the reason in ``alignment_note(metric, layer)``. NumPy only (no torch).

The rules, and why:

CCA family (``cca``, ``svcca``, ``pwcca``; ridge = 0 only -- with ridge > 0 the correlations
are measured on held-out probes, see ``alignlib.metrics.cca``, and neither rule applies).
Ranks are numerical ranks at the storage precision (:func:`rank_tolerance`).

* ``n <= rank + 1``: a member spans all n - 1 centred probe dimensions, so every
  canonical correlation with any other member is 1.
* The layer is an invertible linear map of the probe inputs: every member's centred
  representation lies in the centred probe inputs' column space (residual of its
  projection onto that space within the member's own rank tolerance) and has the same
  rank, i.e. rank(H_c) == rank([H_c, X_c]) == rank(X_c) at the storage tolerance. All
  members then span one and the same space and every canonical correlation is 1
  whatever the members compute (the linear network's hidden layer: width 100 >= d = 50,
  no bias). For ``svcca`` the test applies to the PCA-kept directions: when the 99 %
  variance cut keeps fewer directions than rank(X_c) (the linear hidden layer keeps one,
  its learned rank-one part) SVCCA compares those and stays informative.
  Needs the probe inputs; without them only the first rule is checked.

k-NN family (``mutual_knn``, ``neighborhood_overlap``, ``information_imbalance``):

* Ties at storage precision. Storage rounds each stored entry by at most eps/2 of
  itself, so a probe vector h moves by at most (eps/2)|h|. That bounds how much the
  metric's ranking quantity can move: a cosine similarity by eps sin(theta) (theta the
  angle between the two probes), a Euclidean distance by (eps/2)(|h_i| + |h_j|) (raw,
  uncentred norms: rounding acts on the stored values). For each probe, a top-k
  neighbour whose quantity is within the two bounds of the (k+1)-th neighbour's is
  *tied* with it: rounding alone could swap them. A probe's neighbour set is decided by
  ties when at least half of its k neighbours are tied so; a member is degenerate when
  that holds for more than half of its probes (counted on ~128 evenly spaced probes). This catches single-unit layers (all
  cosines +-1), layers where most probes are silent (all cosines 0), duplicated or
  quantised probes, and residues destroyed by float16 storage. It does not flag a
  boundary that is merely close (each swap changes the overlap by 1/k): with a float16
  cube of 512 probes x 100 Gaussian units the k = 10 boundary gaps are ~3 float16
  eps, yet fewer than 1 % of probes have half their neighbours tied.
* ``mutual_knn`` only: a collapsed layer. Cosines of raw (uncentred) probe vectors are
  +-1 up to O(rho) when all but a fraction rho of the member's energy lies along one
  direction; the cosine neighbour sets are then set by that residue, not by the
  dominant part. Flagged when rho <= :data:`RANK_ONE_RESIDUE` (1e-3, a residue below
  ~3 % of the dominant part in amplitude). This is the linear network's hidden layer:
  a learned rank-one map plus the 1e-3 initialisation (rho ~ 1e-5 to 3e-4), where
  members with identical end-to-end maps score ~0.5. It is not a storage tie: in
  float32 the k-th/(k+1)-th cosine gaps there are ~6 eps (a few 1e-7) but rounding
  moves those cosines by <= eps sin(theta) ~ 2e-10, so the order is reproducible -- and
  in units of the dtype's eps these gaps look like those of a float16 Gaussian layer,
  which is informative. No precision-based threshold separates the two; the collapse
  does. Euclidean metrics (centred) are not affected: on a rank-one layer they rank
  probes along its one direction, which is what the layer computes.

Grid points are flagged when any member is degenerate (all its pairs are).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from alignlib.metrics.ranks import F64_EPS, rank_tolerance  # noqa: F401  (rank_tolerance: part of this module's API)

CCA_FAMILY = ("cca", "svcca", "pwcca")
#: k-NN metrics and the quantity they rank neighbours by.
KNN_METRICS = {"mutual_knn": "cosine", "neighborhood_overlap": "euclidean",
               "information_imbalance": "euclidean"}
#: A member is tie-degenerate when more than this fraction of its probes have tied neighbour sets.
TIED_PROBE_FRACTION = 0.5
#: mutual_knn: a member with at most this fraction of its (uncentred) energy outside its
#: leading direction is collapsed.
RANK_ONE_RESIDUE = 1e-3
#: Ties are counted on at most about this many evenly spaced probes of each member (speed).
TIE_SAMPLE = 128


def storage_eps(dtype) -> float:
    """Machine epsilon of a storage dtype (float64's for None or a non-float dtype)."""
    dt = np.dtype(np.float64 if dtype is None else dtype)
    return float(np.finfo(dt).eps) if np.issubdtype(dt, np.floating) else F64_EPS


def _options(metric: str, options: Mapping | None) -> dict:
    from alignlib.metrics import METRICS   # lazy: the registry imports torch

    return {**METRICS[metric].options, **(options or {})}


def _kept_rank(s: np.ndarray, shape: tuple[int, int], norm: float, eps: float,
               variance: float | None) -> tuple[int, float]:
    """(directions kept, tolerance): the numerical rank at the storage tolerance, then (SVCCA) the
    fewest directions explaining ``variance`` of it."""
    if s.size == 0 or s[0] == 0.0:
        return 0, 0.0
    tol = rank_tolerance(float(s[0]), shape, norm, eps)
    r = int((s > tol).sum())
    if variance is not None and r > 0:
        frac = np.cumsum(s[:r] ** 2) / np.sum(s[:r] ** 2)
        r = min(r, int(np.searchsorted(frac, variance - 1e-12)) + 1)
    return r, tol


@dataclass(frozen=True)
class ProbeSpace:
    """The centred probe inputs' column space: an orthonormal basis (n x rank) at their own dtype's
    tolerance. Compute it once per task (:func:`probe_space`) and pass it instead of the inputs."""

    basis: np.ndarray

    @property
    def rank(self) -> int:
        return self.basis.shape[1]


def probe_space(probe_x: np.ndarray) -> ProbeSpace:
    """:class:`ProbeSpace` of probe inputs (n probes, features)."""
    x = np.asarray(probe_x)
    if x.ndim != 2:
        raise ValueError(f"probe_x must be (probes, features), got shape {x.shape}")
    eps = storage_eps(x.dtype)
    x = x.astype(np.float64)
    u, s, _ = np.linalg.svd(x - x.mean(0), full_matrices=False)
    rank, _ = _kept_rank(s, x.shape, float(np.linalg.norm(x)), eps, None)
    return ProbeSpace(basis=u[:, :rank])


def cca_reason(block: np.ndarray, probe_x: np.ndarray | ProbeSpace | None = None, storage_dtype=np.float64,
               metric: str = "cca", options: Mapping | None = None) -> str | None:
    """None, or why ``metric`` (cca, svcca, pwcca) is 1 by construction on ``block`` (S, n, d).
    ``probe_x``: the probe inputs (n, features) or their :class:`ProbeSpace`."""
    opts = _options(metric, options)
    if float(opts["ridge"]) > 0.0:
        return None
    eps = storage_eps(storage_dtype) if opts.get("rank_eps") is None else float(opts["rank_eps"])
    variance = float(opts["variance"]) if metric == "svcca" else None
    after = " after PCA" if variance is not None else ""
    block = np.asarray(block, np.float64)
    n = block.shape[1]
    centred = block - block.mean(1, keepdims=True)
    ranks = [_kept_rank(np.linalg.svd(c, compute_uv=False), a.shape, float(np.linalg.norm(a)), eps, variance)
             for a, c in zip(block, centred)]
    if any(r >= n - 1 for r, _ in ranks):
        return (f"a member spans all n - 1 centred probe dimensions{after} (probes <= rank + 1): "
                f"every canonical correlation is 1 by construction")
    if probe_x is None or len({r for r, _ in ranks}) != 1:   # all ranks equal rank(X_c), or informative
        return None
    space = probe_x if isinstance(probe_x, ProbeSpace) else probe_space(probe_x)
    if space.basis.shape[0] != n:
        raise ValueError(f"probe_x must have the block's {n} probes, got {space.basis.shape[0]}")
    if ranks[0][0] != space.rank:
        return None
    ux = space.basis
    for c, (r, tol) in zip(centred, ranks):
        u, s, _ = np.linalg.svd(c, full_matrices=False)
        kept = u[:, :r] * s[:r]                        # the member's kept part, up to a rotation of units
        if np.linalg.norm(kept - ux @ (ux.T @ kept), 2) > tol:
            return None
    return (f"layer is an invertible linear map of the inputs: every canonical correlation is 1 by "
            f"construction (each member's centred activations{after} span exactly the probe inputs' "
            f"centred column space, at {np.dtype(storage_dtype).name} rank tolerance)")


def _ranking(a: np.ndarray, rows: np.ndarray, kind: str, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """(q, bound) for the probes ``rows``: the quantity neighbours are ranked by (smaller = nearer;
    +inf for the probe itself) and how far storage rounding can move each entry."""
    raw_norms = np.linalg.norm(a, axis=1)
    if kind == "cosine":
        unit = a / np.where(raw_norms > 0, raw_norms, 1.0)[:, None]   # silent probes stay 0
        cos = np.clip(unit[rows] @ unit.T, -1.0, 1.0)
        q = -cos
        bound = eps * np.sqrt(1.0 - cos * cos)
    else:
        ac = a - a.mean(0)
        sq = np.einsum("ij,ij->i", ac, ac)
        d2 = np.maximum(sq[rows, None] + sq[None, :] - 2.0 * ac[rows] @ ac.T, 0.0)
        delta = 0.5 * eps * (raw_norms[rows, None] + raw_norms[None, :])
        q = d2
        bound = 2.0 * np.sqrt(d2) * delta + delta * delta
    q[np.arange(len(rows)), rows] = np.inf
    return q, bound


def tied_fraction(a: np.ndarray, k: int, kind: str, eps: float, sample: int = TIE_SAMPLE) -> float:
    """Fraction of probes of one member (n, d) whose k-neighbour set is decided by ties: at least
    half of its k nearest neighbours are within storage rounding of the (k+1)-th. Estimated on
    ``sample`` evenly spaced probes (all when n <= sample)."""
    a = np.asarray(a, np.float64)
    probes = np.arange(0, a.shape[0], max(1, a.shape[0] // sample))
    q, bound = _ranking(a, probes, kind, eps)
    rows = np.arange(q.shape[0])[:, None]
    near = np.argpartition(q, k, axis=1)[:, :k + 1]
    near = np.take_along_axis(near, np.argsort(q[rows, near], axis=1, kind="stable"), axis=1)
    top, edge = near[:, :k], near[:, k:k + 1]
    tied = (q[rows, edge] - q[rows, top]) <= (bound[rows, top] + bound[rows, edge])
    return float(np.mean(2 * tied.sum(1) >= k))


def residue_fraction(a: np.ndarray) -> float:
    """Fraction of a member's uncentred energy outside its leading singular direction."""
    a = np.asarray(a, np.float64)
    gram = a.T @ a if a.shape[1] <= a.shape[0] else a @ a.T
    total = float(np.trace(gram))
    return 1.0 if total == 0.0 else max(0.0, 1.0 - float(np.linalg.eigvalsh(gram)[-1]) / total)


def knn_reason(block: np.ndarray, storage_dtype=np.float64, metric: str = "mutual_knn",
               options: Mapping | None = None) -> str | None:
    """None, or why a k-NN ``metric`` is decided by ties or by a residue on ``block`` (S, n, d)."""
    opts = _options(metric, options)
    kind = KNN_METRICS[metric]
    n = block.shape[1]
    k = opts["k"]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k < n:
        return None                                    # the metric itself reports a bad k
    k = int(k)
    eps = storage_eps(storage_dtype)
    name = np.dtype(storage_dtype).name
    for a in block:
        if metric == "mutual_knn" and residue_fraction(a) <= RANK_ONE_RESIDUE:
            return (f"layer is rank one up to a residue below {RANK_ONE_RESIDUE:g} of its energy: probe "
                    f"vectors are (anti)parallel, so cosine neighbours are set by that residue (e.g. the "
                    f"initialisation), not by the layer's map")
        if tied_fraction(a, k, kind, eps) > TIED_PROBE_FRACTION:
            return (f"neighbour sets decided by ties at {name} precision: for most probes half of the "
                    f"k = {k} nearest neighbours are within storage rounding of the (k+1)-th")
    return None


def check_key(metric: str, options: Mapping | None = None) -> tuple:
    """Metrics whose checks are the same on a given block get the same key (cca and pwcca;
    neighborhood_overlap and information_imbalance with one k), so callers can reuse a result."""
    opts = _options(metric, options)
    if metric in ("cca", "pwcca"):
        return ("cca", float(opts["ridge"]), opts["rank_eps"])
    if metric == "svcca":
        return ("svcca", float(opts["ridge"]), opts["rank_eps"], float(opts["variance"]))
    if metric in KNN_METRICS:
        return (KNN_METRICS[metric] if metric != "mutual_knn" else metric, opts["k"])
    return (metric,)


def _blas_single_thread():
    """One BLAS thread (threadpoolctl, from the pipeline extra); no limit without it."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional speed-up only
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def uninformative_reason(metric: str, block: np.ndarray, probe_x: np.ndarray | ProbeSpace | None = None,
                         storage_dtype=np.float64, options: Mapping | None = None) -> str | None:
    """None if ``metric`` is informative on this grid point's ``block`` (S, n, d), else why not.

    ``probe_x``: the probe inputs (n, features) or their :class:`ProbeSpace`, when known; ``storage_dtype``: the dtype the
    activations were stored in; ``options``: the metric's options (defaults filled in).
    Metrics without a detectable precondition always return None.
    """
    with _blas_single_thread():   # small matrices: threads would only contend
        if metric in CCA_FAMILY:
            return cca_reason(block, probe_x, storage_dtype, metric, options)
        if metric in KNN_METRICS:
            return knn_reason(block, storage_dtype, metric, options)
    return None
