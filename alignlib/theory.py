"""Theory of alignment for ensembles of deep linear networks (no training involved).

Setting (derivation in ``docs/theory.md``): training inputs X (n x d, rows ~ N(0, I_d)),
targets y = X beta + eps with member-specific noise eps ~ N(0, sigma^2 I_n),
sigma^2 = |beta|^2 / SNR. Trained to convergence from a vanishing initialisation, a member's
end-to-end map is the minimum-norm least-squares solution

    beta_hat = X^+ (X beta + eps) = P beta + X^+ eps,        P = X^+ X,

and its (rank-one) hidden layer gives, on probes Z, a linear CKA equal to the squared cosine
of the centred vectors Z beta_hat_a, Z beta_hat_b (for many isotropic probes: cos^2 of the
maps). Two members differ only through X^+ applied to their own noise.

Notation used in every docstring: p = min(n, d), N = max(n, d), m = |n - d|,
k = m + 2, B = |beta|^2, sigma^2 = B / SNR, S_bar = B p / d (mean retained signal |P beta|^2).

Public functions
----------------
* :func:`linear_alignment`, :func:`linear_test_error`: closed forms, broadcast over snr and n.
* :func:`expected_alignment_given_X`, :func:`expected_test_error_given_X`: the expectation over
  the two members' noise for one fixed X and teacher (quadrature, error ~1e-9; test error exact).
* :func:`monte_carlo_alignment`, :func:`monte_carlo_test_error`: the same averaged over seeded
  draws of X (and of the teacher direction); accurate at n = d too.
* :func:`inverse_wishart_trace_moments`: the exact Wishart facts the closed forms use.

Everything is float64, pure and deterministic (randomness only from seeded numpy Generators).
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np
from scipy.special import erf, polygamma

__all__ = [
    "METRICS",
    "APPROXIMATIONS",
    "inverse_wishart_trace_moments",
    "linear_alignment",
    "linear_test_error",
    "unit_vector_moments",
    "expected_alignment_given_X",
    "expected_test_error_given_X",
    "monte_carlo_alignment",
    "monte_carlo_test_error",
]

METRICS = ("cosine_end_to_end", "cka_linear")
APPROXIMATIONS = ("wishart2", "leading")


# --------------------------------------------------------------------------- helpers


def _blas_single_thread():
    """Limit BLAS/LAPACK to one thread (if threadpoolctl is installed) for the many small
    factorisations below: threaded OpenBLAS on ~50x50 problems is no faster when idle and
    10-20x slower on a loaded machine (spin-waiting threads)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional speed-up only
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


# --------------------------------------------------------------------------- validation


def _check_metric(metric) -> str:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known metrics: {list(METRICS)}")
    return metric


def _check_snr(snr) -> np.ndarray:
    a = np.asarray(snr, dtype=np.float64)
    if a.size == 0:
        raise ValueError("snr is empty")
    if np.any(np.isnan(a)) or np.any(a <= 0):
        raise ValueError(f"snr must be > 0 (np.inf allowed for noiseless targets); got {snr!r}")
    return a


def _check_count(value, name: str) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    if np.any(~np.isfinite(a)) or np.any(a < 1) or np.any(a != np.round(a)):
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    return a


def _check_scalar_count(value, name: str) -> int:
    a = _check_count(value, name)
    if a.ndim != 0:
        raise ValueError(f"{name} must be a scalar integer >= 1; got {value!r}")
    return int(a)


def _check_teacher_norm(teacher_norm) -> np.ndarray:
    a = np.asarray(teacher_norm, dtype=np.float64)
    if np.any(~np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"teacher_norm must be finite and > 0; got {teacher_norm!r}")
    return a


# --------------------------------------------------------------------------- Wishart facts


def inverse_wishart_trace_moments(p, N):
    """Exact moments of T = tr(W^-1) and T2 = tr(W^-2) for W ~ Wishart_p(N, I).

    With m = N - p (for our W = X^T X if n > d, X X^T if n < d: p = min(n,d), N = max(n,d)):

        E T      = p / (m - 1)                                  (m >= 2, else inf)
        Var T    = 2 p (N - 1) / (m (m - 1)^2 (m - 3))          (m >= 4, else inf)
        E T2     = p (N - 1) / (m (m - 1) (m - 3))              (m >= 4, else inf)

    (from Cov(W^-1_ij, W^-1_kl) = [2 d_ij d_kl + (m-1)(d_ik d_jl + d_il d_jk)] /
    [m (m-1)^2 (m-3)]). Returns float64 arrays (ET, VarT, ET2), broadcast over p and N.
    """
    p = np.asarray(p, dtype=np.float64)
    N = np.asarray(N, dtype=np.float64)
    m = N - p
    with np.errstate(divide="ignore", invalid="ignore"):
        et = np.where(m >= 2, p / (m - 1), np.inf)
        var = np.where(m >= 4, 2 * p * (N - 1) / (m * (m - 1) ** 2 * (m - 3)), np.inf)
        et2 = np.where(m >= 4, p * (N - 1) / (m * (m - 1) * (m - 3)), np.inf)
    return et, var, et2


# --------------------------------------------------------------------------- closed forms


def linear_test_error(snr, n, d, teacher_norm=1.0):
    """Expected clean test MSE E|beta_hat - beta|^2 of one member (exact, no approximation).

    With B = teacher_norm^2, sigma^2 = B / snr, m = |n - d|:

        n > d + 1:  sigma^2 d / (n - d - 1)
        n < d - 1:  B (1 - n/d) + sigma^2 n / (d - n - 1)
        |n - d| <= 1: inf (E tr((X^T X)^-1) diverges).

    The bias term is E|(I - P) beta|^2 = B (d - n)/d (P projects on a uniformly random
    n-dim subspace); the variance term is sigma^2 E tr(W^-1), W ~ Wishart_p(N).
    Broadcasts over snr, n, d and teacher_norm.
    """
    snr = _check_snr(snr)
    n = _check_count(n, "n")
    d = _check_count(d, "d")
    b2 = _check_teacher_norm(teacher_norm) ** 2
    p = np.minimum(n, d)
    big = np.maximum(n, d)
    et, _, _ = inverse_wishart_trace_moments(p, big)
    sigma2 = b2 / snr
    bias = b2 * np.clip(1.0 - n / d, 0.0, None)
    # sigma^2 E tr W^-1, with 0 * inf := 0 (noiseless targets: beta_hat = P beta exactly).
    var = np.where(sigma2 > 0, sigma2 * et, 0.0)
    out = bias + var
    return out if out.ndim else float(out)


def _golub_welsch(diag, offdiag):
    """Nodes and normalised weights of the Gauss rule with the given monic Jacobi matrix."""
    J = np.diag(diag) + np.diag(offdiag, 1) + np.diag(offdiag, -1)
    x, v = np.linalg.eigh(J)
    w = v[0] ** 2
    return x, w / w.sum()


def _gamma_rule(shape: float, size: int):
    """Gauss rule for the Gamma(shape, 1) law (generalised Laguerre, alpha = shape - 1)."""
    alpha = shape - 1.0
    i = np.arange(size, dtype=np.float64)
    return _golub_welsch(2 * i + alpha + 1, np.sqrt(i[1:] * (i[1:] + alpha)))


@functools.lru_cache(maxsize=256)
def _inverse_wishart2_nodes(k: int, step: float, tol: float = 1e-10):
    """Quadrature nodes for P = S^-1, S ~ Wishart_2(k, I): returns (P11, P22, P12, weight).

    Parametrise S = [[l1^2, l1 r u], [l1 r u, r^2]] with l1^2, r^2 ~ chi^2_k independent and
    u (the sample correlation) with density prop. to (1 - u^2)^((k-3)/2), all independent
    (Bartlett decomposition in polar coordinates). Then
    P11 = 1/(l1^2 (1-u^2)), P22 = 1/(r^2 (1-u^2)), P12 = -u/(l1 r (1-u^2)).
    Rules: trapezoidal in y = log(l^2/2) (Gamma(k/2) law) and in v = atanh(u) (density
    sech^(k-1) v), steps min(step, std/1.5), tails cut where the weight is < tol. The integrand
    is analytic in a strip |Im| < pi/2 of these variables, even where it varies fast near
    l -> 0 or |u| -> 1 (n ~ d at high SNR, where Gauss rules converge slowly): error
    ~exp(-pi^2/step), ~1e-6 at step 0.5 (checked against step 0.25).
    """
    a = k / 2.0
    big = -np.log(tol)
    hy = min(step, np.sqrt(float(polygamma(1, a))) / 1.5)
    y = np.arange(np.log(a) - 1.0 - big / a, np.log(a + big + 12.0 * np.sqrt(a)), hy)
    ly = a * y - np.exp(y)
    wy = np.exp(ly - ly.max())
    y, wy = y[wy > tol * 1e-3], wy[wy > tol * 1e-3]
    wy = wy / wy.sum()
    vmax = np.arccosh(np.exp(min(big / (k - 1), 700.0)))
    hv = min(step, 1.0 / (1.5 * np.sqrt(k - 1)))
    v = np.arange(0.0, vmax + hv, hv)
    v = np.concatenate([-v[:0:-1], v])
    lv = -(k - 1) * np.log(np.cosh(v))
    wv = np.exp(lv - lv.max())
    v, wv = v[wv > tol * 1e-3], wv[wv > tol * 1e-3]
    wv = wv / wv.sum()
    l1sq = 2.0 * np.exp(y)[:, None, None]
    rsq = 2.0 * np.exp(y)[None, :, None]
    u = np.tanh(v)[None, None, :]
    one_m = 1.0 / np.cosh(v)[None, None, :] ** 2  # 1 - u^2
    p11 = 1.0 / (l1sq * one_m)
    p22 = 1.0 / (rsq * one_m)
    p12 = -u / (np.sqrt(l1sq * rsq) * one_m)
    w = wy[:, None, None] * wy[None, :, None] * wv[None, None, :]
    flat = [np.ravel(z) for z in np.broadcast_arrays(p11, p22, p12, w)]
    keep = flat[3] > tol * 1e-3 * flat[3].max()
    out = tuple(np.array(z[keep]) for z in flat)
    out[3][:] = out[3] / out[3].sum()
    for z in out:
        z.flags.writeable = False  # cached: shared between calls
    return out


def _wishart2_alignment(snr: np.ndarray, n: int, d: int, step: float):
    """E[cos] and E[cos^2] by the 2x2-Wishart reduction (see linear_alignment), snr 1-D."""
    p = min(n, d)
    k = abs(n - d) + 2
    b = 1.0  # alignment is invariant to the teacher's scale at fixed SNR
    s_bar = b * p / d
    var_s = 0.0 if n >= d else 2 * b**2 * n * (d - n) / (d**2 * (d + 2.0))
    p11, p22, p12, w = _inverse_wishart2_nodes(k, float(step))
    per = max(1, 500_000 // w.size)  # bound the (snr, nodes) temporaries to ~4 MB each
    if snr.size > per:
        parts = [_wishart2_alignment(snr[i:i + per], n, d, step) for i in range(0, snr.size, per)]
        return np.concatenate([c for c, _ in parts]), np.concatenate([c2 for _, c2 in parts])
    s2 = (b / snr)[:, None]  # sigma^2, shape (snr, 1)
    paa, pbb, pab = s2 * p11, s2 * p22, s2 * p12  # sigma^2 P, broadcast (snr, nodes)
    num = s_bar + p * pab
    da = s_bar + p * paa
    db = s_bar + p * pbb
    # Second moments of the Gram fluctuation Delta projected on the three bilinear forms.
    var_a = var_s + 4 * s_bar * paa + 2 * p * paa**2
    var_b = var_s + 4 * s_bar * pbb + 2 * p * pbb**2
    cov_ab = var_s + 4 * s_bar * pab + 2 * p * pab**2
    var_n = var_s + s_bar * (paa + 2 * pab + pbb) + p * (paa * pbb + pab**2)
    cov_na = var_s + 2 * s_bar * (paa + pab) + 2 * p * paa * pab
    cov_nb = var_s + 2 * s_bar * (pbb + pab) + 2 * p * pbb * pab
    f = num / np.sqrt(da * db)
    ra, rb, rab = var_a / da**2, var_b / db**2, cov_ab / (da * db)
    cos = f * (1 + 0.375 * ra + 0.375 * rb + 0.25 * rab) - 0.5 * (cov_na / da + cov_nb / db) / np.sqrt(da * db)
    cos2 = f**2 * (1 + ra + rb + rab) + var_n / (da * db) - 2 * num * (cov_na / da + cov_nb / db) / (da * db)
    return cos @ w, cos2 @ w


def _one_dim_cosine(snr: np.ndarray, n: int, d: int) -> np.ndarray:
    """Exact E[cos] when min(n, d) = 1, where cos = sign(beta_hat_a . beta_hat_b) and CKA = 1.

    n = 1: cos = sign((s + eps_a)(s + eps_b)), s = x.beta ~ N(0, B):
           E cos = E_g erf(|g| sqrt(SNR/2))^2 = (2/pi) arcsin(SNR / (1 + SNR)).
    d = 1 (n >= 2): beta_hat ~ N(beta, sigma^2/|x|^2) given x, |x|^2 ~ chi^2_n:
           E cos = E erf(sqrt(SNR |x|^2 / 2))^2 (Gauss-Laguerre, 200 nodes).
    """
    if n == 1:
        return (2 / np.pi) * np.arcsin(snr / (1 + snr))
    g, w = _gamma_rule(n / 2.0, 200)  # g = |x|^2 / 2
    return np.clip((erf(np.sqrt(snr[:, None] * g[None, :])) ** 2) @ w, 0.0, 1.0)  # round-off


def _leading_alignment(snr, n, d, metric):
    """Leading order (+ the O(1/p) noise-overlap variance for CKA); NaN where undefined."""
    p = np.minimum(n, d)
    big = np.maximum(n, d)
    m = np.abs(n - d)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(np.isinf(snr), 1.0, snr * (m - 1) / (snr * (m - 1) + d))
        r = np.where(m >= 2, r, np.nan)
        if metric == "cosine_end_to_end":
            return r
        tau = np.where(m >= 4, (big - 1) * (m - 1) / (p * m * (m - 3)), np.nan)
        return r**2 + 2 * r * (1 - r) * (1 - 2 * r) ** 2 / p + tau * (1 - r) ** 2 * (1 + 4 * r**2)


def linear_alignment(snr, n, d, metric, *, approximation="wishart2", quadrature_step=0.5):
    """Expected alignment of two members trained on the same X (closed form / semi-analytic).

    metric: ``"cosine_end_to_end"`` -> E[cos(beta_hat_a, beta_hat_b)];
            ``"cka_linear"`` -> E[linear CKA of the hidden layers on many isotropic probes]
            = E[cos^2(beta_hat_a, beta_hat_b)].
    Broadcasts over snr, n (and d). Alignment does not depend on |beta| at fixed SNR.

    approximation="leading" (explicit formula, m = |n - d|, p = min(n, d)):
        r = SNR (m - 1) / (SNR (m - 1) + d)                     [= S_bar / (S_bar + sigma^2 E tr W^-1)]
        E cos   ~ r
        E cos^2 ~ r^2 + 2 r (1-r)(1-2r)^2 / p + tau (1-r)^2 (1 + 4 r^2),
                  tau = E tr W^-2 / (E tr W^-1)^2 = (N-1)(m-1) / (p m (m-3))
      NaN where the Wishart moments diverge (m < 2 for cos, m < 4 for CKA). Its error is
      O(1/m): ~0.02 (cos) and ~0.05 (CKA) at |n - d| = 10, d = 50.

    approximation="wishart2" (default, much more accurate, defined at every n including n = d):
      exact reduction (docs/theory.md) beta_hat_{a,b} = b + sigma G K e_{a,b} with b isotropic in
      R^p of norm^2 S_b (S_b = B if n >= d, B Beta(n/2, (d-n)/2) if n < d), G ~ N(0, I_p x I_2),
      K^T K = S^-1, S ~ Wishart_2(k = m + 2, I). The 3x3 Gram of (b, g_1, g_2) is expanded to
      second order around diag(S_bar, p, p) (relative error O(p^-3/2)); with P = sigma^2 S^-1,
          Num = S_bar + p P_ab,   D_a = S_bar + p P_aa,   f = Num / sqrt(D_a D_b),
          E[cos | S]   = f (1 + 3/8 V_a/D_a^2 + 3/8 V_b/D_b^2 + 1/4 C_ab/(D_a D_b))
                         - (C_Na/D_a + C_Nb/D_b) / (2 sqrt(D_a D_b))
          E[cos^2 | S] = f^2 (1 + V_a/D_a^2 + V_b/D_b^2 + C_ab/(D_a D_b)) + V_N/(D_a D_b)
                         - 2 Num (C_Na/D_a + C_Nb/D_b) / (D_a D_b)
      with V_a = v + 4 S_bar P_aa + 2 p P_aa^2, C_ab = v + 4 S_bar P_ab + 2 p P_ab^2,
      V_N = v + S_bar (P_aa + 2 P_ab + P_bb) + p (P_aa P_bb + P_ab^2),
      C_Na = v + 2 S_bar (P_aa + P_ab) + 2 p P_aa P_ab, v = Var S_b = 2 B^2 n (d-n) / (d^2 (d+2))
      (0 if n >= d); the 2x2 inverse Wishart S^-1 is then integrated numerically (3-D
      trapezoidal rule in log/atanh variables, step quadrature_step, error ~1e-6).
      Accuracy against monte_carlo_alignment at d = 50, SNR in [0.1, 100]: <= 0.002 for every
      20 <= n <= 1000 *including n = d* (MC errors ~0.001-0.005), 0.005 at n = 10; the error grows
      as p = min(n, d) shrinks (CKA: 0.02 at p = 5, 0.12 at p = 2). p = 1 is exact (all maps
      collinear: CKA = 1, E cos = (2/pi) arcsin(SNR/(1+SNR)) for n = 1).
      Approach to SNR -> inf: 1 - E cos ~ 1/SNR for |n - d| >= 2 but ~ SNR^-1/2 at n = d.
    """
    metric = _check_metric(metric)
    if approximation not in APPROXIMATIONS:
        raise ValueError(f"unknown approximation {approximation!r}; known: {list(APPROXIMATIONS)}")
    snr = _check_snr(snr)
    n = _check_count(n, "n")
    d = _check_count(d, "d")
    snr_b, n_b, d_b = np.broadcast_arrays(snr, n, d)
    if approximation == "leading":
        out = np.asarray(_leading_alignment(snr_b, n_b, d_b, metric), dtype=np.float64)
        return out if out.ndim else float(out)
    step = float(quadrature_step)
    if not 0 < step <= 1:
        raise ValueError("quadrature_step must be in (0, 1]")
    out = np.empty(snr_b.shape, dtype=np.float64)
    flat_s, flat_n, flat_d, flat_o = snr_b.ravel(), n_b.ravel(), d_b.ravel(), out.reshape(-1)
    pairs = np.stack([flat_n, flat_d], axis=1)
    for nn, dd in np.unique(pairs, axis=0):
        sel = (flat_n == nn) & (flat_d == dd)
        s = flat_s[sel]
        finite = np.isfinite(s)
        vals = np.ones(s.shape)  # SNR = inf: every member equals P beta, alignment 1
        if min(nn, dd) == 1:  # exact: all maps on one line, cos = +-1
            if metric == "cosine_end_to_end" and finite.any():
                vals[finite] = _one_dim_cosine(s[finite], int(nn), int(dd))
        elif finite.any():
            cos, cos2 = _wishart2_alignment(s[finite], int(nn), int(dd), step)
            vals[finite] = cos if metric == "cosine_end_to_end" else cos2
        flat_o[sel] = vals
    return out if out.ndim else float(out)


# --------------------------------------------------------------------------- given one X


def unit_vector_moments(mean, var, *, need_second=True, step=0.4, tol=1e-14):
    """First and second moments of w/|w| for w ~ N(mean, diag(var)) (batched over leading axes).

    mu = E[w/|w|]       = pi^-1/2 int_0^inf t^-1/2 phi(t) nu(t) dt
    M  = E[w w^T/|w|^2] = int_0^inf phi(t) [nu nu^T + diag(var/(1 + 2 t var))] dt
    with phi(t) = prod_i (1 + 2 t var_i)^-1/2 exp(-t mean_i^2/(1 + 2 t var_i)) = E exp(-t|w|^2)
    and nu_i(t) = mean_i / (1 + 2 t var_i), from 1/|w| = pi^-1/2 int t^-1/2 e^{-t|w|^2} dt.
    The integrals are done by the trapezoidal rule in x = log t (step ``step``) after scaling w
    to E|w|^2 = 1; the integrands are analytic in the strip |Im x| < pi/2, so the error is
    ~exp(-pi^2/step) (~1e-11 at step 0.4; tr M = 1 holds to ~1e-12). Returns (mu, M or None).
    """
    with _blas_single_thread():
        return _unit_vector_moments(mean, var, need_second, step, tol)


def _unit_vector_moments(mean, var, need_second, step, tol):
    """Implementation of unit_vector_moments."""
    mean = np.asarray(mean, dtype=np.float64)
    var = np.asarray(var, dtype=np.float64)
    mean, var = np.broadcast_arrays(mean, var)
    if np.any(var < 0) or not np.all(np.isfinite(mean)) or not np.all(np.isfinite(var)):
        raise ValueError("var must be >= 0 and all entries finite")
    lead, r = mean.shape[:-1], mean.shape[-1]
    mean = mean.reshape(-1, r)
    var = var.reshape(-1, r)
    scale = (mean**2).sum(-1) + var.sum(-1)
    mu = np.full(mean.shape, np.nan)
    M = np.full(mean.shape + (r,), np.nan) if need_second else None
    ok = scale > 0
    deterministic = ok & (var.sum(-1) == 0)
    if deterministic.any():
        u = mean[deterministic] / np.sqrt(scale[deterministic])[:, None]
        mu[deterministic] = u
        if need_second:
            M[deterministic] = u[:, :, None] * u[:, None, :]
    rows = np.flatnonzero(ok & ~deterministic)
    chunk = max(1, int(2_000_000 // max(1, r * 400)))
    for start in range(0, rows.size, chunk):
        idx = rows[start:start + chunk]
        m = mean[idx] / np.sqrt(scale[idx])[:, None]
        k = var[idx] / scale[idx][:, None]
        kmin = np.min(np.where(k > 0, k, np.inf))
        x = np.arange(-80.0, max(np.log(1.0 / kmin), 0.0) + 80.0 + step, step)
        t = np.exp(x)
        den = 1.0 + 2.0 * t[None, :, None] * k[:, None, :]
        logphi = -(0.5 * np.log(den) + t[None, :, None] * m[:, None, :] ** 2 / den).sum(-1)
        # |nu_i| <= |m_i| <= 1 and var/(1+2t var) <= 1/(2t): bound the integrands to trim nodes.
        bound = logphi + np.maximum(x, 0.5 * x)[None, :]
        keep = np.flatnonzero((bound > np.log(tol)).any(axis=0))
        lo, hi = keep.min(), keep.max() + 1
        t, den, logphi = t[lo:hi], den[:, lo:hi], logphi[:, lo:hi]
        # Negligible weights set to exactly 0: avoids subnormal floats (very slow BLAS).
        phi = np.where(bound[:, lo:hi] > np.log(tol) - 20.0, np.exp(logphi), 0.0)
        nu = m[:, None, :] / den
        w_mu = phi * (step * np.sqrt(t) / np.sqrt(np.pi))[None, :]
        mu[idx] = np.einsum("bk,bkr->br", w_mu, nu)
        if need_second:
            c = phi * (step * t)[None, :]
            a = nu * np.sqrt(c)[:, :, None]
            mm = np.matmul(a.transpose(0, 2, 1), a)
            diag = np.einsum("bk,bkr->br", c, k[:, None, :] / den)
            mm[:, np.arange(r), np.arange(r)] += diag
            M[idx] = mm
    mu = mu.reshape(lead + (r,))
    if need_second:
        M = M.reshape(lead + (r, r))
    return mu, M


def _right_svd(X):
    """Singular values and right singular vectors (s, V^T) of X (stacks allowed), without U.

    Tall X (n >= d): SVD of the d x d factor R of X = QR (same s and V; avoids the n x d U,
    which is very slow to form). Wide X: thin SVD directly.
    """
    if X.shape[-2] >= X.shape[-1]:
        X = np.linalg.qr(X, mode="r")
    _, s, vt = np.linalg.svd(X, full_matrices=False)
    return s, vt


def _svd_rowspace(X):
    """(s, V^T) restricted to the numerical rank (cutoff as np.linalg.pinv's default)."""
    with _blas_single_thread():
        s, vt = _right_svd(X)
    cutoff = max(X.shape) * np.finfo(np.float64).eps * (s[0] if s.size else 0.0)
    rank = int(np.sum(s > cutoff))
    return s[:rank], vt[:rank]


def _check_X_teacher(X, teacher):
    X = np.asarray(X, dtype=np.float64)
    teacher = np.asarray(teacher, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must be a non-empty 2-D array (n x d); got shape {X.shape}")
    if teacher.shape != (X.shape[1],):
        raise ValueError(f"teacher must have shape ({X.shape[1]},); got {teacher.shape}")
    if not np.all(np.isfinite(X)) or not np.all(np.isfinite(teacher)):
        raise ValueError("X and teacher must be finite")
    if not np.any(teacher):
        raise ValueError("teacher must be non-zero (sigma^2 = |teacher|^2 / snr)")
    return X, teacher


def _alignment_from_spectrum(b, s2, snr, metric, b2, probe_gram=None):
    """Core of expected_alignment_given_X: row-space coords b (r,), squared singular values s2."""
    snr = np.atleast_1d(snr)
    sigma2 = b2 / snr  # (S,)
    if probe_gram is None:
        mean = np.broadcast_to(b, (snr.size, b.size))
        var = sigma2[:, None] / s2[None, :]
    else:
        g_eval, g_vec = np.linalg.eigh(probe_gram)
        root = (g_vec * np.sqrt(np.clip(g_eval, 0, None))) @ g_vec.T  # G_r^(1/2)
        cov = root @ np.diag(1.0 / s2) @ root  # covariance of L c per unit sigma^2
        c_eval, c_vec = np.linalg.eigh((cov + cov.T) / 2)
        c_eval = np.clip(c_eval, 0, None)
        mean = np.broadcast_to(c_vec.T @ (root @ b), (snr.size, b.size))
        var = sigma2[:, None] * c_eval[None, :]
    mu, M = unit_vector_moments(mean, var, need_second=(metric == "cka_linear"))
    if metric == "cosine_end_to_end":
        return (mu**2).sum(-1)
    return (M**2).sum((-1, -2))


def expected_alignment_given_X(X, teacher, snr, metric, probes=None):
    """E over the two members' noise of their alignment, for one fixed X and teacher.

    In the right-singular basis of X (X = U diag(s) V^T, rank r), each member's map has
    coordinates c = V^T beta + diag(1/s) g, g ~ N(0, sigma^2 I_r), sigma^2 = |teacher|^2/snr,
    independently for the two members. Hence (the unit vectors being independent)

        E[cos]   = |E[c/|c|]|^2,          E[cos^2] = ||E[c c^T/|c|^2]||_F^2,

    and both moments of c/|c| are one-dimensional integrals (:func:`unit_vector_moments`),
    evaluated by quadrature to ~1e-10: this is the exact expectation, not a Monte-Carlo estimate.

    metric="cka_linear" with ``probes`` Z (m x d): the linear CKA of the rank-one hidden layers
    on the centred probes, i.e. cos^2 in the metric G = Z_c^T Z_c (w = G_r^(1/2) c is again
    Gaussian; rotated to diagonal covariance). probes=None: the isotropic-probe limit cos^2.
    Returns a float, or an array shaped like ``snr``.
    """
    metric = _check_metric(metric)
    X, teacher = _check_X_teacher(X, teacher)
    snr_a = _check_snr(snr)
    if probes is not None and metric != "cka_linear":
        raise ValueError("probes only apply to metric 'cka_linear'")
    s, vt = _svd_rowspace(X)
    b = vt @ teacher
    gram = None
    if probes is not None:
        Z = np.asarray(probes, dtype=np.float64)
        if Z.ndim != 2 or Z.shape[1] != X.shape[1] or Z.shape[0] < 2:
            raise ValueError(f"probes must have shape (m >= 2, {X.shape[1]}); got {Z.shape}")
        zr = (Z - Z.mean(axis=0)) @ vt.T
        gram = zr.T @ zr
    out = _alignment_from_spectrum(b, s**2, snr_a.ravel(), metric, float(teacher @ teacher), gram)
    out = out.reshape(snr_a.shape)
    return out if out.ndim else float(out)


def expected_test_error_given_X(X, teacher, snr):
    """Exact E over the noise of the clean test MSE |beta_hat - beta|^2 for one X and teacher.

        E|beta_hat - beta|^2 = |(I - P) beta|^2 + sigma^2 tr((X^T X)^+) = |(I-P) beta|^2 + sigma^2 sum 1/s_i^2.
    """
    X, teacher = _check_X_teacher(X, teacher)
    snr_a = _check_snr(snr)
    s, vt = _svd_rowspace(X)
    b2 = float(teacher @ teacher)
    kept = vt @ teacher
    bias = max(b2 - float(kept @ kept), 0.0)
    out = bias + (b2 / snr_a) * float(np.sum(1.0 / s**2))
    return out if out.ndim else float(out)


# --------------------------------------------------------------------------- averaged over X


def _draw_spectra(n: int, d: int, draws: int, seed: int):
    """Seeded draws of (row-space teacher coordinates b, squared singular values) for unit |beta|.

    Stream keyed by (seed, n, d) only, so a grid point gets the same X draws whatever else is
    computed; X rows ~ N(0, I_d) and a uniformly random unit teacher per draw.
    """
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 7305, n, d])))
    r = min(n, d)
    bs = np.empty((draws, r))
    s2 = np.empty((draws, r))
    per = max(1, 4_000_000 // (n * d))
    done = 0
    while done < draws:
        c = min(per, draws - done)
        X = rng.standard_normal((c, n, d))
        beta = rng.standard_normal((c, d))
        beta /= np.linalg.norm(beta, axis=1, keepdims=True)
        with _blas_single_thread():
            s, vt = _right_svd(X)
        bs[done:done + c] = np.einsum("crd,cd->cr", vt, beta)
        s2[done:done + c] = s**2
        done += c
    return bs, s2


def _cv_mean(y, controls):
    """Mean of y with regression control variates (columns of known zero mean); (mean, stderr)."""
    draws = y.shape[0]
    if not controls or draws < 8:
        return y.mean(0), y.std(0, ddof=1) / np.sqrt(draws)
    C = np.column_stack(controls)
    C = C - C.mean(0)  # regression estimator: controls centred at their sample mean ...
    mean_shift = np.column_stack(controls).mean(0)  # ... and corrected by their known mean (0)
    A = np.column_stack([np.ones(draws), C])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    est = coef[0] - mean_shift @ coef[1:]
    dof = max(draws - A.shape[1], 1)
    return est, np.sqrt((resid**2).sum(0) / dof / draws)


def _controls(bs, s2, n, d):
    """Functions of X with exactly known means (shifted to mean zero) for variance reduction."""
    controls = []
    m = abs(n - d)
    if n < d:
        S = (bs**2).sum(1)  # |P beta|^2 ~ Beta(n/2, (d-n)/2) for a unit teacher
        a, c = n / 2.0, (d - n) / 2.0
        raw = [a / (a + c), a * (a + 1) / ((a + c) * (a + c + 1)),
               a * (a + 1) * (a + 2) / ((a + c) * (a + c + 1) * (a + c + 2))]
        controls += [S - raw[0], S**2 - raw[1], S**3 - raw[2]]
    if m >= 6:  # tr(W^-1) has a finite variance for m >= 4; keep a margin
        et, _, _ = inverse_wishart_trace_moments(min(n, d), max(n, d))
        controls.append((1.0 / s2).sum(1) - float(et))
    return controls


def monte_carlo_alignment(snr, n, d, metric, draws=200, seed=0, *, control_variates=True,
                          return_stderr=False):
    """Average over seeded draws of X (and teacher direction) of expected_alignment_given_X.

    The noise expectation is exact (quadrature) for every draw, so the only error is the
    sampling of X: returned ``stderr`` (with return_stderr=True) estimates it. With
    control_variates=True the plain mean is replaced by the regression estimator using functions
    of X with exactly known means: |P beta|^2, its square and cube (Beta moments, n < d) and
    tr(W^-1) (mean p/(m-1), only for m = |n-d| >= 6). This removes most of the X-to-X variance
    at a bias O(1/draws). Valid at every n, including n = d. snr may be an array (the same X
    draws are reused for every snr: common random numbers); n and d are scalars.
    Returns float or array like snr (and the stderr of the same shape if requested).
    """
    metric = _check_metric(metric)
    snr_a = _check_snr(snr)
    n = _check_scalar_count(n, "n")
    d = _check_scalar_count(d, "d")
    draws = _check_scalar_count(draws, "draws")
    bs, s2 = _draw_spectra(n, d, draws, seed)
    flat = snr_a.ravel()
    sigma2 = 1.0 / flat
    mean = np.broadcast_to(bs[:, None, :], (draws, flat.size, bs.shape[1]))
    var = sigma2[None, :, None] / s2[:, None, :]
    mu, M = unit_vector_moments(mean, var, need_second=(metric == "cka_linear"))
    vals = (mu**2).sum(-1) if metric == "cosine_end_to_end" else (M**2).sum((-1, -2))  # (draws, S)
    controls = _controls(bs, s2, n, d) if control_variates else []
    est, err = _cv_mean(vals, controls)
    est = est.reshape(snr_a.shape)
    err = err.reshape(snr_a.shape)
    if not est.ndim:
        est, err = float(est), float(err)
    return (est, err) if return_stderr else est


def monte_carlo_test_error(snr, n, d, draws=200, seed=0, teacher_norm=1.0, *, return_stderr=False):
    """Average over seeded draws of X of the exact noise-averaged test error.

    Per draw: B |(I-P) beta_unit|^2 + (B/snr) tr((X^T X)^+), B = teacher_norm^2. Uses the same
    X draws as monte_carlo_alignment. Near n = d the mean is infinite (|n - d| <= 1) or the
    variance is (|n - d| <= 3): the sample mean is then not a reliable estimate.
    """
    snr_a = _check_snr(snr)
    n = _check_scalar_count(n, "n")
    d = _check_scalar_count(d, "d")
    draws = _check_scalar_count(draws, "draws")
    b2 = float(_check_teacher_norm(teacher_norm)) ** 2
    bs, s2 = _draw_spectra(n, d, draws, seed)
    bias = b2 * np.clip(1.0 - (bs**2).sum(1), 0.0, None)
    vals = bias[:, None] + (b2 / snr_a.ravel())[None, :] * (1.0 / s2).sum(1)[:, None]
    est = vals.mean(0).reshape(snr_a.shape)
    err = (vals.std(0, ddof=1) / np.sqrt(draws)).reshape(snr_a.shape)
    if not est.ndim:
        est, err = float(est), float(err)
    return (est, err) if return_stderr else est
