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
    assert "**Claim 2 per SNR**" in text


def test_claim2_and_ood_tables_from_hand_made_frames(tmp_path):
    import pandas as pd

    from alignlib.report import claim2_table, ood_table

    verdicts = pd.DataFrame([dict(task="t", claim=2, level="headline", metric="cka_linear", layer="hidden1")])
    summary = pd.DataFrame([
        dict(task="t", claim=2, metric="cka_linear", layer=layer, snr=snr, call=call, estimate=0.05, p_holm=0.01,
             n_min=200.0, ci_low=150.0, ci_high=250.0, threshold_low=200.0, threshold_high=float("nan"))
        for layer in ("hidden1", "hidden2", "output") for snr, call in ((1.0, "holds"), (3.0, "undecided"))])
    text = claim2_table(summary, verdicts)
    assert text.count("\n") == 1 + 4  # header, rule, 2 hidden layers x 2 SNRs (the output layer left out)
    assert "| `t` | cka_linear | hidden2 | 3 | **undecided** | 0.050 (0.01) | 200 [150, 250] | [200, beyond grid] |" in text
    (tmp_path / "t").mkdir()
    pd.DataFrame([dict(metric="cka_linear", snr=s, n=1000, n_choice="largest n", early_layer="hidden1",
                       late_layer="hidden3", statistic=d, se=0.01, p_one_sided=p)
                  for s, d, p in ((1.0, 0.08, 1e-4), (3.0, 0.01, 0.2))]).to_csv(tmp_path / "t" / "ood_summary.csv")
    text = ood_table(tmp_path, ["t", "absent"], verdicts)
    assert "| `t` | cka_linear | hidden1 → hidden3 | largest n (1000) | 1/2: 1 |" in text
    assert "SNR 1: +0.080 ± 0.010; SNR 3: +0.010 ± 0.010" in text
    assert ood_table(tmp_path, ["absent"], verdicts) == "- no OOD probes in this run"
