"""A task in several independent data draws (data_draws: K; alignpipe.draws) through the real snakemake:
one tiny linear task in 2 draws, with the refinement checkpoint and OOD probes on."""
import copy

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from alignpipe.cubes import read_netcdf
from alignpipe.refine import read_refinement
from conftest import run_snakemake

pytestmark = pytest.mark.workflow

TASK = "linear_regression"
DRAWS = [f"{TASK}_draw0", f"{TASK}_draw1"]
COARSE = [4, 7, 10, 40]
ADDED = [5, 8, 13, 20]  # d = 10: the threshold is 10 in both draws (tests/test_refine.py)


def draws_config(tiny_config, **task):
    config = copy.deepcopy(tiny_config)
    cfg = config["tasks"][TASK]
    cfg.update({"snr": [0.3, 30.0], "n": COARSE, "probes": 32, "test_size": 50, "data_draws": 2,
                "refine": {"points": 4, "span": [0.5, 2.0]}, "ood": {"kind": "scale", "factor": 2.0}, **task})
    config["tasks"] = {TASK: cfg}
    return config


@pytest.fixture(scope="module")
def draws_run(tmp_path_factory, tiny_config):
    workdir = tmp_path_factory.mktemp("draws_run")
    config = draws_config(tiny_config)
    run_snakemake(workdir, config)
    return workdir, config


def test_the_combined_table_nests_members_in_their_draws(draws_run):
    workdir, _ = draws_run
    res = workdir / "results"
    table = read_netcdf(res / TASK / "alignment.nc")
    assert table.attrs["data_draws"] == 2 and table.attrs["task"] == TASK
    assert table["draw"].values.tolist() == [0, 0, 0, 1, 1, 1]
    assert table.sizes["seed"] == 6 and len(set(table["seed"].values.tolist())) == 6
    # only pairs of distinct members of one draw: 3 per draw, none across the draws
    draw_of = dict(zip(table["seed"].values.tolist(), table["draw"].values.tolist()))
    a, b, d = (table[c].values.tolist() for c in ("seed_a", "seed_b", "pair_draw"))
    assert table.sizes["pair"] == 6 and sorted(d) == [0, 0, 0, 1, 1, 1]
    assert all(x != y and draw_of[x] == draw_of[y] == k for x, y, k in zip(a, b, d))
    for k, name in enumerate(DRAWS):  # each draw's pairs and members are its own table's
        own = read_netcdf(res / name / "alignment.nc")
        np.testing.assert_array_equal(table["alignment"].isel(pair=np.array(d) == k).values, own["alignment"].values)
        np.testing.assert_array_equal(table["test_error"].isel(seed=table["draw"].values == k).values,
                                      own["test_error"].values)
    # the thresholds are the combined table's, the theory the mean of the draws'
    assert table["interpolation_threshold"].values.tolist() == [10.0, 10.0]
    given = [read_netcdf(res / name / "alignment.nc")["theory_given_data"] for name in DRAWS]
    np.testing.assert_allclose(table["theory_given_data"].values, (given[0].values + given[1].values) / 2)
    assert np.isfinite(table["alignment"].sel(metric="cka_linear")).all()


def test_each_draw_has_its_own_data(draws_run):
    workdir, _ = draws_run
    data = [read_netcdf(workdir / "results" / name / "data" / "data.nc") for name in DRAWS]
    ood = [read_netcdf(workdir / "results" / name / "data" / "ood.nc") for name in DRAWS]
    for name in ("train_x", "probe_x", "test_x", "teacher"):
        assert data[0][name].shape == data[1][name].shape
        assert not np.allclose(data[0][name].values, data[1][name].values), name
    assert ood[0]["ood_x"].shape == ood[1]["ood_x"].shape  # the OOD probes live in data/ood.nc
    assert not np.allclose(ood[0]["ood_x"].values, ood[1]["ood_x"].values)
    assert not (workdir / "results" / TASK / "data").exists()  # the task itself trains nothing


def test_one_refined_grid_for_every_draw(draws_run):
    workdir, _ = draws_run
    res = workdir / "results"
    record = read_refinement(res / TASK / "refine.json")
    assert record["added_n"] == ADDED
    assert not any((res / name / "refine.json").exists() for name in DRAWS)
    for name in [TASK, *DRAWS]:
        table = read_netcdf(res / name / "alignment.nc")
        assert table["n"].values.tolist() == sorted(COARSE + ADDED)
        assert list(np.atleast_1d(table.attrs["n_refined"])) == ADDED


def test_ood_alignment_is_combined_the_same_way(draws_run):
    workdir, _ = draws_run
    res = workdir / "results"
    table, ood = read_netcdf(res / TASK / "alignment.nc"), read_netcdf(res / TASK / "alignment_ood.nc")
    for coord in ("seed", "draw", "seed_a", "seed_b", "pair_draw"):
        np.testing.assert_array_equal(ood[coord].values, table[coord].values)
    assert ood.attrs["ood_kind"] == "scale" and ood.attrs["data_draws"] == 2
    summary = pd.read_csv(res / TASK / "ood_summary.csv")
    assert set(summary.metric) == {"cka_linear"}


def test_verdicts_and_figures_are_the_tasks_only(draws_run):
    workdir, _ = draws_run
    res = workdir / "results"
    verdicts = pd.read_csv(res / "verdicts.csv")
    assert TASK in set(verdicts.task)
    assert not any("_draw" in str(task) for task in verdicts.task)
    assert not any("_draw" in str(task) for task in pd.read_csv(res / "summary.csv").task)
    figures = [p.name for p in (res / "figures").iterdir()]
    assert f"{TASK}_alignment_vs_n.png" in figures and f"{TASK}_theory_residuals.png" in figures
    assert not any("_draw" in name for name in figures)
    assert not any((res / name / "claims.pkl").exists() for name in DRAWS)


def test_a_member_of_one_draw_is_recreated_alone(draws_run, single_torch_thread):
    from alignlib.ensembles.builder import train_members

    workdir, config = draws_run
    res = workdir / "results"
    table = read_netcdf(res / TASK / "alignment.nc")
    cfg = {k: v for k, v in config["tasks"][TASK].items() if k != "data_draws"}
    data = read_netcdf(res / DRAWS[1] / "data" / "data.nc")
    label = int(table["seed"].values[(table["draw"].values == 1) & (table["seed_in_draw"].values == 2)][0])
    _, _, _, test_error, _ = train_members(DRAWS[1], cfg, data, 7, [(30.0, 2)], "cpu")
    assert test_error[0] == pytest.approx(float(table["test_error"].sel(snr=30.0, n=7, seed=label)), rel=1e-9)


def test_a_second_run_has_nothing_to_do(draws_run):
    workdir, config = draws_run
    proc = run_snakemake(workdir, config, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_job_count_does_not_grow_with_members(tiny_config, tmp_path):
    def jobs(seeds):
        config = draws_config(tiny_config, seeds=seeds, refine=None, ood=None)
        out = run_snakemake(tmp_path / str(seeds), config, "-n", "--quiet", "rules").stdout
        return [line.split() for line in out.splitlines() if line.strip() and line.split()[-1].isdigit()]

    three, five = jobs(3), jobs(5)
    assert three == five
    counts = dict(three)
    # per draw: one data job, one training job per 2 n (n_per_job: 2), one cube and one align job
    assert counts["task_data"] == "2" and counts["train"] == "4" and counts["align"] == "2"
    assert counts["combine_draws"] == "1" and counts["claims"] == "1" and counts["figures"] == "1"


def test_checkpoints_with_several_draws_stop_before_any_job(tiny_config, tmp_path):
    config = draws_config(tiny_config, checkpoints={"at": [0, 10], "n": [10]}, refine=None, ood=None)
    proc = run_snakemake(tmp_path, config, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "'tasks.linear_regression.data_draws' and 'tasks.linear_regression.checkpoints'" in out
    assert "Traceback" not in out
    assert not (tmp_path / "results").exists()
