"""Training reaches the noise floor where it should (issue 12, item 1), on a small grid.

The mechanism behind the README's per-task fractions: members well below their threshold memorise
their own noise (noise_fit <= interpolation_tol) within max_steps, fit_by_n / below_threshold_fit
count them, and a member cut off by max_steps is reported as stopped short, not as interpolating.
"""
import copy

import numpy as np
import pytest
import xarray as xr

from alignlib.ensembles.data import make_task_data
from alignlib.ensembles.builder import model_attrs, train_grid_n
from alignlib.stats.threshold import below_threshold_fit, fit_by_n, task_thresholds
from conftest import validated

TASK = {
    "snr": [1.0, 10.0],
    "n": [8, 16, 32, 200],
    "seeds": 4,
    "probes": 20,
    "test_size": 50,
    "dataset": {"kind": "teacher_mlp", "dim": 4, "teacher_hidden": 8, "target": "regression"},
    # 8 tanh units, 4 inputs: 49 weights, so n <= 16 is far below the threshold and n = 200 above it
    "network": {"kind": "mlp", "hidden": [8], "activation": "tanh", "bias": True, "init_scale": 1.0},
    "noise": {"kind": "target_gaussian"},
    "training": {"optimizer": "adam", "lr": 0.01, "max_steps": 3000, "tol": 1.0e-6, "fit_tol": 1.0e-3},
    "interpolation_tol": 0.01,
}


def grid_table(task_cfg):
    cfg = validated({"tasks": {"small": task_cfg}})["tasks"]["small"]
    data = make_task_data("small", cfg)
    models = xr.concat([train_grid_n("small", cfg, data, n, "cpu", log=open("/dev/null", "w")) for n in cfg["n"]],
                       dim="n")
    models.attrs.update(model_attrs("small", cfg, data))
    table = models[["noise_fit", "steps", "test_error", "train_error"]]
    return table.merge(task_thresholds(table, cfg["interpolation_tol"], n_boot=100), combine_attrs="override")


@pytest.fixture(scope="module")
def trained(single_torch_thread):
    return grid_table(TASK)


def test_members_below_threshold_reach_their_noise_floor(trained):
    assert (trained["interpolation_threshold"].values >= 32).all()  # n = 200 does not interpolate
    fit = below_threshold_fit(trained, 0.01)
    assert fit["members"] > 0 and fit["fraction"] >= 0.95 and fit["stopped_short"] == 0
    reached = fit_by_n(trained, 0.01)["reached_noise_floor"]
    np.testing.assert_array_equal(reached.sel(n=[8, 16]).values, 1.0)
    assert (reached.sel(n=200).values == 0).all()


def test_a_budget_too_small_is_reported_as_stopping_short(single_torch_thread):
    short = copy.deepcopy(TASK)
    short["training"]["max_steps"] = 5  # far too few Adam steps to memorise anything
    short["n"] = [8, 16]
    table = grid_table(short)
    fit = fit_by_n(table, 0.01)
    np.testing.assert_array_equal(fit["reached_noise_floor"].values, 0.0)
    np.testing.assert_array_equal(fit["stopped_short"].values, 1.0)
