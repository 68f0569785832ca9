"""The verdicts of the real snakemake run on the tiny config: files, fields, thresholds, excluded cells;
and the linear task's actual verdicts against what its closed form says (tests/configs/linear_verdicts.yaml)."""
import numpy as np
import pandas as pd
import pytest
import yaml

from alignpipe.cubes import read_netcdf
from alignpipe.report import section

from conftest import CONFIGS, run_snakemake, validated

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def linear_run(tmp_path_factory):
    """The linear task alone with 24 members, dense around d = 10 (about a minute on 2 cores)."""
    config = validated(yaml.safe_load((CONFIGS / "linear_verdicts.yaml").read_text()))
    workdir = tmp_path_factory.mktemp("linear_verdicts")
    run_snakemake(workdir, config)
    return workdir / "results"


def test_linear_task_verdicts_are_what_the_closed_form_says(linear_run):
    """For a linear network the end-to-end maps of two members differ by X^+ applied to their noise
    (docs/theory.md): their cosine rises with SNR at every n (claim 1 holds), is lowest at n = d, the
    threshold (claim 2 holds, r = log(n_min / t) near 0), and moves against the test error at every
    grid step (claim 4 cannot hold: the closed form is coupled everywhere)."""
    verdicts = pd.read_csv(linear_run / "verdicts.csv")
    heads = verdicts[(verdicts.level == "headline") & (verdicts.task == "linear_regression")].set_index("claim")
    assert set(heads.metric) == {"cosine_end_to_end"}
    assert heads.loc[1, "verdict"] == "holds"
    assert heads.loc[2, "verdict"] == "holds"
    assert heads.loc[4, "verdict"] != "holds"
    assert heads.loc[2, "near_factor"] == 1.5
    summary = pd.read_csv(linear_run / "summary.csv")
    cells = summary[(summary.claim == 2) & (summary.metric == "cosine_end_to_end") & (summary.level == "cell")]
    assert len(cells) == 3 and (cells.call == "holds").all()
    bound = np.log(1.5)
    assert (cells.r_low >= -bound).all() and (cells.r_high <= bound).all()
    assert set(cells.n_min) <= {9.0, 10.0, 11.0}  # the minimum at the grid points next to d = 10
    np.testing.assert_array_equal(cells.threshold_low, 10)  # d = 10 interpolates, 11 does not
    np.testing.assert_array_equal(cells.threshold_high, 11)
    steps = summary[(summary.claim == 4) & (summary.level == "step") & (summary.metric == "cosine_end_to_end")]
    assert len(steps) == 3 * 8 + 2 * 9  # every adjacent step in n and in SNR
    assert (steps.call != "decoupled").all()


def test_verdicts_have_one_headline_row_per_claim_and_task(tiny_run, tiny_config):
    verdicts = pd.read_csv(tiny_run / "verdicts.csv")
    assert verdicts[(verdicts.level == "headline") & (verdicts.claim == 3)].task.tolist() == ["all groups"]
    heads = verdicts[(verdicts.level == "headline") & (verdicts.claim != 3)]
    expected = {(c, t) for c in (1, 2, 4) for t in tiny_config["tasks"]}
    assert set(zip(heads.claim, heads.task)) == expected and len(heads) == len(expected)
    assert set(heads.verdict) <= {"holds", "fails", "undecided"}
    for col in ("statistic", "estimate", "p_value", "members", "metrics_agree", "detail", "cells", "r", "r_cells",
                "near_factor", "decoupled_steps", "coupled_steps"):
        assert col in heads
    assert (heads.members == 3).all()
    lin = heads[heads.task == "linear_regression"]
    assert set(lin.metric) == {"cosine_end_to_end"}  # the linear network's primary metric
    # per-metric rows for every informative metric, and the per-cell detail behind them
    assert (verdicts.level == "metric").sum() >= 3 * len(tiny_config["tasks"])
    summary = pd.read_csv(tiny_run / "summary.csv")
    assert set(summary.claim) == {1, 2, 4}
    assert {"p_holm", "ci_low", "ci_high", "call", "r", "r_low", "r_high", "shape_at_threshold"} <= set(summary.columns)


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

    from alignpipe.report import claim2_table, ood_table

    verdicts = pd.DataFrame([dict(task="t", claim=2, level="headline", metric="cka_linear", layer="hidden1")])
    summary = pd.DataFrame([
        dict(task="t", claim=2, level="cell", metric="cka_linear", layer=layer, snr=snr, call=call, estimate=0.05,
             p_holm=0.01, n_min=200.0, threshold=244.9, threshold_low=200.0, threshold_high=300.0, r=-0.2,
             r_low=-0.35, r_high=0.2, near_factor=1.5, shape_at_threshold="dip")
        for layer in ("hidden1", "hidden2", "output") for snr, call in ((1.0, "holds"), (3.0, "undecided"))])
    text = claim2_table(summary, verdicts)
    assert text.count("\n") == 1 + 4  # header, rule, 2 hidden layers x 2 SNRs (the output layer left out)
    assert ("| `t` | cka_linear | hidden2 | 3 | **undecided** | 0.050 (0.01) | 200 | 245 (200–300) | "
            "-0.20 [-0.35, +0.20] vs ±0.41 | dip |") in text
    (tmp_path / "t").mkdir()
    pd.DataFrame([dict(metric="cka_linear", snr=s, n=1000, n_choice="largest n", early_layer="hidden1",
                       late_layer="hidden3", statistic=d, se=0.01, p_one_sided=p)
                  for s, d, p in ((1.0, 0.08, 1e-4), (3.0, 0.01, 0.2))]).to_csv(tmp_path / "t" / "ood_summary.csv")
    text = ood_table(tmp_path, ["t", "absent"], verdicts)
    assert "| `t` | cka_linear | hidden1 → hidden3 | largest n (1000) | 1/2: 1 |" in text
    assert "SNR 1: +0.080 ± 0.010; SNR 3: +0.010 ± 0.010" in text
    assert ood_table(tmp_path, ["absent"], verdicts) == "- no OOD probes in this run"
