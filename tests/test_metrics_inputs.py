"""alignlib.metrics on the inputs a new user passes: float32 activations, a single matrix, extreme
scales, strided, Fortran-ordered and read-only arrays, too few probes for the members' rank,
n = 2, and sizes that do not fit in memory. One test per row of issue 19's table, plus property
tests: every metric is invariant to scaling each input by 10^k (k in -100..100) and to its
strides and memory order."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import alignlib.metrics as M
from alignlib.metrics import METRICS, compare, metric_names, pairwise

pytestmark = pytest.mark.usefixtures("single_torch_thread")

ACTIVATION = [m for m in metric_names() if METRICS[m].needs == "activations"]
#: Small k so that the neighbour metrics work on few probes.
OPTIONS = {"neighborhood_overlap": {"k": 3}, "mutual_knn": {"k": 3}}
FEW = settings(max_examples=int(os.environ.get("ALIGNLIB_PROPERTY_EXAMPLES", "20")), deadline=None)


def members(seed: int, metric: str, n: int = 40, d: int = 5):
    """Two related generic members: activations (n, d) or end-to-end maps (5, d)."""
    rng = np.random.default_rng(seed)
    if METRICS[metric].needs == "end_to_end":
        a = rng.normal(size=(5, d))
        return a, a + 0.8 * rng.normal(size=a.shape)
    z = rng.normal(size=(n, 3))
    a = z @ rng.normal(size=(3, d)) + 0.7 * rng.normal(size=(n, d)) + rng.normal(size=d)
    b = np.tanh(z @ rng.normal(size=(3, d))) + 0.5 * rng.normal(size=(n, d))
    return a, b


# --------------------------------------------------------------------------- the table's rows


def test_float32_input_takes_the_rank_tolerance_from_its_dtype():
    """Rank 20 in 80 units against an invertible map of it: CCA is 1. In float32 storage the 60
    empty directions hold rounding noise; with float64's tolerance CCA whitened it (0.51)."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 20)) @ rng.normal(size=(20, 80))
    a = z.astype(np.float32)
    b = (z @ rng.normal(size=(80, 80))).astype(np.float32)
    eps32 = float(np.finfo(np.float32).eps)
    for metric in ("cca", "pwcca"):
        assert compare(a, b, metric) == pytest.approx(1.0, abs=1e-9)
        assert compare(a, b, metric) == compare(a, b, metric, rank_eps=eps32)
        assert compare(torch.from_numpy(a), torch.from_numpy(b), metric) == pytest.approx(1.0, abs=1e-9)
    # the same values held in float64 are float64 data: float64's tolerance, all 80 directions
    assert compare(a.astype(np.float64), b.astype(np.float64), "cca") < 0.9
    # pairwise too, and a float32 member among float64 ones sets the tolerance for all
    reps = [a, b.astype(np.float64), a.astype(np.float64)]
    assert np.allclose(pairwise(reps, "cca"), 1.0, atol=1e-9)


@pytest.mark.parametrize("metric", ACTIVATION)
def test_pairwise_rejects_a_single_matrix_for_activation_metrics(metric):
    x = np.random.default_rng(1).normal(size=(30, 4))
    with pytest.raises(ValueError, match=r"expected \(members, probes, units\).*shape \(30, 4\).*reps\[None\]"):
        pairwise(x, metric)
    with pytest.raises(ValueError, match=r"expected \(members, probes, units\)"):
        pairwise(torch.from_numpy(x), metric)
    # the (S, d) form stays valid for end-to-end metrics
    assert pairwise(x, "cosine_end_to_end").shape == (30, 30)


@pytest.mark.parametrize("metric", metric_names())
@pytest.mark.parametrize("scale", [1e80, 1e200, 1e-150, 1e-200])
def test_extreme_scales_give_the_unscaled_value(metric, scale):
    """1e80 and 1e200 made linear CKA 0 / NaN, 1e-150 and 1e-200 a 'zero self-similarity' error
    and a LinAlgError in Procrustes."""
    a, b = members(2, metric)
    opts = OPTIONS.get(metric, {})
    base = compare(a, b, metric, **opts)
    assert compare(scale * a, scale * b, metric, **opts) == pytest.approx(base, abs=1e-12)
    assert compare(scale * a, b, metric, **opts) == pytest.approx(base, abs=1e-12)
    reps = [scale * a, b, a / scale] if METRICS[metric].needs == "activations" else [scale * a, b, a]
    unscaled = pairwise([a, b, a], metric, **opts)
    np.testing.assert_allclose(pairwise(reps, metric, **opts), unscaled, atol=1e-12, rtol=0)


@pytest.mark.parametrize("metric", ACTIVATION)
def test_reversed_views_are_accepted_and_give_the_contiguous_value(metric):
    """Torch refused NumPy arrays with negative strides (raw 'negative strides' error)."""
    a, b = members(3, metric)
    opts = OPTIONS.get(metric, {})
    assert compare(a[::-1], b[::-1], metric, **opts) == compare(
        np.ascontiguousarray(a[::-1]), np.ascontiguousarray(b[::-1]), metric, **opts)
    assert compare(a[:, ::-1], b, metric, **opts) == compare(np.ascontiguousarray(a[:, ::-1]), b, metric, **opts)
    stack = np.stack([a, b])[:, ::-1, ::-1]
    np.testing.assert_array_equal(pairwise(stack, metric, **opts),
                                  pairwise(np.ascontiguousarray(stack), metric, **opts))


def test_read_only_and_memory_mapped_arrays_give_no_warning(tmp_path):
    """Right value, but torch warned 'The given NumPy array is not writable'."""
    a, b = members(4, "cka_linear")
    np.save(tmp_path / "a.npy", a)
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")
    frozen = b.copy()
    frozen.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compare(mapped, frozen, "cka_linear") == compare(a, b, "cka_linear")
        np.testing.assert_array_equal(pairwise(np.stack([a, b]), "procrustes"),
                                      pairwise([mapped, frozen], "procrustes"))
    assert not frozen.flags.writeable                     # the caller's array is left as it was


@pytest.mark.parametrize("metric", ["cka_linear", "procrustes"])
def test_members_spanning_the_probes_warn_naming_the_precondition(metric):
    """20 probes x 300 independent units: CKA 0.93, Procrustes 0.98, and no warning before."""
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(20, 300)), rng.normal(size=(20, 300))
    with pytest.warns(UserWarning, match=r"spans all n - 1 = 19 centred probe directions") as record:
        value = compare(a, b, metric)
    assert len(record) == 1 and record[0].category is M.UninformativeWarning
    assert "permutation_baseline" in str(record[0].message)
    assert value > 0.9
    with pytest.warns(M.UninformativeWarning) as record:           # once per call, not once per pair
        pairwise(rng.normal(size=(4, 20, 300)), metric)
    assert len(record) == 1
    with warnings.catch_warnings():                                # more probes than units: silent
        warnings.simplefilter("error")
        compare(rng.normal(size=(200, 30)), rng.normal(size=(200, 30)), metric)
        compare(rng.normal(size=(20, 300)), rng.normal(size=(20, 300)), "cka_linear_debiased")


def test_cca_warns_when_two_ranks_force_unit_canonical_correlations():
    """Two rank-25 members in the 39 centred dimensions of 40 probes share >= 11 directions:
    at least 11 of 25 canonical correlations are 1 whatever the members are."""
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=(40, 25)), rng.normal(size=(40, 25))
    for metric in ("cca", "svcca", "pwcca"):
        with pytest.warns(M.UninformativeWarning, match="at least 11 of their 25 canonical correlations are 1") as rec:
            value = compare(a, b, metric, **({"variance": 1.0} if metric == "svcca" else {}))
        assert len(rec) == 1
        assert value >= 11 / 25 - 1e-12 if metric == "cca" else value > 0
    rho = np.linalg.svd(np.linalg.qr(a - a.mean(0))[0].T @ np.linalg.qr(b - b.mean(0))[0], compute_uv=False)
    np.testing.assert_allclose(rho[:11], 1.0, atol=1e-12)  # the shared directions, by construction
    assert rho[11] < 0.99
    with pytest.warns(M.UninformativeWarning):
        assert compare(a, b, "cca") == pytest.approx(np.mean(rho ** 2), abs=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compare(a, b, "cca", ridge=0.1)                   # held-out correlations: no construction
        compare(rng.normal(size=(100, 25)), rng.normal(size=(100, 25)), "cca")


def test_predictivity_warns_when_its_training_folds_cannot_span_a_member():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(50, 100))
    with pytest.warns(M.UninformativeWarning, match=r"rank 49 but the smallest training set has .* = 40 probes"):
        value = compare(x, x, "linear_predictivity")
    assert value < 0.9                                    # even identical members
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compare(x[:, :10], x[:, :10], "linear_predictivity") == pytest.approx(1.0, abs=1e-9)


def test_the_warning_can_be_filtered_or_raised_on_its_own():
    rng = np.random.default_rng(11)
    a, b = rng.normal(size=(10, 30)), rng.normal(size=(10, 30))
    assert issubclass(M.UninformativeWarning, UserWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", M.UninformativeWarning)
        compare(a, b, "cka_linear")
    with warnings.catch_warnings():
        warnings.simplefilter("error", M.UninformativeWarning)
        with pytest.raises(M.UninformativeWarning):
            compare(a, b, "cka_linear")


@pytest.mark.parametrize("metric", ACTIVATION)
def test_two_probes_are_an_error(metric):
    """With n = 2, CKA = Procrustes = 1 for any data."""
    rng = np.random.default_rng(6)
    with pytest.raises(ValueError, match="at least 3 probes, got n = 2.*fixed by construction"):
        compare(rng.normal(size=(2, 3)), rng.normal(size=(2, 3)), metric)
    with pytest.raises(ValueError, match="at least 3 probes"):
        pairwise(rng.normal(size=(3, 2, 3)), metric)


@pytest.fixture
def memory_limit_restored():
    yield
    M.set_memory_limit(None)


def test_soft_matching_checks_its_memory_before_allocating(memory_limit_restored, monkeypatch):
    """200 probes x 20000 units aborted the process (std::bad_alloc); 10000 units took 5.3 GB."""
    from alignlib.metrics import _memory
    from alignlib.metrics.soft_matching import BYTES_PER_UNIT_PAIR

    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(200, 20000)), rng.normal(size=(200, 20000))
    estimate = 16 * 200 * 40000 + BYTES_PER_UNIT_PAIR * 20000 * 20000
    monkeypatch.setattr(_memory, "available_bytes", lambda device=None: 8 * 2 ** 30)
    with pytest.raises(MemoryError, match=rf"about {estimate:,} bytes.*widths \[20000, 20000\].*8.0 GiB"):
        compare(a, b, "soft_matching")
    M.set_memory_limit(2 ** 30)
    with pytest.raises(MemoryError, match=r"set_memory_limit"):
        pairwise([a[:, :5000], b[:, :5000], a[:, :10]], "soft_matching")
    assert M.memory_limit() == 2 ** 30
    assert np.isfinite(compare(a[:, :50], b[:, :60], "soft_matching"))   # small problems still run
    with pytest.raises(ValueError, match="positive integer"):
        M.set_memory_limit(0)


def test_linear_predictivity_checks_its_memory_before_allocating(memory_limit_restored):
    rng = np.random.default_rng(8)
    M.set_memory_limit(10 * 2 ** 20)
    reps = rng.normal(size=(4, 400, 500))
    with pytest.raises(MemoryError, match=r"linear_predictivity would need about [\d,]+ bytes.*400 probes "
                                          r"and 2000 units"):
        pairwise(reps, "linear_predictivity")
    M.set_memory_limit(None)
    assert M.memory_limit() > 10 * 2 ** 20


def test_default_memory_limit_is_the_available_memory(monkeypatch):
    from alignlib.metrics import _memory

    monkeypatch.setattr(_memory, "available_bytes", lambda device=None: 12345)
    assert M.memory_limit() == 12345
    monkeypatch.setattr(_memory, "available_bytes", lambda device=None: None)
    assert M.memory_limit() == _memory.DEFAULT_LIMIT_BYTES == 8 * 2 ** 30


# --------------------------------------------------------------------------- properties


EXPONENTS = st.integers(min_value=-100, max_value=100)


@pytest.mark.parametrize("metric", metric_names())
@FEW
@given(seed=st.integers(0, 2 ** 32 - 1), ka=EXPONENTS, kb=EXPONENTS)
def test_every_metric_is_invariant_to_scaling_each_input_by_a_power_of_ten(metric, seed, ka, kb):
    """Declared for every metric (isotropic_scaling); held only near unit scale before."""
    a, b = members(seed, metric)
    opts = OPTIONS.get(metric, {})
    sa, sb = 10.0 ** ka, 10.0 ** kb
    assert compare(sa * a, sb * b, metric, **opts) == pytest.approx(compare(a, b, metric, **opts), abs=1e-9)
    scaled = pairwise([sa * a, sb * b, sb * a], metric, **opts)
    np.testing.assert_allclose(scaled, pairwise([a, b, a], metric, **opts), atol=1e-9, rtol=0)


def _strided(x: np.ndarray, kind: str) -> np.ndarray:
    """``x``'s values in another memory layout."""
    if kind == "fortran":
        return np.asfortranarray(x)
    if kind == "reversed":
        return np.ascontiguousarray(x[::-1, ::-1])[::-1, ::-1]
    if kind == "every_other":
        big = np.zeros((x.shape[0], 2 * x.shape[1]))
        big[:, ::2] = x
        return big[:, ::2]
    if kind == "read_only":
        y = x.copy()
        y.setflags(write=False)
        return y
    raise AssertionError(kind)


@pytest.mark.parametrize("metric", metric_names())
@FEW
@given(seed=st.integers(0, 2 ** 32 - 1), kind=st.sampled_from(["fortran", "reversed", "every_other", "read_only"]))
def test_every_metric_ignores_strides_and_memory_order(metric, seed, kind):
    a, b = members(seed, metric)
    opts = OPTIONS.get(metric, {})
    va, vb = _strided(a, kind), _strided(b, kind)
    assert np.array_equal(va, a) and not (va.flags.c_contiguous and va.flags.writeable)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compare(va, vb, metric, **opts) == compare(a, b, metric, **opts)
        np.testing.assert_array_equal(pairwise([va, vb, va], metric, **opts), pairwise([a, b, a], metric, **opts))
    ta = torch.from_numpy(np.asfortranarray(a).T).T     # a non-contiguous torch view of the same values
    assert not ta.is_contiguous()
    assert compare(ta, torch.from_numpy(b), metric, **opts) == compare(a, b, metric, **opts)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_inputs_get_the_same_checks_and_numbers(memory_limit_restored):
    from alignlib.metrics import cross_validated, distance

    rng = np.random.default_rng(12)
    z = rng.normal(size=(200, 20)) @ rng.normal(size=(20, 80))
    a32 = torch.tensor(z, dtype=torch.float32, device="cuda")
    b32 = torch.tensor(z @ rng.normal(size=(80, 80)), dtype=torch.float32, device="cuda")
    assert compare(a32, b32, "cca") == pytest.approx(1.0, abs=1e-9)
    a, b = members(13, "procrustes")
    for metric in metric_names():
        x, y = members(13, metric)
        opts = OPTIONS.get(metric, {})
        tx, ty = (torch.tensor(v, device="cuda") for v in (x, y))
        assert compare(1e-200 * tx, 1e200 * ty, metric, **opts) == pytest.approx(compare(x, y, metric, **opts),
                                                                                  abs=1e-9)
    ta, tb = torch.tensor(a, device="cuda"), torch.tensor(b, device="cuda")
    assert distance(ta, tb, "procrustes") == pytest.approx(distance(a, b, "procrustes"), abs=1e-9)
    np.testing.assert_allclose(cross_validated(ta, tb, "procrustes").scores,
                               cross_validated(a, b, "procrustes").scores, atol=1e-9)
    with pytest.warns(M.UninformativeWarning):
        compare(torch.randn(20, 300, device="cuda"), torch.randn(20, 300, device="cuda"), "cka_linear")
    assert M.memory_limit(torch.device("cuda")) > 2 ** 30
    M.set_memory_limit(2 ** 20)
    with pytest.raises(MemoryError, match="linear_predictivity"):
        compare(torch.randn(400, 500, device="cuda"), torch.randn(400, 500, device="cuda"), "linear_predictivity")
