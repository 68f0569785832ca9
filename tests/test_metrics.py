"""alignlib.metrics: API, registry, reference implementations, closed forms, hand cases, errors."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch
from metric_references import lp_soft_matching, ref_predictivity
from scipy.spatial.distance import pdist, squareform

from alignlib.metrics import (
    METRICS,
    TRANSFORMATIONS,
    MetricInfo,
    compare,
    metric_names,
    pairwise,
)
from alignlib.metrics.cka import linear_kernel_products


# tiny problems: one intra-op thread (see conftest.single_torch_thread)
pytestmark = pytest.mark.usefixtures("single_torch_thread")


ACTIVATION_METRICS = [m for m in metric_names() if METRICS[m].needs == "activations"]
SMALL_K = {"neighborhood_overlap": {"k": 3}, "mutual_knn": {"k": 3}}


def rng_(seed=0):
    return np.random.default_rng(seed)


def related(seed=0, S=4, n=40, widths=(5, 5, 5, 5), noise=0.7):
    """Members sharing a latent (so values are neither ~0 nor ~1), possibly of different widths."""
    rng = rng_(seed)
    z = rng.normal(size=(n, 3))
    return [z @ rng.normal(size=(3, w)) + noise * rng.normal(size=(n, w)) + rng.normal(size=w)
            for w in widths[:S]]


# --------------------------------------------------------------------------- registry


def test_registry_lists_every_metric_with_its_properties():
    expected = ("cka_linear", "cka_linear_debiased", "cka_rbf", "information_imbalance",
                "neighborhood_overlap", "mutual_knn", "procrustes", "cca", "svcca", "pwcca", "rsa",
                "cosine_end_to_end", "linear_predictivity", "soft_matching")
    assert metric_names() == expected == tuple(METRICS)
    for name, info in METRICS.items():
        assert isinstance(info, MetricInfo) and info.name == name
        assert info.invariances <= TRANSFORMATIONS and info.joint_invariances <= info.invariances
        lo, hi = info.range
        assert lo < 1.0 == hi
        assert info.needs in ("activations", "end_to_end")
        assert info.description and callable(info.impl)
    assert METRICS["pwcca"].symmetric is False
    assert METRICS["cca"].invariances == TRANSFORMATIONS
    assert METRICS["cosine_end_to_end"].needs == "end_to_end"
    with pytest.raises(TypeError):
        METRICS["new"] = METRICS["cca"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        METRICS["cca"].symmetric = False


def test_config_list_agrees_with_registry():
    config = pytest.importorskip("alignpipe.config")
    assert tuple(config.KNOWN_METRICS) == metric_names()


# --------------------------------------------------------------------------- references


def centred(x):
    return x - x.mean(0)


def ref_cka(x, y):
    k, l = centred(x) @ centred(x).T, centred(y) @ centred(y).T
    return np.sum(k * l) / np.sqrt(np.sum(k * k) * np.sum(l * l))


def ref_hsic_u(k, l):
    n = k.shape[0]
    k, l = k.copy(), l.copy()
    np.fill_diagonal(k, 0)
    np.fill_diagonal(l, 0)
    one = np.ones(n)
    return (np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * one @ k @ l @ one) / (n * (n - 3))


def ref_cka_debiased(x, y):
    k, l = x @ x.T, y @ y.T
    return ref_hsic_u(k, l) / np.sqrt(ref_hsic_u(k, k) * ref_hsic_u(l, l))


def ref_cka_rbf(x, y, frac=0.8):
    def kern(a):
        d = pdist(a)
        sigma = frac * np.median(d)
        k = np.exp(-squareform(d) ** 2 / (2 * sigma ** 2))
        h = np.eye(len(a)) - 1 / len(a)
        return h @ k @ h
    k, l = kern(x), kern(y)
    return np.sum(k * l) / np.sqrt(np.sum(k * k) * np.sum(l * l))


def ref_procrustes(x, y):
    a, b = centred(x), centred(y)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    w = max(a.shape[1], b.shape[1])
    a = np.pad(a, ((0, 0), (0, w - a.shape[1])))
    b = np.pad(b, ((0, 0), (0, w - b.shape[1])))
    r, _ = scipy.linalg.orthogonal_procrustes(b, a)
    return 1 - np.sum((b @ r - a) ** 2) / 2


def ref_canonical(x, y):
    qa, _ = np.linalg.qr(centred(x))
    qb, _ = np.linalg.qr(centred(y))
    p, rho, _ = np.linalg.svd(qa.T @ qb, full_matrices=False)
    return qa @ p, rho


def ref_cca(x, y):
    return np.mean(ref_canonical(x, y)[1] ** 2)


def ref_svcca(x, y, var=0.99):
    def pca(a):
        u, s, _ = np.linalg.svd(centred(a), full_matrices=False)
        k = int(np.searchsorted(np.cumsum(s ** 2) / np.sum(s ** 2), var)) + 1
        return u[:, :k] * s[:k]
    return np.mean(ref_canonical(pca(x), pca(y))[1])


def ref_pwcca(x, y):
    h, rho = ref_canonical(x, y)
    alpha = np.abs(h.T @ centred(x)).sum(1)
    return np.sum(alpha * rho) / np.sum(alpha)


def ref_ridge_cca(x, y, ridge):
    """Regularised CCA from the textbook formula (full d x d covariances): directions fitted on the
    even-indexed probes with lam = ridge x mean variance per occupied direction, reported as the
    canonical variates' actual correlations on the odd-indexed probes (each half centred alone)."""
    fa, fb = centred(x[0::2]), centred(y[0::2])
    ha, hb = centred(x[1::2]), centred(y[1::2])

    def inv_sqrt(c):
        w, v = np.linalg.eigh(c)
        return v @ np.diag(w ** -0.5) @ v.T

    def reg_cov(a):
        return a.T @ a + ridge * np.trace(a.T @ a) / np.linalg.matrix_rank(a) * np.eye(a.shape[1])
    ia, ib = inv_sqrt(reg_cov(fa)), inv_sqrt(reg_cov(fb))
    p, _, qt = np.linalg.svd(ia @ fa.T @ fb @ ib, full_matrices=False)
    va, vb = ha @ ia @ p, hb @ ib @ qt.T
    corr = np.sum(va * vb, 0) / (np.linalg.norm(va, axis=0) * np.linalg.norm(vb, axis=0))
    return np.mean(corr ** 2)


def knn_ranks(x, cosine=False):
    """ranks[i, j]: position of j among i's neighbours (itself 0), by a stable sort."""
    n = len(x)
    if cosine:
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        key = -(xn @ xn.T)
    else:
        key = squareform(pdist(x, "sqeuclidean"))
    np.fill_diagonal(key, -np.inf)
    order = np.argsort(key, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(n)[None, :].repeat(n, 0), axis=1)
    return order, ranks


def ref_imbalance(x, y, k=1):
    """Delta(x -> y) by loops, ranks 1-based, shifted by (k+1)/2."""
    n = len(x)
    ox, _ = knn_ranks(x)
    _, ry = knn_ranks(y)
    mean_rank = np.mean([ry[i, j] for i in range(n) for j in ox[i, 1:k + 1]])
    return 2 / n * (mean_rank - (k + 1) / 2)


def ref_overlap(x, y, k, cosine=False):
    ox, _ = knn_ranks(x, cosine)
    oy, _ = knn_ranks(y, cosine)
    return np.mean([len(set(ox[i, 1:k + 1]) & set(oy[i, 1:k + 1])) / k for i in range(len(x))])


def ref_rsa(x, y, method="spearman"):
    f = scipy.stats.spearmanr if method == "spearman" else scipy.stats.pearsonr
    return f(pdist(x, "correlation"), pdist(y, "correlation"))[0]


REFERENCES = {
    "cka_linear": (ref_cka, {}),
    "cka_linear_debiased": (ref_cka_debiased, {}),
    "cka_rbf": (ref_cka_rbf, {}),
    "information_imbalance": (lambda x, y: 1 - (ref_imbalance(x, y) + ref_imbalance(y, x)) / 2, {}),
    "neighborhood_overlap": (lambda x, y: ref_overlap(x, y, 3), {"k": 3}),
    "mutual_knn": (lambda x, y: ref_overlap(x, y, 3, cosine=True), {"k": 3}),
    "procrustes": (ref_procrustes, {}),
    "cca": (ref_cca, {}),
    "svcca": (ref_svcca, {}),
    "pwcca": (ref_pwcca, {}),
    "rsa": (ref_rsa, {}),
    "cosine_end_to_end": (lambda x, y: np.sum(x * y) / np.linalg.norm(x) / np.linalg.norm(y), {}),
    # references from tests/metric_references.py (sklearn Ridge fold by fold; scipy's LP solver)
    "linear_predictivity": (lambda x, y: (ref_predictivity(x, y, "cv") + ref_predictivity(y, x, "cv")) / 2, {}),
    "soft_matching": (lambda x, y: lp_soft_matching(x, y), {}),
}


@pytest.mark.parametrize("metric", metric_names())
@pytest.mark.parametrize("widths", [(6, 6), (4, 7)])
def test_matches_reference_implementation(metric, widths):
    x, y = related(1, S=2, n=37, widths=widths)
    if metric == "cosine_end_to_end":
        y = y[:, :x.shape[1]]
    ref, opts = REFERENCES[metric]
    assert compare(x, y, metric, **opts) == pytest.approx(ref(x, y), abs=1e-10)
    assert compare(y, x, metric, **opts) == pytest.approx(ref(y, x), abs=1e-10)


@pytest.mark.parametrize("ridge", [0.05, 1.0])
def test_ridge_cca_matches_textbook_formula(ridge):
    x, y = related(2, S=2, n=30, widths=(4, 6))
    assert compare(x, y, "cca", ridge=ridge) == pytest.approx(ref_ridge_cca(x, y, ridge), abs=1e-10)


def test_information_imbalance_directions_and_k():
    x, y = related(3, S=2, n=30, widths=(3, 5), noise=2.0)
    for k in (1, 4):
        ab, ba = ref_imbalance(x, y, k), ref_imbalance(y, x, k)
        assert ab != pytest.approx(ba)
        assert compare(x, y, "information_imbalance", k=k, direction="a_to_b") == pytest.approx(1 - ab, abs=1e-12)
        assert compare(x, y, "information_imbalance", k=k, direction="b_to_a") == pytest.approx(1 - ba, abs=1e-12)
        assert compare(x, y, "information_imbalance", k=k) == pytest.approx(1 - (ab + ba) / 2, abs=1e-12)


def test_procrustes_angular_kind():
    x, y = related(4, S=2)
    nuc = compare(x, y, "procrustes")
    assert compare(x, y, "procrustes", kind="angular") == pytest.approx(1 - 2 / math.pi * math.acos(nuc))
    assert compare(x, x, "procrustes", kind="angular") == pytest.approx(1.0)


def test_rsa_pearson_option():
    x, y = related(5, S=2)
    assert compare(x, y, "rsa", method="pearson") == pytest.approx(ref_rsa(x, y, "pearson"), abs=1e-10)


@pytest.mark.parametrize("ucentre", [False, True])
@pytest.mark.parametrize("shape", [(30, (3, 5, 8)), (12, (20, 20, 20)), (9, (2, 7))])
def test_cka_feature_and_gram_routes_agree(ucentre, shape):
    n, widths = shape
    rng = rng_(6)
    xs = [torch.tensor(centred(rng.normal(size=(n, w)))) for w in widths]
    feature = linear_kernel_products(xs, ucentre, route="feature")
    gram = linear_kernel_products(xs, ucentre, route="gram", chunk=5)
    assert torch.allclose(feature, gram, rtol=1e-12, atol=1e-12 * float(feature.abs().max()))


# --------------------------------------------------------------------------- closed forms


def test_linear_cka_of_rank_one_representations_is_squared_cosine():
    rng = rng_(7)
    u, v = rng.normal(size=20), rng.normal(size=20)
    x = np.outer(u, rng.normal(size=4))
    y = np.outer(v, rng.normal(size=6))
    uc, vc = u - u.mean(), v - v.mean()
    assert compare(x, y, "cka_linear") == pytest.approx((uc @ vc) ** 2 / (uc @ uc) / (vc @ vc), abs=1e-12)


def test_debiased_cka_of_independent_gaussians_is_near_zero_but_biased_is_not():
    rng = rng_(8)
    reps = rng.normal(size=(12, 500, 50))
    debiased = pairwise(reps, "cka_linear_debiased")[np.triu_indices(12, 1)]
    biased = pairwise(reps, "cka_linear")[np.triu_indices(12, 1)]
    assert abs(debiased.mean()) < 0.02
    assert biased.mean() > 0.05 and biased.min() > 0.05


def test_debiased_cka_can_be_negative_without_nan():
    rng = rng_(9)
    values = pairwise(rng.normal(size=(10, 8, 3)), "cka_linear_debiased")
    assert np.isfinite(values).all() and values.min() < 0


def test_cca_of_an_invertible_linear_map_of_itself_is_one():
    rng = rng_(10)
    x = rng.normal(size=(50, 6))
    m = rng.normal(size=(6, 6)) + 3 * np.eye(6)
    for metric in ("cca", "svcca", "pwcca"):
        assert compare(x, x @ m + 2.0, metric) == pytest.approx(1.0, abs=1e-10)


def test_cca_ridge_avoids_the_trivial_one_when_n_is_below_d():
    rng = rng_(11)
    n, d = 20, 40
    x = rng.normal(size=(n, d)) * np.logspace(0, -2, d)
    y = rng.normal(size=(n, d)) * np.logspace(0, -2, d)
    with pytest.raises(ValueError, match="degenerate"):
        compare(x, y, "cca")
    value = compare(x, y, "cca", ridge=1.0)
    assert 0.0 < value < 0.9
    assert compare(x, x, "cca", ridge=1.0) == pytest.approx(1.0)
    assert compare(x, y, "svcca", ridge=1.0, variance=0.9) < 0.9
    assert compare(x, y, "pwcca", ridge=1.0) < 0.9


def test_information_imbalance_identical_and_independent():
    rng = rng_(12)
    x = rng.normal(size=(400, 5))
    assert compare(x, x, "information_imbalance", direction="a_to_b") == 1.0
    assert compare(x, 2 * x + 1, "information_imbalance") == 1.0
    values = [compare(rng.normal(size=(400, 5)), rng.normal(size=(400, 5)), "information_imbalance")
              for _ in range(5)]
    assert abs(np.mean(values)) < 0.03


def test_hand_computed_knn_and_imbalance():
    """Five points on a line, and their positions in a second 1-D space.

    A: [0, 1, 3, 7, 15] -> nearest neighbours (k=1) 1, 0, 1, 2, 3.
    B: [15, 7, 3, 1, 0] -> nearest neighbours 1, 2, 3, 4, 3.
    Shared: probes 0 and 4 -> overlap 2/5. Ranks in B of A's neighbours: 1, 4, 3, 2, 1
    (mean 2.2); ranks in A of B's neighbours: 1, 2, 3, 4, 1 (mean 2.2), so
    Delta = (2/5)(2.2 - 1) = 0.48 both ways. k = 2: shared 2+1+0+1+2 = 6 of 10; ranks in
    B of A's two nearest sum to 3+5+7+5+3 = 23, Delta = (2/5)(2.3 - 1.5) = 0.32.
    """
    a = np.array([0.0, 1, 3, 7, 15])[:, None]
    b = np.array([15.0, 7, 3, 1, 0])[:, None]
    assert compare(a, b, "neighborhood_overlap", k=1) == pytest.approx(0.4)
    assert compare(a, b, "neighborhood_overlap", k=2) == pytest.approx(0.6)
    assert compare(a, b, "information_imbalance", k=1) == pytest.approx(1 - 0.48)
    assert compare(a, b, "information_imbalance", k=2, direction="a_to_b") == pytest.approx(1 - 0.32)


def test_hand_computed_ties_go_to_the_lower_index():
    """A = [0, 1, 2, 3]: probe 1 is equidistant from 0 and 2 and takes 0; probe 2 takes 1.
    B = [0, 1.1, 2, 3]: probe 1's nearest is 2. So 3 of 4 nearest neighbours agree, and
    the ranks of the other space's neighbour are 1, 2, 1, 1 (A of B's) and 1, 2, 1, 1
    (B of A's): Delta = (2/4)(5/4 - 1) = 0.125 both ways."""
    a = np.array([0.0, 1, 2, 3])[:, None]
    b = np.array([0.0, 1.1, 2, 3])[:, None]
    assert compare(a, b, "neighborhood_overlap", k=1) == pytest.approx(0.75)
    assert compare(a, b, "information_imbalance", k=1, direction="b_to_a") == pytest.approx(0.875)
    assert compare(a, b, "information_imbalance", k=1, direction="a_to_b") == pytest.approx(0.875)


def test_hand_computed_mutual_knn_uses_cosine_of_raw_probes():
    """Probes at angles A = [0, 10, 30, 100, 200] deg and B = [0, 50, 30, 100, 180] deg with
    unequal lengths: cosine nearest neighbours are A: 1, 0, 1, 2, 3 and B: 2, 2, 1, 1, 3,
    shared for probes 2 and 4 -> 2/5 (Euclidean neighbours would differ)."""
    def points(deg, radius):
        t = np.deg2rad(deg)
        return np.c_[np.cos(t), np.sin(t)] * np.asarray(radius)[:, None]
    a = points([0, 10, 30, 100, 200], [1, 5, 0.2, 3, 1])
    b = points([0, 50, 30, 100, 180], [2, 1, 4, 0.5, 1])
    assert compare(a, b, "mutual_knn", k=1) == pytest.approx(0.4)


def test_cosine_end_to_end_can_be_negative():
    w = rng_(13).normal(size=(5, 3))
    assert compare(w, -w, "cosine_end_to_end") == pytest.approx(-1.0)
    assert pairwise(np.stack([w, -2 * w]), "cosine_end_to_end")[0, 1] == pytest.approx(-1.0)
    assert compare(w.ravel(), 3 * w.ravel(), "cosine_end_to_end") == pytest.approx(1.0)


# --------------------------------------------------------------------------- pairwise == compare


def check_pairwise_equals_compare(reps, metric, **options):
    m = pairwise(reps, metric, **options)
    S = len(reps)
    assert m.shape == (S, S) and m.dtype == np.float64
    for i in range(S):
        for j in range(S):
            if i != j:
                assert abs(m[i, j] - compare(reps[i], reps[j], metric, **options)) < 1e-10, (i, j)
    assert np.all(np.diag(m) == 1.0)


@pytest.mark.parametrize("metric", metric_names())
def test_pairwise_equals_compare_for_stacked_arrays(metric):
    reps = np.stack(related(14, S=4, n=30, widths=(5,) * 4))
    check_pairwise_equals_compare(reps, metric, **SMALL_K.get(metric, {}))


@pytest.mark.parametrize("metric", ACTIVATION_METRICS)
def test_pairwise_equals_compare_for_different_widths(metric):
    reps = related(15, S=4, n=30, widths=(3, 7, 5, 7))
    check_pairwise_equals_compare(reps, metric, **SMALL_K.get(metric, {}))


@pytest.mark.parametrize("metric,options", [
    ("cka_linear", {}), ("cka_linear_debiased", {}), ("cka_rbf", {}), ("procrustes", {}),
    ("cca", {"ridge": 0.5}), ("svcca", {"ridge": 0.5}), ("pwcca", {"ridge": 0.5}), ("rsa", {}),
    ("information_imbalance", {"direction": "a_to_b"}), ("mutual_knn", {"k": 2}),
])
@pytest.mark.parametrize("widths", [(30, 25, 30), (4, 30, 8)])
@pytest.mark.filterwarnings("ignore::alignlib.metrics.UninformativeWarning")   # n < d on purpose
def test_pairwise_equals_compare_when_n_below_d(metric, options, widths):
    reps = related(16, S=3, n=12, widths=widths)
    check_pairwise_equals_compare(reps, metric, **options)


def test_pairwise_of_end_to_end_vectors_and_single_member():
    reps = rng_(17).normal(size=(4, 9))
    check_pairwise_equals_compare(reps, "cosine_end_to_end")
    assert pairwise(reps[:1], "cosine_end_to_end").tolist() == [[1.0]]
    assert pairwise(np.stack(related(0, S=1)), "cka_linear").tolist() == [[1.0]]


# --------------------------------------------------------------------------- torch input


def test_torch_input_gives_the_same_numbers_as_numpy():
    reps = np.stack(related(18, S=3, n=25, widths=(4,) * 3))
    t = torch.tensor(reps, dtype=torch.float32)
    for metric in ("cka_linear", "information_imbalance", "procrustes"):
        got = pairwise(t, metric)
        assert isinstance(got, np.ndarray)
        np.testing.assert_allclose(got, pairwise(t.numpy().astype(np.float64), metric), atol=1e-12)
        assert isinstance(compare(t[0], t[1], metric), float)
    mixed = [torch.tensor(reps[0]), reps[1]]
    assert compare(*mixed, "cka_linear") == pytest.approx(compare(reps[0], reps[1], "cka_linear"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("metric", metric_names())
def test_cuda_tensors_give_the_cpu_numbers(metric):
    reps = np.stack(related(19, S=3, n=30, widths=(5,) * 3))
    options = SMALL_K.get(metric, {})
    got = pairwise(torch.tensor(reps, device="cuda"), metric, **options)
    np.testing.assert_allclose(got, pairwise(reps, metric, **options), atol=1e-9)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("metric", metric_names())
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_is_a_value_error(metric, bad):
    reps = np.stack(related(20, S=3, n=20, widths=(4,) * 3))
    reps[1, 3, 2] = bad
    with pytest.raises(ValueError, match="member 1 contains NaN or infinite"):
        pairwise(reps, metric)
    with pytest.raises(ValueError, match="NaN or infinite"):
        compare(reps[0], reps[1], metric)


@pytest.mark.parametrize("metric", ACTIVATION_METRICS)
def test_constant_representation_is_a_value_error(metric):
    reps = related(21, S=3, n=20, widths=(4,) * 3)
    reps[2] = np.full((20, 4), 1.5)
    with pytest.raises(ValueError, match="member 2 is constant"):
        pairwise(reps, metric, **SMALL_K.get(metric, {}))


def test_zero_end_to_end_map_is_a_value_error():
    with pytest.raises(ValueError, match="all zeros"):
        compare(np.zeros((3, 2)), np.ones((3, 2)), "cosine_end_to_end")


@pytest.mark.parametrize("metric", ACTIVATION_METRICS)
def test_mismatched_probe_counts_are_a_value_error(metric):
    rng = rng_(22)
    with pytest.raises(ValueError, match=r"different numbers of probes .*\[20, 19\]"):
        compare(rng.normal(size=(20, 4)), rng.normal(size=(19, 4)), metric)


def test_end_to_end_maps_of_different_sizes_are_a_value_error():
    with pytest.raises(ValueError, match="different sizes"):
        pairwise([np.ones((3, 2)), np.ones((2, 2))], "cosine_end_to_end")


def test_debiased_cka_needs_four_probes():
    rng = rng_(23)
    with pytest.raises(ValueError, match="at least 4 probes"):
        compare(rng.normal(size=(3, 2)), rng.normal(size=(3, 2)), "cka_linear_debiased")


@pytest.mark.parametrize("metric", ["information_imbalance", "neighborhood_overlap", "mutual_knn"])
def test_k_must_be_below_n(metric):
    x, y = related(24, S=2, n=10)
    for k in (10, 11, 0):
        with pytest.raises(ValueError, match="k = .* must satisfy 1 <= k < n = 10"):
            compare(x, y, metric, k=k)
    with pytest.raises(ValueError, match="k must be an integer"):
        compare(x, y, metric, k=2.5)
    assert np.isfinite(compare(x, y, metric, k=9))


def test_unknown_metric_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown metric 'cka'.*cka_linear, cka_linear_debiased"):
        pairwise(np.ones((2, 3, 3)), "cka")


def test_unknown_option_and_bad_option_values():
    x, y = related(25, S=2)
    with pytest.raises(TypeError, match="unknown option.*'kk'.*valid options: k, direction"):
        compare(x, y, "information_imbalance", kk=3)
    with pytest.raises(TypeError, match="valid options: none"):
        compare(x, y, "cka_linear", k=3)
    with pytest.raises(ValueError, match="direction must be one of"):
        compare(x, y, "information_imbalance", direction="forward")
    with pytest.raises(ValueError, match="ridge must be finite and >= 0"):
        compare(x, y, "cca", ridge=-1)
    with pytest.raises(ValueError, match="bandwidth"):
        compare(x, y, "cka_rbf", bandwidth=0)
    with pytest.raises(ValueError, match="variance must be a fraction"):
        compare(x, y, "svcca", variance=1.5)


def test_bad_shapes_are_value_errors():
    with pytest.raises(ValueError, match="shape"):
        pairwise(np.ones(5), "cka_linear")
    with pytest.raises(ValueError, match=r"\(n probes, d units\)"):
        pairwise(np.ones((2, 3, 4, 5)), "cka_linear")
    with pytest.raises(ValueError, match="empty"):
        pairwise([], "cka_linear")
    with pytest.raises(ValueError, match="numeric"):
        compare(np.array([["a", "b"]] * 3), np.ones((3, 2)), "cka_linear")


def test_rsa_and_mutual_knn_treat_silent_probes_as_uncorrelated():
    """A probe constant across units (a silent ReLU layer) is uncorrelated with every other
    probe by convention, instead of making the whole comparison undefined."""
    x, y = related(26, S=2, n=10)
    x[4] = 0.0
    value = compare(x, y, "rsa", method="pearson")
    assert np.isfinite(value)
    z = x - x.mean(1, keepdims=True)
    norms = np.linalg.norm(z, axis=1)
    z = np.divide(z, norms[:, None], out=np.zeros_like(z), where=norms[:, None] > 0)
    w = y - y.mean(1, keepdims=True)
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    iu = np.triu_indices(10, 1)
    expected = np.corrcoef((1 - z @ z.T)[iu], (1 - w @ w.T)[iu])[0, 1]
    assert value == pytest.approx(expected, abs=1e-12)
    assert compare(x, x, "mutual_knn", k=3) == pytest.approx(1.0)
    assert np.isfinite(compare(x, y, "mutual_knn", k=3))


def test_cka_rbf_rejects_a_zero_median_distance():
    x = np.zeros((9, 2))
    x[0] = 1.0
    with pytest.raises(ValueError, match="zero median pairwise distance"):
        compare(x, np.random.default_rng(0).normal(size=(9, 2)), "cka_rbf")
