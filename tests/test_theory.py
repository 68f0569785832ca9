"""Tests of alignlib.theory: closed forms vs Monte-Carlo over X, exact-given-X vs brute force,
hand-checkable limits, validation. Budget: a few seconds on 2 cores."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alignlib import theory as th

D = 50
SNRS = np.array([0.1, 0.3, 1, 3, 10, 30, 100])
NS = [10, 20, 30, 40, 60, 75, 100, 200, 500, 1000]
METRICS = ["cosine_end_to_end", "cka_linear"]


def _band_tolerance(n, d=D):
    """The acceptance bands of the issue: 0.015 if |n-d| >= 0.5 d, 0.03 if |n-d| >= 0.2 d."""
    gap = abs(n - d)
    if gap >= 0.5 * d:
        return 0.015
    if gap >= 0.2 * d:
        return 0.03
    return None


# ------------------------------------------------------------------ closed form vs Monte-Carlo


@pytest.fixture(scope="module")
def grid_mc():
    """MC over 150 seeded draws of X per n (noise expectation exact for every draw)."""
    out = {}
    for metric in METRICS:
        for n in NS:
            out[metric, n] = th.monte_carlo_alignment(SNRS, n, D, metric, draws=150, seed=11,
                                                      return_stderr=True)
    return out


@pytest.mark.parametrize("metric", METRICS)
def test_closed_form_matches_monte_carlo_on_grid(grid_mc, metric):
    worst = {}
    for n in NS:
        tol = _band_tolerance(n)
        assert tol is not None
        mc, se = grid_mc[metric, n]
        # The MC must be precise enough for the comparison to mean something.
        assert np.all(se < tol / 4), (n, se)
        cf = th.linear_alignment(SNRS, n, D, metric)
        diff = np.abs(cf - mc)
        worst[tol] = max(worst.get(tol, 0.0), float(diff.max()))
        assert np.all(diff <= tol), (metric, n, cf, mc)
    print(f"\n{metric}: worst |closed form - MC| per band {worst}")


@pytest.mark.parametrize("metric", METRICS)
def test_closed_form_is_much_better_than_the_bands(grid_mc, metric):
    # Observed: <= 0.0055 (at n = 10, p = 10: the 1/p expansion), <= 0.002 for n >= 20; the MC's
    # own error is ~0.001. A regression guard well inside the bands.
    for n in NS:
        mc, se = grid_mc[metric, n]
        cf = th.linear_alignment(SNRS, n, D, metric)
        bound = 0.008 if n < 20 else 0.004
        assert np.all(np.abs(cf - mc) <= bound + 3 * se), (metric, n, np.abs(cf - mc).max())


def test_leading_order_within_bands_far_from_threshold():
    ref = {m: th.linear_alignment(SNRS, np.array(NS)[:, None], D, m) for m in METRICS}
    for metric in METRICS:
        lead = th.linear_alignment(SNRS, np.array(NS)[:, None], D, metric, approximation="leading")
        for i, n in enumerate(NS):
            if abs(n - D) >= 0.5 * D:
                assert np.all(np.abs(lead[i] - ref[metric][i]) <= 0.03), (metric, n)
    # Undefined where the Wishart moments it needs diverge.
    assert np.isnan(th.linear_alignment(1.0, D + 1, D, "cosine_end_to_end", approximation="leading"))
    assert np.isnan(th.linear_alignment(1.0, D - 3, D, "cka_linear", approximation="leading"))
    assert np.isfinite(th.linear_alignment(1.0, D + 4, D, "cka_linear", approximation="leading"))


def test_closed_form_near_threshold_and_cka_peak_at_n_equals_d():
    # At n = d both members' noise is amplified along the same least-singular direction of X:
    # cos averages ~0 but cos^2 (CKA) ~ 1/2 (Fisher: E r^2 = 1/k, k = |n-d| + 2 = 2).
    cf = th.linear_alignment([0.3, 3.0], D, D, "cka_linear")
    mc, se = th.monte_carlo_alignment([0.3, 3.0], D, D, "cka_linear", draws=60, seed=5,
                                      return_stderr=True)
    assert np.all(np.abs(cf - 0.5) < 0.03)
    assert np.all(np.abs(cf - mc) < 4 * se + 0.01)
    cos = th.linear_alignment([0.3, 3.0], D, D, "cosine_end_to_end")
    assert np.all(cos < 0.05)


def test_test_error_matches_monte_carlo():
    # Stated relative tolerance: 3% if |n-d| >= 0.5 d, 6% if |n-d| >= 0.2 d (the closed form is
    # exact, these are ~4 MC standard errors at 400 draws).
    for n in NS:
        tol = 0.03 if abs(n - D) >= 0.5 * D else 0.06
        cf = th.linear_test_error(SNRS, n, D)
        mc = th.monte_carlo_test_error(SNRS, n, D, draws=400, seed=2)
        assert np.all(np.abs(mc / cf - 1) <= tol), (n, mc / cf - 1)


# ------------------------------------------------------------------ limits


@pytest.mark.parametrize("metric", METRICS)
def test_snr_to_infinity_gives_perfect_alignment(metric):
    ns = np.array([5, 10, 40, 45, 48, 52, 55, 60, 200])
    big = th.linear_alignment(1e9, ns, D, metric)
    assert np.all(big > 1 - 1e-5), big
    # At n = d and n = d +- 1 the approach is slower (E S^-1 diverges for k = |n-d|+2 <= 3):
    # 1 - E cos ~ SNR^-1/2 at n = d.
    near = 1 - th.linear_alignment([1e6, 1e8, 1e9], [[D - 1], [D], [D + 1]], D, metric)
    assert np.all(near[:, 2] < 2e-3) and np.all(near[:, 2] > 0)
    assert 8 < near[1, 0] / near[1, 1] < 12  # factor 10 per factor 100 in SNR
    assert np.all(th.linear_alignment(np.inf, ns, D, metric) == 1.0)
    # n < d, noiseless: every member is P beta, so cos = 1 exactly, also in the MC estimator.
    assert th.monte_carlo_alignment(np.inf, 20, D, metric, draws=5) == pytest.approx(1.0, abs=1e-12)
    assert th.monte_carlo_alignment(1e8, 20, D, metric, draws=5) > 1 - 1e-5


def test_test_error_limits():
    n = np.array([52, 60, 100, 1000])
    snr = 2.0
    sigma2 = 1.0 / snr
    assert np.allclose(th.linear_test_error(snr, n, D), sigma2 * D / (n - D - 1), rtol=1e-14)
    assert np.allclose(th.linear_test_error(snr, n, D, teacher_norm=3.0),
                       9.0 * sigma2 * D / (n - D - 1), rtol=1e-14)
    # Below the threshold: bias of the unseen directions + variance.
    assert th.linear_test_error(snr, 20, D) == pytest.approx((1 - 20 / D) + sigma2 * 20 / (D - 21))
    assert np.all(np.isinf(th.linear_test_error(snr, [D - 1, D, D + 1], D)))
    assert th.linear_test_error(np.inf, 20, D) == pytest.approx(1 - 20 / D)


FINE_NS = np.arange(2, 301)


@pytest.fixture(scope="module")
def fine_curves():
    """Closed forms on every n in 2..300 for the SNR grid: {metric: array (snr, n)}."""
    return {m: th.linear_alignment(SNRS[:, None], FINE_NS[None, :], D, m) for m in METRICS}


def test_cosine_has_its_minimum_at_n_equals_d_for_every_snr(fine_curves):
    ns = FINE_NS
    for i, snr in enumerate(SNRS):
        cos = fine_curves["cosine_end_to_end"][i]
        assert ns[np.argmin(cos)] == D
        # Monotone on each side (from n = 10: with a handful of samples and a low SNR the sign
        # coherence of the tiny-p maps makes cos rise slightly between n = 1 and n ~ 5).
        assert np.all(np.diff(cos[(ns >= 10) & (ns <= D)]) < 0) and np.all(np.diff(cos[ns >= D]) > 0)
    mc = [th.monte_carlo_alignment(1.0, n, D, "cosine_end_to_end", draws=40, seed=1) for n in (40, 50, 60)]
    assert mc[1] < mc[0] and mc[1] < mc[2]


def test_cka_is_non_monotonic_with_minima_flanking_n_equals_d(fine_curves):
    ns = FINE_NS
    below, above = [], []
    for i, snr in enumerate(SNRS):
        cka = fine_curves["cka_linear"][i]
        lo = ns[ns <= D][np.argmin(cka[ns <= D])]
        hi = ns[ns >= D][np.argmin(cka[ns >= D])]
        below.append(lo)
        above.append(hi)
        assert cka[ns == lo] < cka[0] and cka[ns == hi] < cka[-1]  # non-monotonic in n
    # The minima close in on n = d as the SNR grows; at low SNR n = d is a local maximum.
    assert np.all(np.diff(below) >= 0) and np.all(np.diff(above) <= 0)
    assert abs(below[-1] - D) <= 1 and abs(above[-1] - D) <= 1
    low = th.linear_alignment(0.1, [D - 2, D, D + 2], D, "cka_linear")
    assert low[1] > low[0] and low[1] > low[2]


def test_cosine_increases_with_snr(grid_mc):
    snrs = np.geomspace(0.01, 1000, 41)
    ns = np.array([2, 10, 30, 45, 49, 50, 51, 55, 75, 200, 1000])[:, None]
    cf = th.linear_alignment(snrs, ns, D, "cosine_end_to_end")
    assert np.all(np.diff(cf, axis=1) > 0)
    for n in NS:  # also the MC (same X draws for every snr)
        assert np.all(np.diff(grid_mc["cosine_end_to_end", n][0]) > 0)


def test_cka_increases_with_snr_except_for_a_dip_near_the_threshold(grid_mc):
    # E cos^2 ~ r^2 + tau (1 - r)^2 (r: signal fraction, tau: noise-overlap variance) first
    # *decreases* with the SNR while r < tau / (1 + tau): visible near n = d, where tau is large.
    for n in NS:
        cf = th.linear_alignment(SNRS, n, D, "cka_linear")
        mc = grid_mc["cka_linear", n][0]
        if abs(n - D) > 0.2 * D:
            assert np.all(np.diff(cf) > 0) and np.all(np.diff(mc) > 0), n
        else:  # n = 40, 60: dip between SNR 0.1 and 0.3, increasing from there on
            assert cf[1] < cf[0] and mc[1] < mc[0], n
            assert np.all(np.diff(cf[1:]) > 0) and np.all(np.diff(mc[1:]) > 0), n
    at_d = th.linear_alignment(SNRS, D, D, "cka_linear")
    mc_d = th.monte_carlo_alignment([0.1, 10.0, 100.0], D, D, "cka_linear", draws=60, seed=3)
    assert at_d[0] > at_d[4] < at_d[6] and mc_d[0] > mc_d[1] < mc_d[2]


def test_one_dimensional_cases_are_exact():
    # n = 1: cos = sign((s + e_a)(s + e_b)) -> (2/pi) arcsin(SNR/(1+SNR)); CKA = 1.
    snr = np.array([0.2, 1.0, 5.0])
    assert np.allclose(th.linear_alignment(snr, 1, D, "cosine_end_to_end"),
                       2 / np.pi * np.arcsin(snr / (1 + snr)), rtol=1e-13)
    assert np.all(th.linear_alignment(snr[:, None], [1, 7], [D, 1], "cka_linear") == 1.0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200_000, 7))  # d = 1, n = 7: beta_hat ~ N(1, sigma^2/|x|^2)
    q = (x**2).sum(1)
    sig = np.sqrt(1 / snr[1] / q)
    a, b = 1 + sig * rng.standard_normal(q.size), 1 + sig * rng.standard_normal(q.size)
    brute = np.mean(np.sign(a * b))
    assert th.linear_alignment(snr[1], 7, 1, "cosine_end_to_end") == pytest.approx(brute, abs=0.01)


# ------------------------------------------------------------------ exact given X


def _brute_force(X, teacher, snr, pairs, rng, probes=None):
    """Direct simulation: beta_hat = pinv(X) (X teacher + eps), per member."""
    pinv = np.linalg.pinv(X)
    sigma = np.sqrt(teacher @ teacher / snr)
    y = X @ teacher
    ba = (y[None, :] + sigma * rng.standard_normal((pairs, X.shape[0]))) @ pinv.T
    bb = (y[None, :] + sigma * rng.standard_normal((pairs, X.shape[0]))) @ pinv.T
    if probes is not None:
        zc = probes - probes.mean(0)
        ba, bb = ba @ zc.T, bb @ zc.T
    cos = (ba * bb).sum(1) / np.linalg.norm(ba, axis=1) / np.linalg.norm(bb, axis=1)
    err = ((ba - teacher) ** 2).sum(1) if probes is None else None
    return cos, err


@pytest.mark.parametrize("n,d", [(8, 12), (15, 6)])
def test_expected_alignment_given_X_matches_brute_force(n, d):
    rng = np.random.default_rng(42)
    X = rng.standard_normal((n, d))
    teacher = rng.standard_normal(d)
    probes = rng.standard_normal((30, d))
    for snr in [0.3, 3.0]:
        cos, err = _brute_force(X, teacher, snr, 400, rng)
        se = cos.std() / np.sqrt(cos.size)
        se2 = (cos**2).std() / np.sqrt(cos.size)
        got = th.expected_alignment_given_X(X, teacher, snr, "cosine_end_to_end")
        assert abs(got - cos.mean()) < 4 * se, (got, cos.mean(), se)
        got2 = th.expected_alignment_given_X(X, teacher, snr, "cka_linear")
        assert abs(got2 - (cos**2).mean()) < 4 * se2, (got2, (cos**2).mean(), se2)
        ex = th.expected_test_error_given_X(X, teacher, snr)
        assert abs(ex - err.mean()) < 4 * err.std() / np.sqrt(err.size)
        cz, _ = _brute_force(X, teacher, snr, 400, rng, probes=probes)
        gz = th.expected_alignment_given_X(X, teacher, snr, "cka_linear", probes=probes)
        assert abs(gz - (cz**2).mean()) < 4 * (cz**2).std() / np.sqrt(cz.size)
    # Array snr in, array out, same numbers as scalar calls.
    arr = th.expected_alignment_given_X(X, teacher, np.array([0.3, 3.0]), "cka_linear")
    assert arr.shape == (2,)
    assert arr[1] == pytest.approx(th.expected_alignment_given_X(X, teacher, 3.0, "cka_linear"), rel=1e-12)


def test_expected_alignment_given_X_is_exact_to_high_precision():
    # A large brute force on a tiny case pins the quadrature far below any Monte-Carlo error.
    rng = np.random.default_rng(1)
    X = rng.standard_normal((3, 5))
    teacher = rng.standard_normal(5)
    cos, _ = _brute_force(X, teacher, 1.0, 400_000, rng)
    got = th.expected_alignment_given_X(X, teacher, 1.0, "cosine_end_to_end")
    assert abs(got - cos.mean()) < 4 * cos.std() / np.sqrt(cos.size)
    mu, M = th.unit_vector_moments(rng.standard_normal((4, 6)), rng.exponential(size=(4, 6)) ** 3)
    assert np.allclose(np.trace(M, axis1=1, axis2=2), 1.0, atol=1e-10)
    assert np.all(np.linalg.norm(mu, axis=1) < 1)


# ------------------------------------------------------------------ Wishart facts, API


def test_inverse_wishart_trace_moments():
    rng = np.random.default_rng(3)
    p, N = 6, 20
    A = rng.standard_normal((4000, N, p))
    inv = np.linalg.inv(np.einsum("bni,bnj->bij", A, A))
    T = np.trace(inv, axis1=1, axis2=2)
    T2 = np.einsum("bij,bji->b", inv, inv)
    et, vt, et2 = th.inverse_wishart_trace_moments(p, N)
    assert T.mean() == pytest.approx(et, rel=0.02)
    assert T.var() == pytest.approx(vt, rel=0.15)
    assert T2.mean() == pytest.approx(et2, rel=0.04)
    assert np.isinf(th.inverse_wishart_trace_moments(5, 6)[0])


def test_broadcasting_and_types():
    snr = np.array([0.5, 2.0])[:, None]
    n = np.array([20, 80, 120])[None, :]
    for metric in METRICS:
        out = th.linear_alignment(snr, n, D, metric)
        assert out.shape == (2, 3) and out.dtype == np.float64
        assert out[1, 2] == pytest.approx(th.linear_alignment(2.0, 120, D, metric), rel=1e-13)
        assert isinstance(th.linear_alignment(2.0, 120, D, metric), float)
    err = th.linear_test_error(snr, n, D)
    assert err.shape == (2, 3)
    assert isinstance(th.linear_test_error(1.0, 80, D), float)


def test_monte_carlo_is_deterministic():
    a = th.monte_carlo_alignment([1.0, 3.0], 30, 20, "cka_linear", draws=20, seed=4)
    b = th.monte_carlo_alignment([1.0, 3.0], 30, 20, "cka_linear", draws=20, seed=4)
    c = th.monte_carlo_alignment([1.0, 3.0], 30, 20, "cka_linear", draws=20, seed=5)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # The draws depend on (seed, n, d) only, not on which snr values are asked for.
    one = th.monte_carlo_alignment(3.0, 30, 20, "cka_linear", draws=20, seed=4)
    assert one == pytest.approx(a[1], rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), d=st.integers(1, 120), log_snr=st.floats(-3, 5))
def test_closed_forms_are_valid_probabilities_and_moments(n, d, log_snr):
    snr = 10.0**log_snr
    cos = th.linear_alignment([snr, 2 * snr], n, d, "cosine_end_to_end")
    cka = th.linear_alignment(snr, n, d, "cka_linear")
    assert 0 <= cos[0] <= 1 and cos[0] ** 2 <= cka <= 1  # Jensen: (E cos)^2 <= E cos^2
    assert cos[1] >= cos[0]
    err = th.linear_test_error(snr, n, d)
    assert err >= max(0.0, 1 - n / d)


@pytest.mark.parametrize("call", [
    lambda: th.linear_alignment(1.0, 10, 5, "cka"),
    lambda: th.linear_alignment(0.0, 10, 5, "cka_linear"),
    lambda: th.linear_alignment(-1.0, 10, 5, "cosine_end_to_end"),
    lambda: th.linear_alignment([1.0, np.nan], 10, 5, "cosine_end_to_end"),
    lambda: th.linear_alignment(1.0, 0, 5, "cka_linear"),
    lambda: th.linear_alignment(1.0, 2.5, 5, "cka_linear"),
    lambda: th.linear_alignment(1.0, 10, 0, "cka_linear"),
    lambda: th.linear_alignment(1.0, 10, 5, "cka_linear", approximation="exact"),
    lambda: th.linear_test_error(0.0, 10, 5),
    lambda: th.linear_test_error(1.0, 0, 5),
    lambda: th.linear_test_error(1.0, 10, 0),
    lambda: th.linear_test_error(1.0, 10, 5, teacher_norm=0.0),
    lambda: th.monte_carlo_alignment(1.0, 10, 5, "cos"),
    lambda: th.monte_carlo_alignment(1.0, [10, 20], 5, "cka_linear"),
    lambda: th.monte_carlo_alignment(-2.0, 10, 5, "cka_linear"),
    lambda: th.monte_carlo_test_error(1.0, 10, 0),
    lambda: th.expected_alignment_given_X(np.ones((3, 4)), np.ones(4), 1.0, "cka"),
    lambda: th.expected_alignment_given_X(np.ones((3, 4)), np.ones(3), 1.0, "cka_linear"),
    lambda: th.expected_alignment_given_X(np.ones((3, 4)), np.ones(4), 0.0, "cka_linear"),
    lambda: th.expected_alignment_given_X(np.ones((3, 4)), np.ones(4), 1.0, "cosine_end_to_end",
                                          probes=np.ones((5, 4))),
    lambda: th.expected_test_error_given_X(np.ones((3, 4)), np.zeros(4), 1.0),
])
def test_invalid_arguments_raise_value_error(call):
    with pytest.raises(ValueError):
        call()
