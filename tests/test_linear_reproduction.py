"""The default linear task held against the theory (trained through the library, ~5 s)."""
import io

import numpy as np
import pytest
import xarray as xr
import yaml

from alignlib.ensembles.alignment import compute_alignment, linear_theory, pair_mean
from alignlib.ensembles.data import make_task_data
from alignlib.ensembles.builder import (architecture, extract_activations, member_init, member_training_set,
                                 model_attrs, params_of, train_grid_n, train_members)
from conftest import REPO, validated

TASK = "linear_regression"


@pytest.fixture(scope="module")
def default_linear():
    cfg = validated(yaml.safe_load((REPO / "config.yaml").read_text()))["tasks"][TASK]
    data = make_task_data(TASK, cfg)
    models = xr.concat([train_grid_n(TASK, cfg, data, n, "cpu", log=io.StringIO()) for n in cfg["n"]], dim="n")
    models.attrs.update(model_attrs(TASK, cfg, data))
    cube = extract_activations(cfg, data, models, "cpu")
    table = compute_alignment(cube, ["cka_linear", "cosine_end_to_end"], log=io.StringIO())
    return cfg, data, models, cube, table.merge(linear_theory(table, data))


def test_every_member_reaches_its_minimum_norm_solution(default_linear):
    """What the theory assumes of training: beta = X^+ y for every member, n = d included.

    Exactly, once the part of the first layer's initialisation outside the row space of X
    (which gradient descent never moves) is taken out: beta - w2 W1_init (I - X^+ X) = X^+ y.
    """
    cfg, data, models, cube, _ = default_linear
    assert bool(models["converged"].all())
    worst_exact, worst_raw = 0.0, 0.0
    for n in cfg["n"]:
        x = data["train_x"].values[:n]
        pinv = np.linalg.pinv(x)
        outside = np.eye(x.shape[1]) - pinv @ x
        for snr in cfg["snr"]:
            for seed in range(cfg["seeds"]):
                y = member_training_set(TASK, cfg, data, snr, n, seed)[1][:, 0]
                beta = cube["end_to_end"].sel(snr=snr, n=n, seed=seed).values[0]
                w1_init = member_init(TASK, cfg, architecture(cfg, data), snr, n, seed)[0]
                w2 = params_of(models, snr, n)[1][seed]
                target = pinv @ y
                exact = beta - (w2 @ w1_init @ outside)[0]
                worst_exact = max(worst_exact, np.linalg.norm(exact - target) / np.linalg.norm(target))
                worst_raw = max(worst_raw, np.linalg.norm(beta - target) / np.linalg.norm(target))
    assert worst_exact < 1e-5
    assert worst_raw < 1e-2  # the initialisation's own share is small at init_scale 1e-3


def _jackknife_se(values_pairs, seeds, ia, ib):
    """Leave-one-member-out jackknife s.e. of the mean over pairs (pairs share members)."""
    estimates = []
    for k in range(seeds):
        keep = (ia != k) & (ib != k)
        estimates.append(values_pairs[keep].mean())
    estimates = np.array(estimates)
    return np.sqrt((seeds - 1) / seeds * ((estimates - estimates.mean()) ** 2).sum())


@pytest.mark.parametrize("metric,layer", [("cosine_end_to_end", "output"), ("cka_linear", "hidden")])
def test_simulation_matches_exact_expectation_within_sampling_error(default_linear, metric, layer):
    """|mean over pairs - E[metric | X, teacher]| within 4 jackknife s.e. at |n - d| >= 0.2 d.

    The issue asked for 0.03; with 8 members the sampling error alone is larger than that
    at low SNR (see the closing note), so the honest check is against the sampling error.
    """
    cfg, _, _, _, table = default_linear
    d = cfg["dataset"]["dim"]
    ia = np.searchsorted(table["seed"].values, table["seed_a"].values)
    ib = np.searchsorted(table["seed"].values, table["seed_b"].values)
    z_scores = []
    for n in table["n"].values:
        if abs(n - d) < 0.2 * d:
            continue
        for snr in table["snr"].values:
            pairs = table["alignment"].sel(metric=metric, layer=layer, snr=snr, n=n).values
            expected = float(table["theory_given_data"].sel(metric=metric, snr=snr, n=n))
            se = _jackknife_se(pairs, cfg["seeds"], ia, ib)
            z_scores.append((pairs.mean() - expected) / max(se, 1e-4))
    z = np.abs(z_scores)
    assert z.max() < 4.0, z.max()
    assert np.mean(z < 2) > 0.8  # most points within 2 s.e., as sampling error would have it


def test_alignment_minimum_at_threshold(default_linear):
    """Claim 2 for the end-to-end cosine: argmin over n within 15 % of d.

    Exact expectation: at every SNR. Simulation: at every SNR >= 0.3; at SNR 0.1 the expected
    cosine is at most 0.077 for all n <= d and the 8-member simulation cannot locate its minimum.
    """
    cfg, _, _, _, table = default_linear
    d, ns = cfg["dataset"]["dim"], table["n"].values
    mean, _ = pair_mean(table["alignment"].sel(metric="cosine_end_to_end", layer="output"))
    expected = table["theory_given_data"].sel(metric="cosine_end_to_end")
    for snr in table["snr"].values:
        assert abs(ns[int(expected.sel(snr=snr).argmin(dim="n"))] - d) <= 0.15 * d
        if snr >= 0.3:
            assert abs(ns[int(mean.sel(snr=snr).argmin(dim="n"))] - d) <= 0.15 * d, snr
    assert float(expected.sel(snr=0.1).sel(n=ns[ns <= d]).max()) < 0.08


def test_test_error_double_descent_peak_at_threshold(default_linear):
    cfg, _, models, _, _ = default_linear
    error = models["test_error"].mean("seed")
    for snr in cfg["snr"]:
        curve = error.sel(snr=snr)
        assert int(curve["n"][int(curve.argmax(dim="n"))]) == cfg["dataset"]["dim"]
        assert float(curve.max()) > float(curve.sel(n=[10, 1000]).max())  # an interior peak: descent on both sides


def test_large_init_departs_from_minimum_norm_solution(default_linear):
    """Why init_scale is small: weights outside the row space of X never move during training,
    so a large initialisation stays in the end-to-end map and the theory no longer applies."""
    cfg, data, _, _, _ = default_linear
    n = 20
    x = data["train_x"].values[:n]
    outside = np.eye(x.shape[1]) - np.linalg.pinv(x) @ x
    deviations = {}
    for scale in (1e-3, 1.0):
        big = dict(cfg, network=dict(cfg["network"], init_scale=scale))
        arch, result, _, _, _ = train_members(TASK, big, data, n, [(10.0, 0)], "cpu", log=io.StringIO())
        w1_init = member_init(TASK, big, arch, 10.0, n, 0)[0]
        w1 = result.params[0][0].numpy()
        np.testing.assert_allclose(w1 @ outside, w1_init @ outside, atol=1e-10)  # never moved
        beta = (result.params[1][0] @ result.params[0][0]).numpy()[0]
        y = member_training_set(TASK, big, data, 10.0, n, 0)[1][:, 0]
        target = np.linalg.pinv(x) @ y
        deviations[scale] = np.linalg.norm(beta - target) / np.linalg.norm(target)
    assert deviations[1e-3] < 2e-3 and deviations[1.0] > 0.1


def test_large_ensemble_matches_exact_expectation_within_0_03():
    """The default task with 64 members instead of 8 (pair-mean sampling error ~0.01): the mean over
    pairs agrees with E[metric | X, teacher, probes] within 0.03 at every grid point with
    |n - d| >= 0.2 d, for the end-to-end cosine and the hidden layer's linear CKA."""
    cfg = validated(yaml.safe_load((REPO / "config.yaml").read_text()))["tasks"][TASK]
    d = cfg["dataset"]["dim"]
    cfg = dict(cfg, seeds=64, n=[n for n in cfg["n"] if abs(n - d) >= 0.2 * d])
    data = make_task_data(TASK, cfg)
    models = xr.concat([train_grid_n(TASK, cfg, data, n, "cpu", log=io.StringIO()) for n in cfg["n"]], dim="n")
    models.attrs.update(model_attrs(TASK, cfg, data))
    table = compute_alignment(extract_activations(cfg, data, models, "cpu"), ["cka_linear", "cosine_end_to_end"],
                              log=io.StringIO())
    table = table.merge(linear_theory(table, data))
    for metric, layer in [("cosine_end_to_end", "output"), ("cka_linear", "hidden")]:
        mean, _ = pair_mean(table["alignment"].sel(metric=metric, layer=layer))
        gap = abs(mean - table["theory_given_data"].sel(metric=metric))
        assert float(gap.max()) < 0.03, (metric, float(gap.max()))
