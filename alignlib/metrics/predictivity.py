"""Linear predictivity: cross-validated ridge regression from one member to the other.

``linear_predictivity(A -> B)`` is the held-out R^2 of a ridge regression (with an
unpenalised intercept) that predicts B's units from A's, the "linear regression" metric
of the convergent-learning literature (e.g. arXiv 2502.18710). Named so that it cannot
be confused with the task ``linear_regression``.

Folds. Probe i belongs to fold ``i mod folds`` (interleaved, deterministic, and unaffected
by probe sets that are stored sorted by class or by input). Each fold is predicted by
a regression fitted on the other folds; the out-of-fold predictions of all n probes are
pooled and scored as

    R^2 = 1 - sum_units sum_probes (y - y_hat)^2 / sum_units sum_probes (y - mean(y))^2,

the *variance-weighted* mean over target units of their R^2 (sklearn's
``multioutput="variance_weighted"``; the mean is over all n probes). Held out, R^2 can be
negative (a prediction worse than the target's mean).

Ridge. The fit on the training probes X (centred by their mean) is
``W = (X^T X + lam I)^{-1} X^T Y`` with ``lam = ridge x`` the mean eigenvalue of
``X^T X`` over its occupied directions (eigenvalues above float64 rounding), so the
ridge is scale-free and means the same at n < d as at n > d. ``ridge=0`` is least
squares (the minimum-norm solution when the training probes do not determine W).
``ridge=None`` or ``"cv"`` (default) chooses lam per pair and per outer fold by an inner
cross-validation on the training probes (same interleaved rule, same number of folds)
over ``CV_GRID = (0, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100)``, the smallest SSE winning
(ties to the smaller ridge).

Identity. Predicting a member from itself with ridge 0 is exact whenever the training
folds span its units (n (folds-1)/folds > rank), so with ``"cv"`` identical members give
1 to rounding (measured: exactly 1.0 at n = 60, d = 6); a fixed ridge shrinks the fit
(n = 60, d = 6, eigenvalues spanning 2e4: 1 - 8e-6 at ridge 1e-4, 1 - 6e-4 at 0.01,
0.88 at 1; a better-conditioned member: 1 - 3e-8, 1 - 3e-4, 0.75). When the training
folds do not span the member (d >= n (folds-1)/folds for a full-rank member), the
held-out probes have directions no fit has seen and even identical members score < 1
(isotropic Gaussian, n = 50, d = 100: ~0.4). ``pairwise``'s diagonal is 1 by the
convention of every metric; ``compare(a, a)`` returns the held-out value.

Invariances. A -> B is unchanged by translations of either member (intercept, R^2 about
the mean), isotropic scaling of either (scale-free ridge, R^2 ratio), orthogonal maps and
permutations of either (the ridge penalty is isotropic; the variance-weighted R^2 is a
ratio of Frobenius norms). With ridge = 0 and n (folds-1)/folds > d it is also unchanged by
any invertible linear map of the *predictor* (same column space; measured to 7e-15 for
a map of condition number 100; a ridge r > 0 departs from it by ~2e4 r there: 2e-4 at
1e-6, 2e-8 at 1e-10), but never by an anisotropic linear map of the *target* (it reweights the
target's directions in the variance-weighted mean). The registry declares T S O P.

All pairs: for each predictor and fold the training probes' eigendecomposition is computed once and the
predictions of every member's units for every ridge of the grid come from one batched
product; the ridge is then chosen per target member.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._common import DTYPE, Tensor, centred_checked, check_choice, check_nonnegative, require_probes
from ._memory import check_memory
from ._registry import MetricInfo, register

DIRECTIONS = ("symmetric", "a_to_b", "b_to_a")
#: Ridge values (x the predictor's mean occupied eigenvalue) searched by the inner cross-validation.
CV_GRID = (0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
#: Elements of one batched (grid x probes x target units) prediction.
BATCH_ELEMENTS = 2 ** 24


def _check_folds(folds, n: int, cv: bool) -> int:
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"linear_predictivity: folds must be an integer >= 2, got {folds!r}")
    minimum = (4 if cv else 2) * folds
    require_probes(n, minimum, "linear_predictivity",
                   f"{folds} folds{' with an inner cross-validation of the ridge' if cv else ''} need "
                   f"at least {minimum} probes")
    return folds


def _ridge_option(ridge):
    """None for cross-validation, else the relative ridge as a float."""
    if ridge is None or (isinstance(ridge, str) and ridge == "cv"):
        return None
    if isinstance(ridge, str):
        raise ValueError(f"linear_predictivity: ridge must be a number >= 0, None or 'cv', got {ridge!r}")
    return check_nonnegative(ridge, "linear_predictivity", "ridge")


def _fold_sse(x: Tensor, y: Tensor, train: Tensor, test: Tensor, grid: Tensor) -> Tensor:
    """Sum of squared held-out errors per (ridge, target unit), shape (len(grid), D).

    ``x`` (n, d) predictor, ``y`` (n, D) all targets; fitted on ``train``, scored on ``test``.
    The ridge solution is written in the eigenbasis of the training probes' centred Gram
    matrix, ``X^T X = V E V^T`` (d <= n_train) or ``X X^T = U E U^T`` (d > n_train), as
    ``y_hat = z diag(1 / (e + lam)) b`` with z = x_test V, b = V^T X^T Y (or z = x_test X^T U,
    b = U^T Y). Eigenvalues below ``e_max x max(n, d) x eps`` (the eigensolver's rounding)
    count as unoccupied. (A symmetric eigensolver rather than an SVD: torch's SVD is up to
    500x slower with 2 threads on a loaded CPU.)
    """
    xt, yt = x[train], y[train]
    xm, ym = xt.mean(0, keepdim=True), yt.mean(0, keepdim=True)
    xc, yc = xt - xm, yt - ym
    primal = xc.shape[1] <= xc.shape[0]
    e, vecs = torch.linalg.eigh(xc.mT @ xc if primal else xc @ xc.mT)
    keep = e > e[-1] * max(xc.shape) * torch.finfo(DTYPE).eps if float(e[-1]) > 0 else e > math.inf
    resid0 = y[test] - ym                             # (n_te, D)
    if not bool(keep.any()):                          # predictor constant on these probes
        return (resid0 ** 2).sum(0).expand(len(grid), -1).clone()
    e, vecs = e[keep], vecs[:, keep]
    lam = grid * e.mean()                             # (G,)
    h = 1.0 / (e + lam[:, None])                      # (G, r); lam = 0: least squares
    if primal:
        z = (x[test] - xm) @ vecs                     # (n_te, r)
        b = vecs.mT @ (xc.mT @ yc)                    # (r, D)
    else:
        z = (x[test] - xm) @ (xc.mT @ vecs)
        b = vecs.mT @ yc
    out = torch.empty(len(grid), y.shape[1], dtype=DTYPE, device=x.device)
    step = max(1, BATCH_ELEMENTS // max(1, z.shape[0] * y.shape[1]))
    for k in range(0, len(grid), step):
        pred = (z[None] * h[k:k + step, None, :]) @ b   # (G', n_te, D)
        out[k:k + step] = ((resid0[None] - pred) ** 2).sum(1)
    return out


def _folds(index: Tensor, k: int) -> list[tuple[Tensor, Tensor]]:
    """(train, test) positions into ``index`` for the interleaved k-fold rule."""
    pos = torch.arange(len(index), device=index.device)
    return [(index[pos % k != f], index[pos % k == f]) for f in range(k)]


def _block_sums(sse: Tensor, owner: Tensor, S: int) -> Tensor:
    """Sum the last axis (target units) per target member: (..., D) -> (..., S)."""
    out = torch.zeros(*sse.shape[:-1], S, dtype=DTYPE, device=sse.device)
    return out.index_add_(-1, owner, sse)


def predictivity_matrix(predictors: list[Tensor], targets: list[Tensor], ridge: float | None,
                        folds: int) -> Tensor:
    """``R[i, j]`` = held-out variance-weighted R^2 of target j predicted from predictor i."""
    device = targets[0].device
    y = torch.cat(targets, dim=1)
    owner = torch.cat([torch.full((t.shape[1],), j, device=device, dtype=torch.long)
                       for j, t in enumerate(targets)])
    S_t = len(targets)
    sst = _block_sums(((y - y.mean(0, keepdim=True)) ** 2).sum(0), owner, S_t)
    n = y.shape[0]
    everything = torch.arange(n, device=device)
    grid = torch.tensor(CV_GRID if ridge is None else (ridge,), dtype=DTYPE, device=device)
    out = torch.empty(len(predictors), S_t, dtype=DTYPE, device=device)
    for i, x in enumerate(predictors):
        sse = torch.zeros(S_t, dtype=DTYPE, device=device)
        for train, test in _folds(everything, folds):
            outer = _block_sums(_fold_sse(x, y, train, test, grid), owner, S_t)   # (G, S_t)
            if ridge is None:
                inner = sum(_block_sums(_fold_sse(x, y, tr, te, grid), owner, S_t)
                            for tr, te in _folds(train, folds))
                best = torch.argmin(inner, dim=0)                                   # first minimum
                sse += outer.gather(0, best[None]).squeeze(0)
            else:
                sse += outer[0]
        out[i] = 1.0 - sse / sst
    return out


def memory_estimate(n: int, predictor_widths: list[int], target_widths: list[int], folds: int,
                    grid_size: int) -> int:
    """Peak bytes of :func:`predictivity_matrix` (an estimate, counting float64 elements): the
    stacked targets and their centred and training copies (4 n D, D = all target units), one
    batch of held-out predictions and errors (3 x max(n_te D, min(BATCH_ELEMENTS, grid n_te D))),
    the widest predictor's Gram matrix and eigenvectors (2 m^2, m = min(d, n)), its training
    copies (3 n d) and the projected targets (m D)."""
    D, d = sum(target_widths), max(predictor_widths)
    n_te = math.ceil(n / folds)
    m = min(d, n)
    batch = max(n_te * D, min(BATCH_ELEMENTS, grid_size * n_te * D))
    return 8 * (4 * n * D + 3 * batch + 2 * m * m + 3 * n * d + m * D + 2 * grid_size * D)


def linear_predictivity(members: list[Tensor], options: dict, pair: bool) -> Tensor:
    """Held-out R^2 (variance-weighted over target units) of a cross-validated ridge regression.

    ``direction``: ``"a_to_b"`` (A predicts B; in ``pairwise`` row i predicts column j),
    ``"b_to_a"``, or ``"symmetric"`` (default: the mean of both). Range (-inf, 1].
    Invariant to translation, isotropic scaling, orthogonal maps and permutations of
    either member; with ridge = 0 also to invertible linear maps of the predictor (not of
    the target). See the module docstring for folds, ridge scaling and the identity. Before any
    allocation the peak memory is estimated (:func:`memory_estimate`) and a :class:`MemoryError`
    names it when it exceeds :func:`alignlib.metrics.memory_limit`.
    """
    direction = check_choice(options["direction"], DIRECTIONS, "linear_predictivity", "direction")
    ridge = _ridge_option(options["ridge"])
    for i, x in enumerate(members):
        centred_checked(x, i, "linear_predictivity")
    n = members[0].shape[0]
    folds = _check_folds(options["folds"], n, ridge is None)
    widths = [x.shape[1] for x in members]
    grid = len(CV_GRID) if ridge is None else 1
    estimate = (max(memory_estimate(n, [widths[0]], [widths[1]], folds, grid),
                    memory_estimate(n, [widths[1]], [widths[0]], folds, grid)) if pair
                else memory_estimate(n, widths, widths, folds, grid))
    check_memory("linear_predictivity", estimate,
                 f"{len(members)} members of {n} probes and {sum(widths)} units in all (widest {max(widths)})",
                 members[0].device)
    if pair:
        a, b = members
        ab = predictivity_matrix([a], [b], ridge, folds)[0, 0] if direction != "b_to_a" else None
        ba = predictivity_matrix([b], [a], ridge, folds)[0, 0] if direction != "a_to_b" else None
        if direction == "a_to_b":
            return ab
        if direction == "b_to_a":
            return ba
        return 0.5 * (ab + ba)
    m = predictivity_matrix(members, members, ridge, folds)
    if direction == "b_to_a":
        m = m.mT.contiguous()
    elif direction == "symmetric":
        m = 0.5 * (m + m.mT)
    m.fill_diagonal_(1.0)
    return m


def _heldout_r2(x: Tensor, y: Tensor, train: Tensor, test: Tensor, ridge: float | None, folds: int) -> Tensor:
    """R^2 on the probes ``test`` of y predicted from x by a ridge fitted on ``train`` (the ridge
    chosen by an inner cross-validation on ``train`` when ``ridge`` is None)."""
    grid = torch.tensor(CV_GRID if ridge is None else (ridge,), dtype=DTYPE, device=x.device)
    sse = _fold_sse(x, y, train, test, grid).sum(1)                          # (G,)
    best = 0
    if ridge is None:
        inner = sum(_fold_sse(x, y, tr, te, grid).sum(1) for tr, te in _folds(train, folds))
        best = int(torch.argmin(inner))
    held = y[test]
    return 1.0 - sse[best] / ((held - held.mean(0, keepdim=True)) ** 2).sum()


def heldout_predictivity(a: Tensor, b: Tensor, train: Tensor, test: Tensor, options: dict) -> Tensor:
    """Held-out score for :func:`alignlib.metrics.cross_validated`: the ridge regression (intercept
    included; ``ridge`` as the metric's, "cv" chosen by an inner cross-validation with the metric's
    ``folds`` on the training probes) is fitted on ``train`` and its variance-weighted R^2 taken on
    ``test`` about the held-out probes' own mean (sklearn's ``r2_score`` on the fold);
    ``direction`` as the metric's (symmetric: the mean of both)."""
    direction = check_choice(options["direction"], DIRECTIONS, "linear_predictivity", "direction")
    ridge = _ridge_option(options["ridge"])
    for i, x in enumerate((a, b)):
        centred_checked(x[train], i, "linear_predictivity")
        centred_checked(x[test], i, "linear_predictivity")
    folds = _check_folds(options["folds"], len(train), ridge is None)
    ab = _heldout_r2(a, b, train, test, ridge, folds) if direction != "b_to_a" else None
    ba = _heldout_r2(b, a, train, test, ridge, folds) if direction != "a_to_b" else None
    if direction == "a_to_b":
        return ab
    if direction == "b_to_a":
        return ba
    return 0.5 * (ab + ba)


register(MetricInfo(
    name="linear_predictivity", range=(-math.inf, 1.0), symmetric=True,
    invariances=frozenset({"translation", "isotropic_scaling", "orthogonal", "permutation"}),
    needs="activations", options={"direction": "symmetric", "ridge": "cv", "folds": 5},
    description="Held-out R^2 (variance-weighted over target units, out-of-fold predictions of "
                "interleaved folds pooled) of a ridge regression from one member to the other; "
                "ridge in units of the predictor's mean occupied eigenvalue, 'cv'/None = chosen by "
                "inner cross-validation over (0, 1e-4, ..., 100); direction 'symmetric' (mean of "
                "both), 'a_to_b' or 'b_to_a'. With ridge = 0 invariant to invertible linear maps of "
                "the predictor.",
    preconditions="Identical members reach 1 only when the training folds span the member "
                  "(n (folds-1)/folds > rank); with more units than training probes every fit "
                  "misses the held-out probes' unseen directions and the metric reads well below 1 "
                  "even for identical members -- compare it against a permutation baseline there. "
                  "Needs n >= 2 folds probes (4 folds with the inner cross-validation).",
    reference="Linear regression / predictivity, e.g. Yamins et al. 2014; Li et al. 2016; "
              "arXiv 2502.18710", impl=linear_predictivity, heldout=heldout_predictivity))
