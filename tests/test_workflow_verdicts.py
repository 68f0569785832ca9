"""The verdicts of the real snakemake run on the tiny config: files, fields, thresholds, excluded cells."""
import numpy as np
import pandas as pd
import pytest

from alignlib.cubes import read_netcdf
from alignlib.report import section

pytestmark = pytest.mark.workflow


def test_verdicts_have_one_headline_row_per_claim_and_task(tiny_run, tiny_config):
    verdicts = pd.read_csv(tiny_run / "verdicts.csv")
    assert verdicts[(verdicts.level == "headline") & (verdicts.claim == 3)].task.tolist() == ["all groups"]
    heads = verdicts[(verdicts.level == "headline") & (verdicts.claim != 3)]
    expected = {(c, t) for c in (1, 2, 4) for t in tiny_config["tasks"]}
    assert set(zip(heads.claim, heads.task)) == expected and len(heads) == len(expected)
    assert set(heads.verdict) <= {"holds", "fails", "undecided"}
    for col in ("statistic", "estimate", "p_value", "members", "metrics_agree", "detail"):
        assert col in heads
    assert (heads.members == 3).all()
    lin = heads[heads.task == "linear_regression"]
    assert set(lin.metric) == {"cosine_end_to_end"}  # the linear network's primary metric
    # per-metric rows for every informative metric, and the per-cell detail behind them
    assert (verdicts.level == "metric").sum() >= 3 * len(tiny_config["tasks"])
    summary = pd.read_csv(tiny_run / "summary.csv")
    assert set(summary.claim) == {1, 2, 4}
    assert {"p_holm", "ci_low", "ci_high", "call"} <= set(summary.columns)


def test_threshold_and_test_error_peak_with_intervals(tiny_run):
    table = read_netcdf(tiny_run / "linear_regression" / "alignment.nc")
    # d = 10: members interpolate (noise_fit ~ 1e-13) up to n = 10 and not at n = 14
    np.testing.assert_array_equal(table["interpolation_threshold"].values, 10)
    np.testing.assert_array_equal(table["interpolation_threshold_low"].values, 10)
    assert (table["interpolation_threshold_high"].values >= 14).all()
    assert float(table["noise_fit"].sel(n=[4, 7, 10]).max()) < 1e-6
    assert float(table["noise_fit"].sel(n=200).min()) > 0.5  # least squares leaves most noise at n >> d
    for name in ("interpolation_threshold", "test_error_peak", "noise_fit"):
        assert name in table and ("definition" in table[name].attrs or name == "noise_fit")
    assert "noise_fit_definition" in table.attrs


def test_report_section_is_generated_from_the_run(tiny_run):
    text = section(tiny_run)
    assert text.startswith("<!-- results:begin -->") and text.endswith("<!-- results:end -->")
    assert "`linear_regression`" in text and "`digits_tiny`" in text and "test-error peak" in text
