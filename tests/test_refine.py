"""An n grid that refines itself around the interpolation threshold (alignpipe.refine, the refine checkpoint)."""
import copy

import numpy as np
import pytest
import xarray as xr

from alignpipe.config import ConfigError, check_config
from alignpipe.cubes import read_netcdf, write_netcdf
from alignpipe.refine import (
    grid_n,
    log_spaced_ns,
    read_refinement,
    refine_range,
    refined_ns,
    refinement,
    refinement_attrs,
    write_refinement,
)
from conftest import run_snakemake, validated

TASK = "linear_regression"
REFINE = {"points": 4, "span": [0.5, 2.0]}
COARSE = [4, 7, 10, 40]
# d = 10: the coarse threshold is n = 10 at every SNR, so span [0.5, 2] is [5, 20] and 4 log-spaced
# points are 5, 7.94, 12.6, 20 -> 5, 8, 13, 20 (none in the coarse grid)
ADDED = [5, 8, 13, 20]


# --------------------------------------------------------------------------- the numerics

def test_refine_range_spans_the_smallest_and_largest_threshold():
    assert refine_range([100.0, np.nan, 400.0], [0.5, 2.0]) == (50.0, 800.0)
    assert refine_range([np.nan, np.nan], [0.5, 2.0]) is None


def test_log_spaced_ns_are_rounded_distinct_and_sorted():
    assert log_spaced_ns(5, 20, 4) == [5, 8, 13, 20]
    assert log_spaced_ns(10, 40, 1) == [20]  # one point: the geometric mean
    assert log_spaced_ns(3, 4, 6) == [3, 4]  # rounding merges neighbours
    assert log_spaced_ns(5, 4, 3) == []


def test_refined_ns_skip_the_coarse_grid_and_stay_in_the_pool():
    assert refined_ns(COARSE, [10.0, 10.0], 4, [0.5, 2.0], n_max=40) == ADDED
    assert refined_ns([4, 8, 13, 40], [10.0], 4, [0.5, 2.0], n_max=40) == [5, 20]  # de-duplicated
    # the range is clipped to the pool before spacing, so points do not pile up at its end
    assert refined_ns([50, 100], [100.0], 3, [0.5, 2.0], n_max=120) == [77, 120]
    assert refined_ns([10], [1.0], 3, [0.5, 2.0], n_max=100) == [2]  # never below n = 2
    assert refined_ns([10], [np.nan], 3, [0.5, 2.0], n_max=100) == []  # no threshold: nothing added
    assert refined_ns([10, 20], [20.0], 3, [4.0, 8.0], n_max=40) == []  # range beyond the pool


def test_refinement_record_from_noise_fit():
    """Members interpolate up to n = 10 at SNR 1 and up to n = 40 at SNR 10 (the grid's top)."""
    ns, snrs, seeds = [4, 10, 20, 40], [1.0, 10.0], 4
    fit = np.ones((len(snrs), len(ns), seeds))
    fit[0, :2] = 0.0
    fit[1, :] = 0.0
    noise_fit = xr.DataArray(fit, coords={"snr": snrs, "n": ns, "seed": range(seeds)}, dims=("snr", "n", "seed"))
    cfg = {"n": [40, 4, 20, 10], "interpolation_tol": 0.01, "refine": {"points": 5, "span": [0.5, 2.0]}}
    record = refinement("t", cfg, noise_fit, pool=60)
    assert record["coarse_threshold"] == [10.0, 40.0]
    assert record["coarse_threshold_high"] == [20.0, None]  # beyond the grid
    assert record["range"] == [5.0, 60.0]  # [0.5 x 10, 2 x 40] clipped to the pool
    assert record["added_n"] == refined_ns(ns, [10, 40], 5, [0.5, 2.0], 60) == [5, 9, 17, 32, 60]
    assert record["n"] == grid_n(ns, record["added_n"])
    with pytest.raises(ValueError, match="coarse models hold"):
        refinement("t", dict(cfg, n=[4, 10]), noise_fit, pool=60)


def test_record_and_attributes_round_trip(tmp_path):
    record = {"task": "t", "points": 2, "span": [0.5, 2.0], "interpolation_tol": 0.01, "snr": [1.0, 3.0],
              "coarse_threshold": [10.0, None], "coarse_threshold_low": [10.0, None],
              "coarse_threshold_high": [20.0, None], "range": [5.0, 20.0], "pool": 40, "coarse_n": [4, 10, 20],
              "added_n": [], "n": [4, 10, 20]}
    write_refinement(record, tmp_path / "refine.json")
    assert read_refinement(tmp_path / "refine.json") == record
    assert [p.name for p in tmp_path.iterdir()] == ["refine.json"]  # no temporary file left
    table = xr.Dataset({"a": ("n", [1.0, 2.0, 3.0])}, coords={"n": [4, 10, 20]})
    table.attrs.update(refinement_attrs(record))
    write_netcdf(table, tmp_path / "a.nc")
    back = read_netcdf(tmp_path / "a.nc").attrs
    assert np.atleast_1d(back["n_refined"]).size == 0 and list(back["n_coarse"]) == [4, 10, 20]
    assert np.isnan(back["refine_coarse_threshold"][1]) and "points=2" in back["refine_definition"]


def test_refine_is_off_by_default_and_its_span_is_checked(tiny_config):
    assert all(task["refine"] is None for task in tiny_config["tasks"].values())
    config = copy.deepcopy(tiny_config)
    config["tasks"][TASK]["refine"] = {"points": 3, "span": [2.0, 0.5]}
    with pytest.raises(ConfigError, match=r"tasks\.linear_regression\.refine\.span"):
        check_config(validated(config), check_files=False)


# --------------------------------------------------------------------------- the workflow

def refine_config(tiny_config, **task):
    """The tiny config's linear task alone on a small coarse grid (2 SNR x 4 n x 3 seeds)."""
    config = copy.deepcopy(tiny_config)
    cfg = config["tasks"][TASK]
    cfg.update({"snr": [0.3, 30.0], "n": COARSE, "probes": 32, "test_size": 50, "refine": REFINE, **task})
    config["tasks"] = {TASK: cfg}
    return config


@pytest.mark.workflow
def test_refinement_checkpoint_adds_the_n_around_the_threshold_once(tiny_config, tmp_path):
    config = refine_config(tiny_config)
    results = tmp_path / "results" / TASK
    run_snakemake(tmp_path, config)  # every target: alignment, claims, figures, summary
    record = read_refinement(results / "refine.json")
    assert record["coarse_threshold"] == [10.0, 10.0] and record["added_n"] == ADDED
    table = read_netcdf(results / "alignment.nc")
    assert table["n"].values.tolist() == sorted(COARSE + ADDED)
    assert list(np.atleast_1d(table.attrs["n_refined"])) == ADDED
    assert list(np.atleast_1d(table.attrs["n_coarse"])) == COARSE
    assert np.isfinite(table["alignment"].sel(metric="cka_linear")).all()
    # the refined n are trained and extracted in jobs of their own: the coarse files keep their names
    assert sorted(p.name for p in (results / "models").glob("*.nc")) == ["n10-40.nc", "n13-20.nc", "n4-7.nc",
                                                                          "n5-8.nc"]
    assert sorted(p.name for p in (results / "activations").glob("*.nc")) == ["n4-7-10-40.nc", "n5-8-13-20.nc"]
    assert (tmp_path / "results" / "verdicts.csv").exists()
    # a second run schedules nothing: the refinement is a function of the config alone
    proc = run_snakemake(tmp_path, config, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr
    # and the refined grid gives the numbers of a plain run on that grid (members keyed by (task, snr, n, seed))
    plain = tmp_path / "plain"
    run_snakemake(plain, dict(refine_config(tiny_config, n=sorted(COARSE + ADDED), refine=None), n_per_job=8),
                  str(plain / "results" / TASK / "alignment.nc"))
    same = ["alignment", "train_error", "test_error", "noise_fit", "interpolation_threshold"]
    xr.testing.assert_allclose(read_netcdf(plain / "results" / TASK / "alignment.nc")[same], table[same],
                               rtol=0, atol=1e-9)
