"""Cells where a metric is uninformative by construction (alignlib.metrics.preconditions), the storage-dtype
rank tolerance and the held-out ridge of the CCA family, and their integration in compute_alignment.
Each rule is checked both ways: it fires where declared and stays silent on ordinary layers."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import xarray as xr

from alignlib.ensembles.alignment import compute_alignment
from alignpipe.cubes import read_netcdf, write_netcdf
from alignlib.metrics import METRICS, compare, pairwise
from alignlib.metrics.preconditions import (
    probe_space,
    rank_tolerance,
    residue_fraction,
    storage_eps,
    tied_fraction,
    uninformative_reason,
)

pytestmark = pytest.mark.usefixtures("single_torch_thread")

N_PROBES, D_IN, WIDTH, S = 512, 50, 100, 4
F32 = np.finfo(np.float32).eps
CCA = ("cca", "svcca", "pwcca")
KNN = ("mutual_knn", "neighborhood_overlap", "information_imbalance")


def stored(a, dtype=np.float32):
    """Values as a cube of ``dtype`` holds them, back in float64."""
    return np.asarray(a).astype(dtype).astype(np.float64)


@pytest.fixture(scope="module")
def probes():
    return np.random.default_rng(0).normal(size=(N_PROBES, D_IN))


def linear_hidden(x, seed, direction=None):
    """The linear network's hidden layer H = X W^T (no bias): W = a learned rank-one map u v^T plus
    the 1e-3 initialisation, W_0 ~ N(0, (1e-3 / sqrt(d))^2). All members share v (identical
    end-to-end maps) unless ``direction`` is given."""
    rng = np.random.default_rng(seed)
    v = np.ones(D_IN) / np.sqrt(D_IN) if direction is None else direction
    u = rng.normal(size=WIDTH)
    u /= np.linalg.norm(u)
    w = np.outer(u, v) + 1e-3 / np.sqrt(D_IN) * rng.normal(size=(WIDTH, D_IN))
    return x @ w.T


def relu_hidden(x, seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(WIDTH, D_IN)) / np.sqrt(D_IN)
    return np.maximum(x @ w.T + 0.1 * rng.normal(size=WIDTH), 0.0)


@pytest.fixture(scope="module")
def linear_block(probes):
    return stored(np.stack([linear_hidden(probes, s) for s in range(S)]))


def test_every_metric_states_its_preconditions():
    for name, info in METRICS.items():
        assert len(info.preconditions) > 40, name


# --------------------------------------------------------------------------- the linear hidden layer


def test_linear_hidden_layer_cca_family_and_mutual_knn_are_flagged(linear_block, probes):
    for metric in ("cca", "pwcca"):
        reason = uninformative_reason(metric, linear_block, probes, np.float32)
        assert reason is not None and "invertible linear map of the inputs" in reason
        assert "1 by construction" in reason
    reason = uninformative_reason("mutual_knn", linear_block, probes, np.float32)
    assert reason is not None and "rank one" in reason
    assert max(residue_fraction(a) for a in linear_block) < 1e-3


def test_linear_hidden_layer_values_are_fixed_by_construction(linear_block):
    """What the flags prevent: CCA = PWCCA = 1 whatever the members, and float64's rank tolerance
    on float32 values whitens rounding noise (CCA ~0.61); identical end-to-end maps get mutual_knn ~0.5."""
    iu = np.triu_indices(S, 1)
    assert np.allclose(pairwise(linear_block, "cca", rank_eps=F32)[iu], 1.0, atol=1e-9)
    assert np.allclose(pairwise(linear_block, "pwcca", rank_eps=F32), 1.0, atol=1e-9)
    old = pairwise(linear_block, "cca")[iu]                     # float64 eps: the old tolerance
    assert 0.5 < old.min() and old.max() < 0.7
    assert pairwise(linear_block, "mutual_knn")[iu].max() < 0.6


def test_independent_end_to_end_directions_give_the_same_degenerate_cca(probes):
    rng = np.random.default_rng(1)
    block = stored(np.stack([linear_hidden(probes, s, rng.normal(size=D_IN)) for s in range(S)]))
    assert "invertible linear map" in uninformative_reason("cca", block, probes, np.float32)
    iu = np.triu_indices(S, 1)
    assert np.allclose(pairwise(block, "cca", rank_eps=F32)[iu], 1.0, atol=1e-9)


def test_svcca_rule_applies_to_the_pca_kept_directions(linear_block, probes):
    """SVCCA's 99 % cut keeps the learned rank-one part only: it compares those (informative);
    keeping every direction (variance = 1) makes it as degenerate as CCA."""
    assert uninformative_reason("svcca", linear_block, probes, np.float32) is None
    reason = uninformative_reason("svcca", linear_block, probes, np.float32, {"variance": 1.0})
    assert reason is not None and "after PCA" in reason


def test_euclidean_knn_metrics_on_the_linear_hidden_layer_stay_informative(linear_block, probes):
    for metric in ("neighborhood_overlap", "information_imbalance"):
        assert uninformative_reason(metric, linear_block, probes, np.float32) is None


def test_cca_rule_needs_the_probe_inputs_and_no_ridge(linear_block, probes):
    space = probe_space(probes)
    assert space.rank == D_IN
    assert uninformative_reason("cca", linear_block, space, np.float32) == \
        uninformative_reason("cca", linear_block, probes, np.float32)
    with pytest.raises(ValueError, match="probes"):
        uninformative_reason("cca", linear_block, probes[:100], np.float32)
    assert uninformative_reason("cca", linear_block, None, np.float32) is None
    assert uninformative_reason("cca", linear_block, probes, np.float32, {"ridge": 0.1}) is None


# --------------------------------------------------------------------------- ordinary layers: no flags


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_relu_layer_and_gaussian_members_are_not_flagged(probes, dtype):
    relu = stored(np.stack([relu_hidden(probes, s) for s in range(S)]), dtype)
    gauss = stored(np.random.default_rng(2).normal(size=(S, N_PROBES, WIDTH)), dtype)
    for block in (relu, gauss):
        for metric in CCA + KNN:
            assert uninformative_reason(metric, block, probes, dtype) is None, metric


def test_cca_flags_probes_not_exceeding_rank_plus_one():
    block = np.random.default_rng(3).normal(size=(3, 40, 60))
    assert "n - 1" in uninformative_reason("cca", block, None, np.float64)
    assert uninformative_reason("cca", block[:, :, :30], None, np.float64) is None
    assert uninformative_reason("cca", block, None, np.float64, {"ridge": 0.1}) is None


def test_cca_on_a_rank_deficient_linear_layer_is_informative(probes):
    """A linear layer narrower than the inputs (rank < rank(X)): members pick different subspaces."""
    rng = np.random.default_rng(4)
    block = stored(np.stack([probes @ rng.normal(size=(D_IN, 20)) for _ in range(S)]))
    assert uninformative_reason("cca", block, probes, np.float32) is None


# --------------------------------------------------------------------------- ties at storage precision


def test_ties_flag_single_unit_and_silent_layers_but_not_ordinary_ones(probes):
    rng = np.random.default_rng(5)
    single = stored(np.stack([probes @ rng.normal(size=(D_IN, 1)) for _ in range(S)]))
    assert tied_fraction(single[0], 10, "cosine", F32) == 1.0           # every cosine is +-1
    assert uninformative_reason("mutual_knn", single, probes, np.float32) is not None
    silent = stored(np.stack([relu_hidden(probes, s) for s in range(S)]))
    silent[:, : 3 * N_PROBES // 4] = 0.0                                 # 3/4 of the probes silent
    assert tied_fraction(silent[0], 10, "cosine", F32) > 0.7
    assert "ties at float32" in uninformative_reason("mutual_knn", silent, probes, np.float32)
    quantised = np.round(stored(np.stack([relu_hidden(probes, s)[:, :2] for s in range(S)])) * 2) / 2
    assert "ties" in uninformative_reason("neighborhood_overlap", quantised, probes, np.float32)
    relu = stored(np.stack([relu_hidden(probes, s) for s in range(S)]))
    assert tied_fraction(relu[0], 10, "cosine", F32) == 0.0
    assert tied_fraction(relu[0], 1, "euclidean", F32) == 0.0


def test_float16_storage_ties_the_linear_layer_but_float32_does_not(probes):
    """float16 rounding (relative 5e-4) is as large as the 1e-3 residue that orders the cosines."""
    raw = linear_hidden(probes, 0)
    assert tied_fraction(stored(raw, np.float16), 10, "cosine", storage_eps(np.float16)) > 0.9
    assert tied_fraction(stored(raw, np.float32), 10, "cosine", F32) == 0.0
    gauss = stored(np.random.default_rng(6).normal(size=(N_PROBES, WIDTH)), np.float16)
    assert tied_fraction(gauss, 10, "cosine", storage_eps(np.float16)) < 0.01


# --------------------------------------------------------------------------- rank tolerance


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_storage_rank_tolerance_recovers_the_rank_of_a_rounded_matrix(dtype):
    rng = np.random.default_rng(7)
    a = stored(rng.normal(size=(N_PROBES, D_IN)) @ rng.normal(size=(D_IN, WIDTH)) / np.sqrt(D_IN), dtype)
    ac = a - a.mean(0)
    s = np.linalg.svd(ac, compute_uv=False)
    norm = np.linalg.norm(a)
    assert (s > rank_tolerance(s[0], a.shape, norm, storage_eps(dtype))).sum() == D_IN
    assert (s > rank_tolerance(s[0], a.shape, norm, None)).sum() == WIDTH   # float64 eps: the old bug
    if dtype == np.float16:   # numpy.matrix_rank's rule at float16 eps would throw signal away
        assert (s > s[0] * max(a.shape) * storage_eps(dtype)).sum() < D_IN
    for metric in CCA:
        with pytest.raises(ValueError, match="rank_eps"):
            compare(a, a, metric, rank_eps=2.0)


def test_cca_uses_rank_eps():
    """The rank tolerance decides which directions CCA whitens: rank 50 at float32 eps, full at float64's."""
    rng = np.random.default_rng(8)
    x = stored(rng.normal(size=(N_PROBES, D_IN)) @ rng.normal(size=(D_IN, WIDTH)))
    y = x @ np.linalg.qr(rng.normal(size=(WIDTH, WIDTH)))[0] + 1e-3 * rng.normal(size=(N_PROBES, WIDTH))
    y = stored(y)
    assert compare(x, y, "cca", rank_eps=F32) > 0.99
    assert compare(x, y, "cca") < 0.9


# --------------------------------------------------------------------------- ridge


def in_sample_ridge_cca(x, y, ridge):
    """Mean squared actual correlation of in-sample ridge-CCA variates, ridge per occupied direction."""
    def reduce(a):
        u, s, _ = np.linalg.svd(a - a.mean(0), full_matrices=False)
        r = int((s > s[0] * max(a.shape) * np.finfo(float).eps).sum())
        u, s = u[:, :r], s[:r]
        return u, s / np.sqrt(s * s + ridge * np.mean(s * s))
    (ua, fa), (ub, fb) = reduce(x), reduce(y)
    p, sigma, qh = np.linalg.svd((ua * fa).T @ (ub * fb), full_matrices=False)
    corr = sigma / (np.linalg.norm(fa[:, None] * p, axis=0) * np.linalg.norm(fb[:, None] * qh.T, axis=0))
    return np.mean(corr ** 2)


def test_ridge_separates_independent_members_when_n_is_below_d():
    rng = np.random.default_rng(9)
    n, d, members = 50, 100, 8
    reps = rng.normal(size=(members, n, d))
    iu = np.triu_indices(members, 1)
    independent = pairwise(reps, "cca", ridge=0.1)[iu]
    assert independent.mean() < 0.08 and independent.max() < 0.15        # measured 0.04 / 0.06
    for metric in ("svcca", "pwcca"):
        assert np.abs(pairwise(reps, metric, ridge=0.1)[iu]).max() < 0.2
    for metric in CCA:
        assert compare(reps[0], reps[0], metric, ridge=0.1) == pytest.approx(1.0, abs=1e-9)
    related = reps[0] @ rng.normal(size=(d, d)) / np.sqrt(d) + 0.3 * rng.normal(size=(n, d))
    assert 0.3 < compare(reps[0], related, "cca", ridge=0.1) < 0.9
    # in-sample, rescaling the ridge alone leaves independent members at ~1
    assert in_sample_ridge_cca(reps[0], reps[1], 0.1) > 0.98
    with pytest.raises(ValueError, match="odd-indexed probes"):
        compare(reps[0], reps[1], "cca")


def test_ridge_needs_six_probes():
    x = np.random.default_rng(10).normal(size=(5, 3))
    with pytest.raises(ValueError, match="at least 6 probes"):
        compare(x, x, "cca", ridge=0.1)


# --------------------------------------------------------------------------- compute_alignment


def tiny_cube(x):
    """2 SNR x 1 n x 4 seeds; layer 'hidden' = the linear network's, layer 'relu' = a ReLU layer."""
    snrs, ns, seeds = [1.0, 10.0], [20], np.arange(S)
    acts = np.empty((2, 1, S, 2, N_PROBES, WIDTH), np.float32)
    for i in range(2):
        for s in seeds:
            acts[i, 0, s, 0] = linear_hidden(x, 10 * i + s)
            acts[i, 0, s, 1] = relu_hidden(x, 10 * i + s)
    err = xr.DataArray(np.ones((2, 1, S)), dims=("snr", "n", "seed"))
    return xr.Dataset(
        {"activation": (("snr", "n", "seed", "layer", "probe", "unit"), acts),
         "layer_width": (("layer",), np.array([WIDTH, WIDTH])),
         "train_error": err, "test_error": err, "steps": err, "converged": err.astype(bool)},
        coords={"snr": snrs, "n": ns, "seed": seeds, "layer": ["hidden", "relu"]})


def test_compute_alignment_stores_nan_and_a_note_for_degenerate_cells(probes, tmp_path):
    log = io.StringIO()
    metrics = ["cca", "cka_linear", "mutual_knn", "neighborhood_overlap"]
    table = compute_alignment(tiny_cube(probes), metrics, log=log, probe_x=probes)
    a, note = table["alignment"], table["alignment_note"]
    assert note.dims == ("metric", "layer")
    for metric, reason in (("cca", "invertible linear map"), ("mutual_knn", "rank one")):
        assert bool(a.sel(metric=metric, layer="hidden").isnull().all())
        text = str(note.sel(metric=metric, layer="hidden").values)
        assert text.startswith("NaN at 2/2 grid points: ") and reason in text
    for metric, layer in (("cca", "relu"), ("cka_linear", "hidden"), ("cka_linear", "relu"),
                          ("mutual_knn", "relu"), ("neighborhood_overlap", "hidden")):
        assert bool(np.isfinite(a.sel(metric=metric, layer=layer)).all()), (metric, layer)
        assert str(note.sel(metric=metric, layer=layer).values) == ""
    excluded = [line for line in log.getvalue().splitlines() if "grid points:" in line]
    assert len(excluded) == 2 and all("layer hidden" in line for line in excluded)
    path = tmp_path / "alignment.nc"
    write_netcdf(table, path)
    assert read_netcdf(path)["alignment_note"].sel(metric="cca", layer="hidden").item() == \
        note.sel(metric="cca", layer="hidden").item()


def test_compute_alignment_without_probe_inputs_cannot_see_the_linear_map(probes):
    """Without the inputs the CCA rule has nothing to compare with: the 1-by-construction value shows."""
    table = compute_alignment(tiny_cube(probes), ["cca"], log=io.StringIO())
    assert np.allclose(table["alignment"].sel(metric="cca", layer="hidden"), 1.0, atol=1e-9)
    assert str(table["alignment_note"].sel(metric="cca", layer="hidden").values) == ""
    with pytest.raises(ValueError, match="probe_x"):
        compute_alignment(tiny_cube(probes), ["cca"], log=io.StringIO(), probe_x=probes[:10])


def test_compute_alignment_does_not_repeat_the_libraries_warning_per_grid_point():
    """The pipeline flags cells itself and stores the chance level next to every value, so its
    calls filter UninformativeWarning deliberately; a user's compare on the same block warns."""
    from test_chance import structured_cube

    from alignlib.metrics import UninformativeWarning

    cube = structured_cube(probes=24, width=30)            # 24 probes < 30 units: every member spans them
    block = cube["activation"].isel(snr=0, n=0, layer=0).values
    with pytest.warns(UninformativeWarning):
        compare(block[0], block[1], "cka_linear")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UninformativeWarning)
        table = compute_alignment(cube, ["cka_linear", "procrustes", "linear_predictivity"], log=io.StringIO(),
                                  chance_draws=3, task="fake")
    assert bool(np.isfinite(table["alignment"].sel(layer="hidden")).all())
    assert bool(np.isfinite(table["chance"].sel(layer="hidden")).all())
