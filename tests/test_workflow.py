"""The real snakemake on the tiny config, end to end: files, contracts, the paper's claims."""
import io
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from alignlib.ensembles.alignment import compute_alignment, linear_theory, pair_mean
from alignpipe.config import has_linear_theory
from alignpipe.cubes import open_activations, read_netcdf, write_netcdf
from alignlib.stats.threshold import task_thresholds
from alignlib.claims.verdicts import all_verdicts, write_csv
from conftest import REPO, run_snakemake

pytestmark = pytest.mark.workflow
FIGURES = ["alignment_vs_n", "alignment_vs_snr", "alignment_vs_test_error"]


def test_outputs_exist(tiny_run):
    for kind in FIGURES:
        path = tiny_run / "figures" / f"linear_regression_{kind}.png"
        assert path.stat().st_size > 10_000, path
        assert not path.with_suffix(".pdf").exists()  # PDFs only with figure_pdf: true
    summary = pd.read_csv(tiny_run / "summary.csv")
    assert set(summary["claim_text"]) >= {"alignment increases monotonically with SNR",
                                          "alignment minimal near the interpolation threshold",
                                          "higher alignment does not imply lower test error"}


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


def test_job_layout_does_not_change_results(tiny_run, tiny_config, tmp_path):
    """Another job layout (one n per training job, one metric per align job, merged by align; the
    tiny run has one align job per task) reproduces alignment.nc, summary.csv and verdicts.csv exactly."""
    results = tmp_path / "results"
    run_snakemake(tmp_path, dict(tiny_config, n_per_job=1, align_metrics_per_job=1),
                  str(results / "summary.csv"), str(results / "verdicts.csv"))
    assert (results / "linear_regression" / "align_parts" / "cosine_end_to_end.nc").exists()
    assert (results / "linear_regression" / "models" / "n4.nc").exists()
    for task in tiny_config["tasks"]:
        xr.testing.assert_identical(read_netcdf(results / task / "alignment.nc"),
                                    read_netcdf(tiny_run / task / "alignment.nc"))
    for name in ("summary.csv", "verdicts.csv"):
        assert (results / name).read_bytes() == (tiny_run / name).read_bytes(), name


def test_results_equal_one_job_per_stage(tiny_run, tiny_config, tmp_path):
    """The layout before jobs were sized (one align computation over all of a task's cubes, one
    summary computation over all tasks), recomputed here: the same alignment.nc, summary and verdicts."""
    tables = {}
    order = yaml.safe_load((tiny_run.parent / "config.yaml").read_text())["tasks"]  # the run's task order
    for task, cfg in ((t, tiny_config["tasks"][t]) for t in order):
        data = read_netcdf(tiny_run / task / "data" / "data.nc")
        cube = open_activations(sorted((tiny_run / task / "activations").glob("n*.nc")), expected_n=cfg["n"])
        table = compute_alignment(cube, tiny_config["metrics"], log=io.StringIO(), probe_x=data["probe_x"].values,
                                  chance_draws=tiny_config["chance"]["draws"], base_seed=cfg["base_seed"], task=task,
                                  metric_options=tiny_config["metric_options"])
        table = table.merge(task_thresholds(table, cfg["interpolation_tol"]), combine_attrs="override")
        if has_linear_theory(cfg):
            table = table.merge(linear_theory(table, data))
        write_netcdf(table, tmp_path / f"{task}.nc")
        tables[task] = read_netcdf(tiny_run / task / "alignment.nc")
        xr.testing.assert_identical(read_netcdf(tmp_path / f"{task}.nc"), tables[task])
    verdicts, summary = all_verdicts(tables, {t: c["primary_metric"] for t, c in tiny_config["tasks"].items()})
    write_csv(summary, tmp_path / "summary.csv")
    write_csv(verdicts, tmp_path / "verdicts.csv")
    for name in ("summary.csv", "verdicts.csv"):
        assert (tmp_path / name).read_bytes() == (tiny_run / name).read_bytes(), name


def test_float16_activations_run_end_to_end(tiny_run, tiny_config, tmp_path):
    """activation_dtype: float16 (paper_scale.yaml's): the cubes are float16 on reading, equal to the float32
    run's to float16 rounding, and alignment.nc follows to the same order (linear CKA to 2e-3)."""
    results = tmp_path / "results"
    run_snakemake(tmp_path, dict(tiny_config, activation_dtype="float16"),
                  str(results / "linear_regression" / "alignment.nc"))
    files = lambda root: sorted((root / "linear_regression" / "activations").glob("n*.nc"))  # noqa: E731
    half, full = open_activations(files(results)), open_activations(files(tiny_run))
    assert half["activation"].dtype == np.float16 and full["activation"].dtype == np.float32
    np.testing.assert_allclose(half["activation"].values.astype(np.float32), full["activation"].values,
                               rtol=1e-3, atol=1e-4, equal_nan=True)
    a = read_netcdf(results / "linear_regression" / "alignment.nc")["alignment"].sel(metric="cka_linear", layer="hidden")
    b = read_netcdf(tiny_run / "linear_regression" / "alignment.nc")["alignment"].sel(metric="cka_linear", layer="hidden")
    np.testing.assert_allclose(a.values, b.values, atol=2e-3)


def test_figure_pdf_adds_pdf_targets(tiny_config, tmp_path):
    for pdf in (False, True):
        proc = run_snakemake(tmp_path, dict(tiny_config, figure_pdf=pdf), "-n")
        out = proc.stdout + proc.stderr
        for name in ("linear_regression_alignment_vs_n.pdf", "linear_regression_theory_residuals.pdf"):
            assert (name in out) == pdf, (name, pdf)


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
