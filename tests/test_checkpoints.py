"""Alignment during training (issue 13, item 3): checkpoints in train_ensemble, their config, the
first-epoch fraction and the checkpoint rules of the pipeline."""
import math

import numpy as np
import pytest
import torch
import xarray as xr
import yaml

from alignlib.ensembles.checkpoints import (
    alignment_during_training,
    checkpoint_activations,
    first_epoch_summary,
    fraction_with_se,
)
from alignpipe.checkpoints import (
    all_checkpoint_settings,
    auto_n,
    checkpoint_metrics,
    checkpoint_settings,
    checkpoint_targets,
    settings_of,
)
from alignpipe.figures import threshold_labels
from alignlib.stats.members import pair_index
from alignlib.ensembles.networks import Architecture, init_member, stack_members
from alignlib.ensembles.training import checkpoint_schedule, steps_per_epoch, train_ensemble

from conftest import CONFIGS, run_snakemake, validated


def _linear(n=12, d=6, members=4, seed=0):
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.standard_normal((n, d)))
    y = torch.tensor(rng.standard_normal((members, n, 1)) * np.arange(1, members + 1)[:, None, None])
    arch = Architecture((d, 8, 1))
    params = stack_members([init_member(arch, 1e-3, np.random.default_rng(10 + i)) for i in range(members)],
                           torch.float64, "cpu")
    return arch, params, x, y


def _mlp(n=21, d=5, members=3, seed=1):
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.standard_normal((n, d)))
    y = torch.tensor(rng.standard_normal((members, n, 2)))
    arch = Architecture((d, 7, 2), activation="relu", bias=True)
    params = stack_members([init_member(arch, 1.0, np.random.default_rng(20 + i)) for i in range(members)],
                           torch.float64, "cpu")
    return arch, params, x, y


def _same(a, b):
    return all(torch.equal(p, q) for p, q in zip(a, b))


@pytest.mark.parametrize("setup,kwargs", [
    (_linear, dict(optimizer="preconditioned_gd", max_steps=300, tol=1e-9)),
    (_mlp, dict(optimizer="adam", lr=0.01, max_steps=40, batch_size=4, batch_seed=3)),
])
def test_no_checkpoints_gives_identical_result(setup, kwargs):
    arch, params, x, y = setup()
    plain = train_ensemble(arch, params, x, y, **kwargs)
    recorded = train_ensemble(arch, params, x, y, checkpoints=[0, 1, 2, 5], **kwargs)
    assert plain.checkpoints is None and plain.checkpoint_steps is None
    assert _same(plain.params, recorded.params)
    for name in ("steps", "converged", "criterion", "initial_loss", "final_loss", "diverged"):
        np.testing.assert_array_equal(getattr(plain, name), getattr(recorded, name))


def test_checkpoint_zero_is_init_and_last_at_max_steps_is_final():
    arch, params, x, y = _mlp()
    result = train_ensemble(arch, params, x, y, optimizer="adam", lr=0.01, max_steps=25, tol=1e-12,
                            checkpoints=[0, 7, 25])
    assert list(result.checkpoint_steps) == [0, 7, 25]
    assert _same(result.checkpoints[0], params)
    assert _same(result.checkpoints[-1], result.params)
    assert not _same(result.checkpoints[1], params) and not _same(result.checkpoints[1], result.params)


def test_intermediate_checkpoint_equals_training_stopped_there():
    """The weights at checkpoint k are those of the same training run with max_steps = k."""
    arch, params, x, y = _mlp()
    result = train_ensemble(arch, params, x, y, optimizer="adam", lr=0.01, max_steps=30, tol=1e-12,
                            checkpoints=[4, 13])
    for k, saved in zip((4, 13), result.checkpoints):
        short = train_ensemble(arch, params, x, y, optimizer="adam", lr=0.01, max_steps=k, tol=1e-12)
        assert _same(saved, short.params)


def test_stopped_member_keeps_its_stopping_weights():
    """Members with targets of different sizes converge at different steps; after a member has stopped
    every later checkpoint (also beyond the end of training) holds its final weights."""
    arch, params, x, y = _linear()
    result = train_ensemble(arch, params, x, y, optimizer="gd", lr=0.05, max_steps=4000, tol=1e-4,
                            checkpoints=[0, 50, 200, 800, 3000, 10 ** 6])
    assert result.converged.all() and len(set(result.steps.tolist())) > 1
    checked = 0
    for step, saved in zip(result.checkpoint_steps, result.checkpoints):
        for b in range(len(result.steps)):
            member_now = [p[b] for p in saved]
            member_final = [p[b] for p in result.params]
            if step >= result.steps[b]:
                assert _same(member_now, member_final)
                checked += 1
            else:
                assert not _same(member_now, member_final)
    assert checked > len(result.steps)  # some members stopped before later checkpoints


@pytest.mark.parametrize("n,batch,expected", [(21, 4, 5), (20, 4, 5), (10, 3, 3), (9, 3, 3), (5, 8, 1), (7, None, 1)])
def test_steps_per_epoch(n, batch, expected):
    assert steps_per_epoch(n, batch) == expected
    assert list(checkpoint_schedule([0, 1, 3], n, batch, "epoch")) == [0, expected, 3 * expected]
    assert list(checkpoint_schedule([0, 1, 3], n, batch, "step")) == [0, 1, 3]
    assert list(checkpoint_schedule([0, 1, 3], n, batch, "auto")) == [0, expected, 3 * expected]


def test_epoch_checkpoints_fall_where_a_new_permutation_starts(monkeypatch):
    """An epoch ends exactly where train_ensemble draws its next permutation of the training set:
    with max_steps = e x steps_per_epoch - 1 it draws e permutations, with one step more e + 1."""
    arch, params, x, y = _mlp(n=21)
    spe = steps_per_epoch(21, 4)
    calls = []
    real = torch.randperm
    monkeypatch.setattr(torch, "randperm", lambda *a, **k: calls.append(1) or real(*a, **k))
    for epochs in (1, 3):
        for extra, expected in ((-1, epochs), (0, epochs + 1)):
            calls.clear()
            train_ensemble(arch, params, x, y, optimizer="adam", lr=0.01, max_steps=epochs * spe + extra,
                           tol=1e-12, batch_size=4)
            assert len(calls) == expected
    result = train_ensemble(arch, params, x, y, optimizer="adam", lr=0.01, max_steps=3 * spe, tol=1e-12,
                            batch_size=4, checkpoints=[0, 1, 3])
    assert list(result.checkpoint_steps) == [0, spe, 3 * spe]
    assert _same(result.checkpoints[-1], result.params)


def test_bad_checkpoints_are_refused():
    with pytest.raises(ValueError, match="sorted, distinct"):
        checkpoint_schedule([3, 1], 10, None)
    with pytest.raises(ValueError, match="unknown checkpoint unit"):
        checkpoint_schedule([1], 10, None, "minute")


# --- config ---------------------------------------------------------------------------------------

def _config(top=None, task=None, grid=(10, 20, 30, 40, 50, 60, 70)):
    t = {"n": list(grid), "network": {"kind": "mlp"}}
    if task is not None:
        t["checkpoints"] = task
    return {"checkpoints": top, "tasks": {"t": t}}


def test_settings_default_off_top_level_and_task_override():
    assert checkpoint_settings(_config(), "t") is None
    s = checkpoint_settings(_config(top={"at": [0, 2]}), "t")
    assert s == {"at": [0, 2], "unit": "auto", "n": [20, 40, 60], "metrics": []}
    assert checkpoint_settings(_config(top={"at": [0, 2]}, task=None), "t") is not None
    cfg = _config(top={"at": [0, 2]})
    cfg["tasks"]["t"]["checkpoints"] = None  # a task opts out
    assert checkpoint_settings(cfg, "t") is None
    s = checkpoint_settings(_config(task={"n": [30, 10], "unit": "step", "metrics": ["rsa"]}), "t")
    assert s["n"] == [10, 30] and s["unit"] == "step" and s["at"][:3] == [0, 1, 3]


def test_auto_n_takes_the_middle_of_each_third():
    assert auto_n([1, 2, 3, 4, 5, 6, 7]) == [2, 4, 6]
    assert auto_n(list(range(10, 140, 10))) == [30, 70, 110]
    assert auto_n([10, 20, 40, 80]) == [20, 40, 80]  # positions 0.5, 1.5, 2.5 round up
    assert auto_n([5, 3]) == [3, 5]
    assert auto_n([4]) == [4]


@pytest.mark.parametrize("spec,key", [
    ({"n": [15]}, "tasks.t.checkpoints.n"),
    ({"at": [0, 3, 3]}, "tasks.t.checkpoints.at"),
    ({"at": [1.5]}, "tasks.t.checkpoints.at"),
    ({"unit": "hour"}, "tasks.t.checkpoints.unit"),
    ({"metrics": ["cka_linear", "kca"]}, "tasks.t.checkpoints.metrics"),
])
def test_bad_settings_name_the_key(spec, key):
    with pytest.raises(ValueError, match=f"invalid config key '{key}'"):
        checkpoint_settings(_config(task=spec), "t")
    with pytest.raises(ValueError, match=f"invalid config key '{key.replace('tasks.t.', '')}'"):
        checkpoint_settings(_config(top=spec), "t")


def test_targets_only_for_tasks_with_checkpoints():
    cfg = _config(top={"at": [0, 1]})
    cfg["tasks"]["u"] = dict(cfg["tasks"]["t"], checkpoints=None)
    settings = all_checkpoint_settings(cfg)
    assert settings["u"] is None
    assert checkpoint_targets(settings, "R") == ["R/figures/t_alignment_training.png", "R/t/training_summary.csv"]
    with pytest.raises(ValueError, match="task u has no checkpoints"):
        settings_of(settings, "u")


def test_metrics_start_with_the_primary_metric():
    s = {"metrics": ["rsa", "cka_linear"]}
    assert checkpoint_metrics({"network": {"kind": "mlp"}}, s) == ["cka_linear", "rsa"]
    assert checkpoint_metrics({"network": {"kind": "linear"}}, s) == ["cosine_end_to_end", "rsa", "cka_linear"]
    assert checkpoint_metrics({"network": {"kind": "mlp"}, "primary_metric": "procrustes"}, {"metrics": []}) == [
        "procrustes"]


def test_schema_accepts_checkpoints_and_settings_fill_defaults():
    cfg = validated({"checkpoints": {"at": [0, 1]}, "tasks": {"t": {"snr": [1], "n": [4, 8], "seeds": 2}}})
    assert checkpoint_settings(cfg, "t") == {"at": [0, 1], "unit": "auto", "n": [4, 8], "metrics": []}
    assert "checkpoints" not in cfg["tasks"]["t"]  # absent: the top-level key applies
    with pytest.raises(Exception, match="unit"):
        validated({"checkpoints": {"unit": "hour"}, "tasks": {"t": {"snr": [1], "n": [4], "seeds": 2}}})
    assert validated({"tasks": {"t": {"snr": [1], "n": [4], "seeds": 2}}})["checkpoints"] is None


# --- the first-epoch fraction ---------------------------------------------------------------------

def _pairs(S):
    ia, ib = np.triu_indices(S, 1)
    return ia, ib


def test_fraction_closed_form_and_jackknife():
    """Member effects a_i + a_j: the fraction of pair means is exact, and the jackknife recomputes
    it without each member (checked against an explicit leave-one-out loop)."""
    S = 5
    ia, ib = _pairs(S)
    rng = np.random.default_rng(0)
    u0, u1, uf = (rng.standard_normal(S) for _ in range(3))
    init = 0.1 + 0.01 * (u0[ia] + u0[ib])
    first = 0.4 + 0.05 * (u1[ia] + u1[ib])
    final = 0.9 + 0.05 * (uf[ia] + uf[ib])
    frac, se = fraction_with_se(init, first, final, ia, ib, S)
    assert frac == pytest.approx((first.mean() - init.mean()) / (final.mean() - init.mean()))
    loo = []
    for k in range(S):
        keep = (ia != k) & (ib != k)
        loo.append((first[keep].mean() - init[keep].mean()) / (final[keep].mean() - init[keep].mean()))
    loo = np.array(loo)
    assert se == pytest.approx(math.sqrt((S - 1) / S * ((loo - loo.mean()) ** 2).sum()))
    # no member effect at all: every leave-one-out ratio is the same, SE 0
    f, s = fraction_with_se(np.full(len(ia), 0.2), np.full(len(ia), 0.6), np.full(len(ia), 1.0), ia, ib, S)
    assert f == pytest.approx(0.5) and s == pytest.approx(0.0, abs=1e-12)


def _table(steps_taken, epoch_steps, batch="full batch", S=4):
    ia, ib = _pairs(S)
    steps = [0, 1, 10]  # checkpoint values; steps_taken says how many optimizer steps each is
    vals = np.array([0.2, 0.5, 0.8])[:, None] * np.ones(len(ia))
    alignment = vals[None, None, :, None, None, :]
    ds = xr.Dataset(
        {"alignment": (("metric", "layer", "step", "snr", "n", "pair"), np.repeat(alignment, 2, axis=1)),
         "final_alignment": (("metric", "layer", "snr", "n", "pair"), np.ones((1, 2, 1, 1, len(ia)))),
         "steps_taken": (("step", "n"), np.array(steps_taken)[:, None]),
         "epoch_steps": (("n",), [epoch_steps])},
        coords={"metric": ["cka_linear"], "layer": ["hidden1", "output"], "step": steps, "snr": [1.0],
                "n": [40], "pair": np.arange(len(ia)), "seed_a": ("pair", ia), "seed_b": ("pair", ib)},
        attrs={"batch_size": batch, "task": "t"},
    )
    return ds


def test_first_epoch_summary_uses_the_checkpoint_one_pass_long():
    full = first_epoch_summary(_table([0, 1, 10], 1))
    assert list(full["layer"]) == ["hidden1", "output"]  # the primary layer first, then the others
    row = full.iloc[0]
    assert row["fraction"] == pytest.approx((0.5 - 0.2) / (1 - 0.2))
    assert row["first_epoch_steps"] == 1 and "full-batch step" in row["first_epoch_definition"]
    # minibatches of 4 out of 40: the first epoch is 10 steps, the third checkpoint
    mini = first_epoch_summary(_table([0, 10, 100], 10, batch=4)).iloc[0]
    assert mini["after_first_epoch"] == pytest.approx(0.5)
    mini = first_epoch_summary(_table([0, 1, 10], 10, batch=4)).iloc[0]
    assert mini["after_first_epoch"] == pytest.approx(0.8) and mini["fraction"] == pytest.approx(0.75)
    assert mini["first_epoch_definition"] == "one epoch = 10 minibatch steps of 4"
    missing = first_epoch_summary(_table([0, 1, 2], 10, batch=4)).iloc[0]
    assert np.isnan(missing["fraction"]) and missing["final"] == 1.0


def test_threshold_labels():
    labels = threshold_labels([10, 50, 60, 200], [50.0, np.nan, 75.0])
    assert labels[10].startswith("below") and labels[50].startswith("at") and labels[60].startswith("at")
    assert labels[200].startswith("above") and "50–75" in labels[200]
    assert threshold_labels([10], [np.nan]) == {10: ""}


# --- the pipeline ---------------------------------------------------------------------------------

def test_linear_task_checkpoints_in_steps(tiny_config):
    """Full-batch linear task: checkpoints are steps, the end-to-end maps are recorded at each, the
    primary metric is the end-to-end cosine, and the final weights align like the main run's."""
    from alignlib.ensembles.alignment import compute_alignment
    from alignlib.ensembles.data import make_task_data
    from alignlib.ensembles.builder import extract_activations, train_grid_n

    cfg = dict(tiny_config["tasks"]["linear_regression"], snr=[3.0], seeds=3)
    data = make_task_data("linear_regression", cfg)
    settings = {"at": [0, 1, 5], "unit": "auto", "n": [7, 40], "metrics": ["cka_linear"]}
    cube = checkpoint_activations("linear_regression", cfg, data, settings, "cpu", storage_dtype=np.float64)
    assert cube.attrs["step_unit"] == "step" and list(cube["epoch_steps"].values) == [1, 1]
    assert cube["end_to_end"].dims[:1] == ("step",)
    # init: the tiny initial end-to-end map, final: the least-squares fit
    assert float(np.abs(cube["end_to_end"].sel(step=0)).max()) < 1e-3
    metrics = checkpoint_metrics(cfg, settings)
    assert metrics == ["cosine_end_to_end", "cka_linear"]
    table = alignment_during_training(cube, metrics)
    models = xr.concat([train_grid_n("linear_regression", cfg, data, n, "cpu") for n in (7, 40)], dim="n")
    main = compute_alignment(extract_activations(cfg, data, models, "cpu", storage_dtype=np.float64), metrics)
    np.testing.assert_allclose(table["final_alignment"].values, main["alignment"].values, rtol=1e-9, equal_nan=True)
    e2e = table["alignment"].sel(metric="cosine_end_to_end", layer="output")
    assert np.isfinite(e2e).all() and np.isnan(table["alignment"].sel(metric="cosine_end_to_end", layer="hidden")).all()
    summary = first_epoch_summary(table)
    assert (summary["first_epoch_definition"] == "one full-batch step (one pass over the training set)").all()
    assert summary["metric"].eq("cosine_end_to_end").all() and summary["layer"].eq("output").all()
    assert first_epoch_summary(table, "cka_linear")["layer"].tolist() == ["hidden"] * 2 + ["output"] * 2


def test_bad_checkpoints_config_fails_before_any_job(tmp_path):
    config = validated(yaml.safe_load((CONFIGS / "checkpoints_tiny.yaml").read_text()))
    config["tasks"]["mlp_tiny"]["checkpoints"] = {"n": [15]}
    proc = run_snakemake(tmp_path, config, "-n", check=False)
    assert proc.returncode != 0
    assert "invalid config key 'tasks.mlp_tiny.checkpoints.n': [15]" in proc.stdout + proc.stderr

def test_workflow_writes_alignment_training_and_figure(tmp_path):
    """A tiny run with checkpoints on: the cube, alignment_training.nc, the summary and the figure;
    the final checkpoint reproduces the main run's alignment."""
    config = validated(yaml.safe_load((CONFIGS / "checkpoints_tiny.yaml").read_text()))
    results = tmp_path / "results"
    targets = [results / "figures" / "mlp_tiny_alignment_training.png", results / "mlp_tiny" / "training_summary.csv"]
    run_snakemake(tmp_path, config, *map(str, targets))
    table = xr.open_dataset(results / "mlp_tiny" / "alignment_training.nc")
    main = xr.open_dataset(results / "mlp_tiny" / "alignment.nc")
    assert table["alignment"].dims == ("metric", "layer", "step", "snr", "n", "pair")
    assert list(table["step"].values) == [0, 1, 3, 10]
    assert table.attrs["step_unit"] == "epoch"
    ns = [int(n) for n in table["n"].values]
    assert ns == auto_n(config["tasks"]["mlp_tiny"]["n"])
    # the final weights are the main run's: the same alignment
    final = table["final_alignment"].sel(metric="cka_linear", layer="hidden")
    np.testing.assert_allclose(final.values, main["alignment"].sel(metric="cka_linear", layer="hidden",
                                                                   n=ns).values, rtol=1e-5)
    assert not np.allclose(table["alignment"].sel(step=0, metric="cka_linear", layer="hidden").values,
                           final.values)
    # epoch 1 = n // batch_size steps
    for n in ns:
        assert int(table["steps_taken"].sel(step=1, n=n)) == steps_per_epoch(n, 8)
    summary = (results / "mlp_tiny" / "training_summary.csv").read_text().splitlines()
    assert len(summary) == 1 + 2 * len(ns) * 2 and summary[0].startswith("task,")  # layers x n x snr
    png = results / "figures" / "mlp_tiny_alignment_training.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
