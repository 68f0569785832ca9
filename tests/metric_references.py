"""Shared by the metric tests: representations (anisotropic members, related members of several widths,
invertible maps) and independent reference implementations of linear_predictivity (sklearn's Ridge fold
by fold) and soft_matching (scipy's LP solver for the transport problem)."""
import numpy as np
from scipy.optimize import linprog
from scipy.stats import ortho_group
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score

from alignlib.metrics.predictivity import CV_GRID

SPECTRUM = np.array([3.0, 2.0, 1.0, 0.3, 0.05, 0.02])


def rng_(seed=0):
    return np.random.default_rng(seed)


def member(seed=0, n=60, d=6):
    rng = rng_(seed)
    return (rng.normal(size=(n, d)) * SPECTRUM[:d]) @ ortho_group.rvs(d, random_state=seed + 1) + rng.normal(size=d)


def related(seed=0, n=60, widths=(6, 6, 4, 7), noise=0.5):
    rng = rng_(seed)
    z = rng.normal(size=(n, 3))
    return [np.tanh(z @ rng.normal(size=(3, w))) + noise * rng.normal(size=(n, w)) + rng.normal(size=w)
            for w in widths]


def invertible(d, seed):
    return ortho_group.rvs(d, random_state=seed) @ np.diag(np.logspace(-1, 1, d)) @ ortho_group.rvs(
        d, random_state=seed + 7)


# --------------------------------------------------------------------------- references


def interleaved(index, k):
    pos = np.arange(len(index))
    return [(index[pos % k != f], index[pos % k == f]) for f in range(k)]


def sk_sse(x, y, train, test, rel):
    """Held-out SSE per target unit of sklearn's Ridge, alpha = rel x mean occupied eigenvalue."""
    xc = x[train] - x[train].mean(0)
    ev = np.linalg.svd(xc, compute_uv=False) ** 2
    ev = ev[ev > ev[0] * 1e-24]
    model = Ridge(alpha=rel * ev.mean(), fit_intercept=True, solver="svd").fit(x[train], y[train])
    return ((y[test] - model.predict(x[test])) ** 2).sum(0)


def ref_predictivity(x, y, ridge, k=5):
    """Pooled out-of-fold ridge predictions, variance-weighted R^2 (sklearn r2_score)."""
    n = len(x)
    pred = np.empty_like(y)
    for train, test in interleaved(np.arange(n), k):
        if ridge == "cv":
            inner = [sum(sk_sse(x, y, tr, te, rel).sum() for tr, te in interleaved(train, k)) for rel in CV_GRID]
            rel = CV_GRID[int(np.argmin(inner))]
        else:
            rel = ridge
        xc = x[train] - x[train].mean(0)
        ev = np.linalg.svd(xc, compute_uv=False) ** 2
        ev = ev[ev > ev[0] * 1e-24]
        if rel == 0.0:
            coef = np.linalg.lstsq(xc, y[train] - y[train].mean(0), rcond=None)[0]
            pred[test] = y[train].mean(0) + (x[test] - x[train].mean(0)) @ coef
        else:
            pred[test] = Ridge(alpha=rel * ev.mean(), solver="svd").fit(x[train], y[train]).predict(x[test])
    return r2_score(y, pred, multioutput="variance_weighted")


def unit_curves(x):
    xc = x - x.mean(0)
    return xc / np.linalg.norm(xc, axis=0)


def lp_soft_matching(x, y):
    """1 - d^2/2 with d^2 = min sum P_kl ||a_k - b_l||^2 over the transport polytope (scipy linprog)."""
    fa, fb = unit_curves(x), unit_curves(y)
    da, db = fa.shape[1], fb.shape[1]
    cost = ((fa[:, :, None] - fb[:, None, :]) ** 2).sum(0).ravel()
    rows = np.kron(np.eye(da), np.ones(db))
    cols = np.kron(np.ones(da), np.eye(db))
    res = linprog(cost, A_eq=np.vstack([rows, cols]),
                  b_eq=np.concatenate([np.full(da, 1 / da), np.full(db, 1 / db)]), bounds=(0, None), method="highs")
    return 1 - res.fun / 2
