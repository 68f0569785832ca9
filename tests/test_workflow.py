"""The real snakemake on the tiny config, end to end: files, contracts, the paper's claims."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from alignlib.alignment import pair_mean
from alignlib.cubes import open_activations, read_netcdf
from conftest import REPO, run_snakemake

pytestmark = pytest.mark.workflow
FIGURES = ["alignment_vs_n", "alignment_vs_snr", "alignment_vs_test_error"]


def test_outputs_exist(tiny_run):
    for kind in FIGURES:
        for ext in ("png", "pdf"):
            path = tiny_run / "figures" / f"linear_regression_{kind}.{ext}"
            assert path.stat().st_size > 10_000, path
    summary = pd.read_csv(tiny_run / "summary.csv")
    assert set(summary["claim"]) >= {"alignment increases with SNR",
                                     "alignment minimal near the interpolation threshold"}


def test_alignment_follows_the_contract(tiny_run, tiny_config):
    table = xr.open_dataset(tiny_run / "linear_regression" / "alignment.nc")
    task = tiny_config["tasks"]["linear_regression"]
    assert table["alignment"].dims == ("metric", "layer", "snr", "n", "pair")
    assert list(table["metric"].values) == ["cka_linear", "cosine_end_to_end"]
    assert list(table["layer"].values) == ["hidden", "output"]
    np.testing.assert_array_equal(table["snr"].values, task["snr"])
    np.testing.assert_array_equal(table["n"].values, task["n"])
    assert table["snr"].dtype == np.float64 and table["n"].dtype.kind == "i"
    assert table.sizes["pair"] == 3  # 3 seeds -> 3 pairs
    assert list(zip(table["seed_a"].values, table["seed_b"].values)) == [(0, 1), (0, 2), (1, 2)]
    for name in ("train_error", "test_error"):
        assert table[name].dims == ("snr", "n", "seed")
        assert np.isfinite(table[name]).all()
    cka = table["alignment"].sel(metric="cka_linear")
    assert np.isfinite(cka).all() and float(cka.min()) >= 0 and float(cka.max()) <= 1 + 1e-9
    cos = table["alignment"].sel(metric="cosine_end_to_end")
    assert np.isnan(cos.sel(layer="hidden")).all() and np.isfinite(cos.sel(layer="output")).all()
    # below the threshold the members interpolate their noisy targets
    below = table["train_error"].sel(n=[n for n in task["n"] if n < 10])
    assert float(below.max()) < 1e-6
    table.close()


def test_cosine_values_equal_direct_computation(tiny_run):
    cube = open_activations(sorted((tiny_run / "linear_regression" / "activations").glob("n*.nc")))
    table = read_netcdf(tiny_run / "linear_regression" / "alignment.nc")
    beta = cube["end_to_end"].sel(snr=3.0, n=14).values[:, 0]
    unit = beta / np.linalg.norm(beta, axis=1, keepdims=True)
    expected = [unit[0] @ unit[1], unit[0] @ unit[2], unit[1] @ unit[2]]
    got = table["alignment"].sel(metric="cosine_end_to_end", layer="output", snr=3.0, n=14).values
    np.testing.assert_allclose(got, expected, atol=1e-10)


def test_claims_on_tiny_grid(tiny_run):
    """Claim 1 (rises with SNR) and claim 2 (dip at n near d = 10) for the end-to-end cosine."""
    table = read_netcdf(tiny_run / "linear_regression" / "alignment.nc")
    mean, _ = pair_mean(table["alignment"].sel(metric="cosine_end_to_end", layer="output"))
    ns = table["n"].values
    near_d = ns[np.argmin(np.abs(ns - 10))]
    for snr in table["snr"].values:
        curve = mean.sel(snr=snr)
        assert float(curve.sel(n=near_d)) < float(curve.sel(n=ns.min()))
        assert float(curve.sel(n=near_d)) < float(curve.sel(n=ns.max()))
    for n in ns:
        assert np.all(np.diff(mean.sel(n=n).values) > 0), f"not increasing in SNR at n={n}"


def test_job_granularity_does_not_change_numbers(tiny_run, tiny_config, tmp_path):
    """Re-run with one n per job: every number is reproduced from config and seeds alone."""
    run_snakemake(tmp_path, dict(tiny_config, n_per_job=1), f"{tmp_path}/results/linear_regression/alignment.nc")
    a = read_netcdf(tiny_run / "linear_regression" / "alignment.nc")
    b = read_netcdf(tmp_path / "results" / "linear_regression" / "alignment.nc")
    xr.testing.assert_allclose(a, b, rtol=0, atol=1e-9)


def test_second_run_has_nothing_to_do(tiny_run, tiny_config):
    proc = run_snakemake(tiny_run.parent, tiny_config, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_lint_is_clean():
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert "Lints for" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_classification_task_outputs(tiny_run, tiny_config):
    """The nonlinear, real-data task: every metric but the linear-only one, every layer, errors in [0, 1]."""
    table = read_netcdf(tiny_run / "digits_tiny" / "alignment.nc")
    assert "cosine_end_to_end" not in table["metric"].values
    assert list(table["layer"].values) == ["hidden", "output"]
    assert table.attrs["target"] == "classification" and "label" in table.attrs["snr_definition"]
    for name in ("train_error", "test_error"):
        assert float(table[name].min()) >= 0 and float(table[name].max()) <= 1
    assert table["interpolation_threshold"].dims == ("snr",)
    for kind in FIGURES + ["alignment_per_layer_vs_n"]:
        assert (tiny_run / "figures" / f"digits_tiny_{kind}.png").exists()
