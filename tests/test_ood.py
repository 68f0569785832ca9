"""alignpipe.ood (issue 13, item 4): the per-layer drop statistic, the config checks and one tiny
workflow run producing alignment_ood.nc, ood_summary.csv and the figure (the OOD probe sets
themselves: tests/test_data.py)."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from conftest import CONFIGS, REPO, run_snakemake, validated

from alignlib.ensembles import data as data_mod
from alignlib.claims import ood as ood_stats
from alignpipe import figures, ood
from alignlib.ensembles.alignment import member_pairs
from alignpipe.config import ConfigError, first_schema_problem

SCHEMA = str(REPO / "schemas" / "config.schema.yaml")


def test_kind_tables_agree():
    """alignpipe.ood (light, for the Snakefile) and alignlib.ensembles.data (the numerics) list the same kinds."""
    assert ood.OOD_KINDS == data_mod.OOD_KINDS
    assert set(data_mod.OOD_KINDS) == set(data_mod.DATASETS)


# ----------------------------------------------------------------------------- config checks

def _config(**ood_cfg):
    cfg = yaml.safe_load((CONFIGS / "tiny_ood.yaml").read_text())
    cfg["tasks"]["mlp_ood"]["ood"] = ood_cfg or None
    return cfg


@pytest.mark.parametrize("ood_cfg,key", [
    ({"kind": "rotate"}, "tasks.mlp_ood.ood.kind"),
    ({"kind": "scale", "factor": 0}, "tasks.mlp_ood.ood.factor"),
    ({"kind": "scale", "probes": 2}, "tasks.mlp_ood.ood.probes"),
    ({"kind": "scale", "colour": 1}, "tasks.mlp_ood.ood"),
    ({"factor": 2.0}, "tasks.mlp_ood.ood"),
])
def test_schema_errors_name_the_key(ood_cfg, key):
    message = first_schema_problem(_config(**ood_cfg), SCHEMA)
    assert message and f"'{key}'" in message


def test_null_turns_ood_off_and_is_the_default():
    cfg = validated(_config())
    assert cfg["tasks"]["mlp_ood"]["ood"] is None
    ood.check_ood_config(cfg)
    del cfg["tasks"]["mlp_ood"]["ood"]
    assert validated(cfg)["tasks"]["mlp_ood"]["ood"] is None


@pytest.mark.parametrize("change,key,words", [
    ({"ood": {"kind": "noise"}}, "tasks.mlp_ood.ood.kind", "not available for data set 'teacher_mlp'"),
    ({"ood": {"kind": "shift", "metrics": ["cka_rbf"]}}, "tasks.mlp_ood.ood.metrics", "top-level 'metrics'"),
    ({"ood": {"kind": "shift"}, "primary_metric": "cka_rbf", "metrics_top": ["cka_rbf"]},
     "tasks.mlp_ood.ood.metrics", "none of the default OOD metrics"),
])
def test_config_checks_name_the_key(change, key, words):
    cfg = validated(_config(kind="shift"))
    change = dict(change)
    if "metrics_top" in change:
        cfg["metrics"] = ["cka_linear_debiased"]
        change.pop("metrics_top")
        change.pop("primary_metric")
    cfg["tasks"]["mlp_ood"].update(change)
    with pytest.raises(ConfigError, match=rf"'{key}'.*{words}"):
        ood.check_ood_config(cfg)


def test_extrapolate_must_fit_in_diabetes():
    cfg = {"metrics": ["cka_linear", "procrustes"], "tasks": {"d": dict(
        snr=[1.0], n=[20, 262], seeds=3, probes=80, test_size=100, base_seed=0, dataset={"kind": "diabetes"},
        ood={"kind": "extrapolate", "probes": 40}, primary_metric=None)}}
    with pytest.raises(ConfigError, match=r"'tasks\.d\.ood\.probes'.*exceed the 442"):
        ood.check_ood_config(cfg)
    cfg["tasks"]["d"]["n"] = [20, 200]
    ood.check_ood_config(cfg)
    cfg["tasks"]["d"]["ood"]["feature"] = "height"
    with pytest.raises(ConfigError, match=r"'tasks\.d\.ood\.feature'.*'height'"):
        ood.check_ood_config(cfg)


def test_diabetes_feature_names_are_sklearns():
    from sklearn.datasets import load_diabetes

    assert tuple(load_diabetes().feature_names) == ood.DIABETES_FEATURES


def test_default_metrics_are_the_primary_one_and_procrustes():
    cfg = validated(_config(kind="shift"))
    assert ood.ood_metrics(cfg, "mlp_ood") == ["cka_linear", "procrustes"]
    cfg["tasks"]["mlp_ood"]["primary_metric"] = "cosine_end_to_end"  # end-to-end: cka_linear instead
    assert ood.ood_metrics(cfg, "mlp_ood") == ["cka_linear", "procrustes"]
    cfg["metrics"] = ["cka_linear"]
    assert ood.ood_metrics(cfg, "mlp_ood") == ["cka_linear"]
    cfg["tasks"]["mlp_ood"]["ood"]["metrics"] = ["procrustes"]
    assert ood.ood_metrics(cfg, "mlp_ood") == ["procrustes"]


# ----------------------------------------------------------------------------- the drop statistic

def _pairs(S):
    ia, ib = member_pairs(range(S))
    return ia, ib


def _member_table(rng, S, shape=()):
    """Pair values a_i + a_j + e_ij: member effects shared by a member's pairs, as in an ensemble."""
    ia, ib = _pairs(S)
    a = rng.standard_normal(shape + (S,))
    e = rng.standard_normal(shape + (len(ia),))
    return 0.05 * (a[..., ia] + a[..., ib]) + 0.05 * e


def test_compared_layers():
    assert ood_stats.compared_layers(["hidden", "output"]) == ("hidden", "output")
    assert ood_stats.compared_layers(["hidden1", "hidden2", "hidden3", "output"]) == ("hidden1", "hidden3")
    assert ood_stats.compared_layers(["conv1", "conv2", "hidden", "output"]) == ("conv1", "hidden")


def test_later_layers_dropping_more_is_detected():
    rng = np.random.default_rng(1)
    S = 8
    ia, ib = _pairs(S)
    id_early = 0.9 + _member_table(rng, S)
    ood_early = id_early - 0.02 + 0.2 * _member_table(rng, S)
    id_late = 0.8 + _member_table(rng, S)
    ood_late = id_late - 0.3 + 0.2 * _member_table(rng, S)
    out = ood_stats.drop_statistic(id_early, ood_early, id_late, ood_late, ia, ib, S)
    expected = np.mean((id_late - ood_late) - (id_early - ood_early))  # the mean over pairs, by hand
    assert out["statistic"] == pytest.approx(expected)
    assert out["statistic"] == pytest.approx(0.28, abs=0.02)
    assert out["p_one_sided"] < 1e-4
    # the reverse (early layers drop more) is not significant in this one-sided test
    rev = ood_stats.drop_statistic(id_late, ood_late, id_early, ood_early, ia, ib, S)
    assert rev["statistic"] == pytest.approx(-expected) and rev["p_one_sided"] > 0.99


def test_equal_drops_give_roughly_uniform_p():
    rng = np.random.default_rng(7)
    S, reps = 6, 4000
    ia, ib = _pairs(S)
    tables = [0.5 + _member_table(rng, S, (reps,)) for _ in range(4)]  # same expected drop at both layers
    p = ood_stats.drop_statistic(*tables, ia, ib, S)["p_one_sided"]
    assert np.isfinite(p).all()
    # the member jackknife is conservative for a pair mean (Efron & Stein), so at most nominal
    assert 0.01 < np.mean(p < 0.05) <= 0.07
    assert 0.01 < np.mean(p < 0.10) <= 0.13
    assert np.mean(p) == pytest.approx(0.5, abs=0.05)
    assert np.mean(p < 0.5) == pytest.approx(0.5, abs=0.03)  # symmetric about 0


def test_one_sided_p_without_an_error_is_nan():
    assert np.isnan(ood_stats.one_sided_p(0.1, 0.0, 5))
    assert ood_stats.one_sided_p(0.0, 1.0, 5) == pytest.approx(0.5)


def _tables(S=4, layers=("hidden1", "hidden2", "output"), drops=(0.0, 0.1, 0.2), threshold=(20.0, np.nan)):
    """Hand-made alignment.nc / alignment_ood.nc: ID = 0.9 everywhere, OOD = 0.9 - drop per layer,
    except one member whose pairs lose an extra 0.1 out of distribution at the second layer."""
    seeds = np.arange(S)
    ia, ib = member_pairs(seeds)
    snrs, ns = [1.0, 10.0], [10, 20, 40]
    shape = (2, len(layers), len(snrs), len(ns), len(ia))
    id_vals = np.full(shape, 0.9)
    ood_vals = id_vals - np.asarray(drops)[None, :, None, None, None]
    ood_vals[:, 1, ..., (ia == 0) | (ib == 0)] -= 0.1

    def table(values):
        return xr.Dataset(
            {"alignment": (("metric", "layer", "snr", "n", "pair"), values)},
            coords={"metric": ["cka_linear", "procrustes"], "layer": list(layers), "snr": snrs, "n": ns,
                    "pair": np.arange(len(ia)), "seed_a": ("pair", seeds[ia]), "seed_b": ("pair", seeds[ib])},
            attrs={"task": "hand"})

    id_table = table(id_vals)
    id_table["interpolation_threshold"] = ("snr", np.asarray(threshold))
    return id_table, table(ood_vals)


def test_summary_on_hand_made_tables():
    id_table, ood_table = _tables()
    out = ood_stats.ood_summary(id_table, ood_table)
    # snr 1: threshold 20 -> n = 20 and the largest n = 40; snr 10: no threshold -> n = 40 only; x 2 metrics
    assert len(out) == 2 * 3
    assert set(zip(out.snr, out.n, out.n_choice)) == {(1.0, 20, "nearest threshold"), (1.0, 40, "largest n"),
                                                      (10.0, 40, "largest n")}
    assert (out.early_layer == "hidden1").all() and (out.late_layer == "hidden2").all()
    row = out.iloc[0]
    assert row["id_hidden1"] == pytest.approx(0.9) and row["id_se_hidden1"] == pytest.approx(0.0)
    # hidden2: 0.1 lower on every pair, 0.1 more on the 3 of 6 pairs with member 0 -> mean drop 0.15
    assert row["ood_hidden2"] == pytest.approx(0.9 - 0.15)
    assert row["drop_output"] == pytest.approx(0.2)
    assert row["statistic"] == pytest.approx(0.15)
    assert row["se"] > 0 and 0 <= row["p_one_sided"] < 0.5
    assert row["members"] == 4


def test_summary_threshold_nearest_in_log_n():
    id_table, ood_table = _tables(threshold=(13.0, 30.0))
    out = ood_stats.ood_summary(id_table, ood_table, metrics=["cka_linear"])
    assert set(zip(out.snr, out.n)) == {(1.0, 10), (1.0, 40), (10.0, 40)}  # 13 -> 10; 30 -> 40 (log: 40/30 < 30/20)
    assert out.set_index(["snr", "n"]).loc[(10.0, 40), "n_choice"] == "largest n and nearest threshold"


def test_summary_leaves_out_members_with_nan_pairs():
    id_table, ood_table = _tables(S=5)
    values = ood_table["alignment"].values
    values[..., (ood_table["seed_a"].values == 4) | (ood_table["seed_b"].values == 4)] = np.nan
    out = ood_stats.ood_summary(id_table, ood_table)
    assert (out.members == 4).all() and np.isfinite(out.statistic).all()
    assert out.iloc[0]["statistic"] == pytest.approx(0.15)


def test_figure_from_a_summary(tmp_path):
    id_table, ood_table = _tables()
    out = ood_stats.ood_summary(id_table, ood_table)
    paths = figures.plot_ood_by_layer(out, ["hidden1", "hidden2", "output"], tmp_path / "f.png", title="hand", pdf=True)
    assert [p.name for p in paths] == ["f.png", "f.pdf"] and all(p.stat().st_size > 1000 for p in paths)


# ----------------------------------------------------------------------------- workflow

def test_tiny_workflow_with_ood(tmp_path):
    cfg = validated(yaml.safe_load((CONFIGS / "tiny_ood.yaml").read_text()))
    run_snakemake(tmp_path, cfg)
    res = tmp_path / "results"
    data = xr.open_dataset(res / "mlp_ood" / "data" / "ood.nc")
    assert data["ood_x"].shape == (48, 5)
    id_table = xr.open_dataset(res / "mlp_ood" / "alignment.nc")
    ood_table = xr.open_dataset(res / "mlp_ood" / "alignment_ood.nc")
    assert list(ood_table["metric"].values) == ["cka_linear", "procrustes"]
    assert ood_table["alignment"].dims == id_table["alignment"].dims
    for coord in ("layer", "snr", "n", "seed_a", "seed_b"):
        np.testing.assert_array_equal(ood_table[coord].values, id_table[coord].values)
    assert np.isfinite(ood_table["alignment"].values).all()
    assert not np.allclose(ood_table["alignment"].values, id_table["alignment"].sel(metric=["cka_linear", "procrustes"]).values)
    assert ood_table.attrs["ood_kind"] == "shift" and ood_table.attrs["probe_set"] == "ood_x"
    summary = pd.read_csv(res / "mlp_ood" / "ood_summary.csv")
    assert set(summary.metric) == {"cka_linear", "procrustes"}
    assert (summary.early_layer == "hidden1").all() and (summary.late_layer == "hidden2").all()
    assert (res / "figures" / "mlp_ood_ood_by_layer.png").stat().st_size > 1000
    assert (res / "mlp_ood" / "activations_ood").is_dir()
    rerun = run_snakemake(tmp_path, cfg, "-n")
    assert "Nothing to be done" in rerun.stdout + rerun.stderr


def test_a_bad_ood_section_stops_the_workflow_before_any_job(tmp_path):
    cfg = _config(kind="noise")  # passes the schema, but teacher_mlp has no pixels
    proc = run_snakemake(tmp_path, cfg, "-n", check=False)
    assert proc.returncode != 0
    assert "'tasks.mlp_ood.ood.kind'" in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists()


def test_summary_carries_both_probe_sets_chance_and_the_figure_draws_it(tmp_path):
    id_table, ood_table = _tables()
    dims = ("metric", "layer", "snr", "n")
    shape = tuple(id_table.sizes[d] for d in dims)
    for table, level in ((id_table, 0.10), (ood_table, 0.05)):
        table["chance"] = (dims, np.full(shape, level))
        table["chance_hi"] = (dims, np.full(shape, 2 * level))
    out = ood_stats.ood_summary(id_table, ood_table)
    assert (out["chance_lo_hidden1"] == 0.05).all() and (out["chance_hi_output"] == 0.20).all()
    assert "chance_lo_hidden1" not in ood_stats.ood_summary(*_tables())  # no chance in the tables: no columns
    paths = figures.plot_ood_by_layer(out, ["hidden1", "hidden2", "output"], tmp_path / "f.png", title="hand")
    assert paths[0].stat().st_size > 1000
