"""Independent data draws of a task (data_draws: K; alignpipe.draws): config, names and the combined table."""
import copy
import re
from itertools import combinations

import numpy as np
import pytest
import xarray as xr

from alignpipe.config import ConfigError, check_config, first_schema_problem, plan_summary
from alignpipe.cubes import read_netcdf, write_netcdf
from alignpipe.draws import (
    check_draws,
    coarse_noise_fit,
    combine_draws,
    data_draws,
    draw_task,
    draw_tasks,
    excluding_pattern,
    multi_draw_tasks,
    parent_task,
    stack_members,
    task_pattern,
    trained_tasks,
)
from conftest import REPO, validated

SCHEMA = str(REPO / "schemas" / "config.schema.yaml")


# --------------------------------------------------------------------------- hand-made tables

def table(draw: int, seeds=(0, 1, 2), snrs=(1.0, 10.0), ns=(5, 10), target_variance=1.0) -> xr.Dataset:
    """An alignment table of one draw: alignment = 100 x draw + 10 x pair + grid position."""
    seeds = np.asarray(seeds)
    pairs = list(combinations(range(len(seeds)), 2))
    ia, ib = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    grid = np.arange(len(snrs) * len(ns)).reshape(len(snrs), len(ns))
    values = 100.0 * draw + 10.0 * np.arange(len(pairs)) + grid[..., None]
    alignment = np.stack([values, values + 0.5])[:, None]  # (metric, layer, snr, n, pair)
    member = 1000.0 * draw + np.arange(len(snrs) * len(ns) * len(seeds)).reshape(len(snrs), len(ns), len(seeds))
    cell = ("metric", "layer", "snr", "n")
    ds = xr.Dataset(
        {"alignment": (cell + ("pair",), alignment),
         "alignment_note": (("metric", "layer"), np.array([[""], [f"note of draw {draw}"]])),
         "chance": (cell, np.full((2, 1, len(snrs), len(ns)), 0.1 * (draw + 1))),
         "chance_hi": (cell, np.full((2, 1, len(snrs), len(ns)), 0.2 * (draw + 1))),
         "chance_note": (("metric",), np.array(["", ""])),
         "theory": (("metric", "snr", "n"), np.full((2, len(snrs), len(ns)), 0.5 + draw)),
         "train_error": (("snr", "n", "seed"), member),
         "noise_fit": (("snr", "n", "seed"), member / 1e4),
         "interpolation_threshold": (("snr",), np.full(len(snrs), 7.0 + draw))},
        coords={"metric": ["cka_linear", "procrustes"], "layer": ["hidden"], "snr": list(snrs), "n": list(ns),
                "seed": seeds, "pair": np.arange(len(pairs)), "seed_a": ("pair", seeds[ia]),
                "seed_b": ("pair", seeds[ib])},
        attrs={"task": f"t_draw{draw}", "network": "mlp", "target_variance": target_variance, "max_steps": 300})
    ds["chance"].attrs["description"] = "permutation baseline"
    return ds


def test_combined_table_has_every_member_and_only_pairs_within_a_draw():
    tables = [table(0), table(1, target_variance=0.5)]
    out = combine_draws(tables, "t", names=["t_draw0", "t_draw1"])
    assert out["seed"].values.tolist() == [0, 1, 2, 3, 4, 5]
    assert out["draw"].values.tolist() == [0, 0, 0, 1, 1, 1]
    assert out["seed_in_draw"].values.tolist() == [0, 1, 2, 0, 1, 2]
    assert out.sizes["pair"] == 6  # 3 + 3 pairs; no pair across the draws
    assert out["pair"].values.tolist() == list(range(6))
    assert list(zip(out["seed_a"].values.tolist(), out["seed_b"].values.tolist())) == [
        (0, 1), (0, 2), (1, 2), (3, 4), (3, 5), (4, 5)]
    assert out["pair_draw"].values.tolist() == [0, 0, 0, 1, 1, 1]
    draw_of = dict(zip(out["seed"].values.tolist(), out["draw"].values.tolist()))
    for a, b, d in zip(out["seed_a"].values, out["seed_b"].values, out["pair_draw"].values):
        assert draw_of[int(a)] == draw_of[int(b)] == int(d)
    # each draw's values under its own pairs and members
    for k in range(2):
        pairs = out["alignment"].isel(pair=out["pair_draw"].values == k)
        np.testing.assert_array_equal(pairs.values, tables[k]["alignment"].values)
        members = out["train_error"].sel(seed=out["seed"].values[out["draw"].values == k])
        np.testing.assert_array_equal(members.values, tables[k]["train_error"].values)
    assert out["alignment"].dims == tables[0]["alignment"].dims
    assert out["train_error"].dims == ("snr", "n", "seed")
    # per grid point: chance as the mean, chance_hi as the largest, theory as the mean over draws
    np.testing.assert_allclose(out["chance"].values, 0.15)
    np.testing.assert_allclose(out["chance_hi"].values, 0.4)
    np.testing.assert_allclose(out["theory"].values, 1.0)
    assert "mean over the 2 data draws" in out["chance"].attrs["description"]
    # task-level statistics are the caller's to recompute; notes that differ name their draw
    assert "interpolation_threshold" not in out
    assert out["alignment_note"].sel(metric="cka_linear").item() == ""
    assert out["alignment_note"].sel(metric="procrustes").item() == "draw 0: note of draw 0; draw 1: note of draw 1"
    assert out.attrs["task"] == "t" and out.attrs["data_draws"] == 2
    assert out.attrs["draw_tasks"] == "t_draw0, t_draw1"
    assert out.attrs["target_variance"] == 0.75  # differs between draws: their mean, and each
    assert out.attrs["target_variance_by_draw"].tolist() == [1.0, 0.5]
    assert out.attrs["network"] == "mlp" and "network_by_draw" not in out.attrs


def test_combined_table_round_trips_through_netcdf(tmp_path):
    out = combine_draws([table(0), table(1), table(2)], "t")
    write_netcdf(out, tmp_path / "alignment.nc")
    back = read_netcdf(tmp_path / "alignment.nc")
    assert back.sizes["seed"] == 9 and back.sizes["pair"] == 9
    assert back["draw"].dims == ("seed",) and back["pair_draw"].dims == ("pair",)
    assert back["pair_draw"].values.tolist() == [0] * 3 + [1] * 3 + [2] * 3
    assert back.attrs["draw_tasks"] == "t_draw0, t_draw1, t_draw2"
    xr.testing.assert_identical(back["alignment"], out["alignment"])


def test_seed_labels_stay_unique_for_any_seed_labels():
    out = combine_draws([table(0, seeds=(0, 4, 7)), table(1, seeds=(0, 4, 7))], "t")
    assert out["seed"].values.tolist() == [0, 4, 7, 8, 12, 15]  # k * (1 + largest seed) + seed
    assert out["seed_in_draw"].values.tolist() == [0, 4, 7, 0, 4, 7]
    assert set(out["seed_a"].values) | set(out["seed_b"].values) <= set(out["seed"].values)


def test_one_draw_is_the_identity():
    one = table(0)
    assert combine_draws([one], "t") is one
    fit = one["noise_fit"]
    assert stack_members([fit]) is fit


def test_a_cell_excluded_in_one_draw_is_excluded_in_all():
    tables = [table(0), table(1)]
    tables[1]["alignment"][0, 0, 1, 0, :] = np.nan  # cka_linear, hidden, snr 10, n 5: all pairs NaN in draw 1
    tables[0]["alignment"][1, 0, 0, 1, 0] = np.nan  # one pair NaN (a diverged member): kept as it is
    out = combine_draws(tables, "t")
    cell = out["alignment"].sel(metric="cka_linear", layer="hidden", snr=10.0, n=5)
    assert np.isnan(cell.values).all()
    assert np.isnan(out["chance"].sel(metric="cka_linear", layer="hidden", snr=10.0, n=5).item())
    other = out["alignment"].sel(metric="procrustes", layer="hidden", snr=1.0, n=10)
    assert np.isnan(other.values).sum() == 1
    assert np.isfinite(out["alignment"].sel(metric="cka_linear", snr=1.0)).all()


@pytest.mark.parametrize("change,words", [
    (lambda t: t.assign_coords(n=[5, 11]), "draw 1's n .* differ from draw 0's .*share one grid"),
    (lambda t: t.assign_coords(snr=[1.0, 30.0]), "draw 1's snr"),
    (lambda t: t.drop_vars("chance"), "draw 1's variables differ from draw 0's: \\['chance'\\]"),
    (lambda t: t.drop_vars(["seed_a"]), "draw 1's table has no 'seed_a'"),
    (lambda t: t.assign_coords(seed_b=("pair", [1, 2, 9])), "draw 1's pairs name seeds \\[9\\]"),
])
def test_draws_that_cannot_be_combined_say_why(change, words):
    with pytest.raises(ValueError, match=words):
        combine_draws([table(0), change(table(1))], "t")


def test_a_combined_table_is_not_combined_again():
    out = combine_draws([table(0), table(1)], "t")
    with pytest.raises(ValueError, match="already combines data draws"):
        combine_draws([out, out], "t")
    with pytest.raises(ValueError, match="no draw tables"):
        combine_draws([], "t")


def test_coarse_noise_fit_stacks_the_draws_members():
    def models(task, ns):
        fit = np.full((2, len(ns), 3), float(task[-1]) if task[-1].isdigit() else 0.5)
        return xr.Dataset({"noise_fit": (("snr", "n", "seed"), fit)},
                          coords={"snr": [1.0, 10.0], "n": ns, "seed": [0, 1, 2]}, attrs={"task": task})

    files = [models("t_draw0", [4]), models("t_draw0", [10]), models("t_draw1", [4]), models("t_draw1", [10])]
    fit = coarse_noise_fit(files)
    assert fit.sizes == {"snr": 2, "n": 2, "seed": 6}
    assert fit["draw"].values.tolist() == [0, 0, 0, 1, 1, 1]
    assert (fit.sel(seed=fit["seed"].values[3:]) == 1.0).all()
    single = [models("t", [4]), models("t", [10])]
    one = coarse_noise_fit(single)  # one draw: what the refine job always read
    xr.testing.assert_identical(one, xr.concat([m["noise_fit"] for m in single], dim="n"))
    assert "draw" not in one.coords
    with pytest.raises(ValueError, match="different n"):
        coarse_noise_fit([models("t_draw0", [4]), models("t_draw1", [10])])


# --------------------------------------------------------------------------- the config

def config(**task_keys):
    task = {"snr": [1.0], "n": [10, 20], "seeds": 3, "probes": 16, "test_size": 20,
            "dataset": {"kind": "gaussian_linear", "dim": 5}}
    return validated({"tasks": {"a": dict(task, **task_keys), "b": dict(task)}, "metrics": ["cka_linear"]})


def test_data_draws_default_to_one_and_a_task_key_wins():
    cfg = config()
    assert cfg["data_draws"] == 1 and "data_draws" not in cfg["tasks"]["a"]  # the task key has no default
    assert data_draws(cfg, "a") == 1 and draw_tasks(cfg, "a") == ["a"] and multi_draw_tasks(cfg) == []
    assert trained_tasks(cfg) == cfg["tasks"]
    assert trained_tasks(cfg)["a"] is cfg["tasks"]["a"]  # the very settings: same params, nothing reruns
    cfg = config(data_draws=3)
    assert draw_tasks(cfg, "a") == ["a_draw0", "a_draw1", "a_draw2"] and draw_tasks(cfg, "b") == ["b"]
    assert list(trained_tasks(cfg)) == ["a_draw0", "a_draw1", "a_draw2", "b"]
    assert trained_tasks(cfg)["a_draw1"] == {k: v for k, v in cfg["tasks"]["a"].items() if k != "data_draws"}
    assert parent_task(cfg, "a_draw2") == "a" and parent_task(cfg, "b") == "b"
    with pytest.raises(KeyError):
        parent_task(cfg, "b_draw0")
    top = dict(config(), data_draws=2)
    assert multi_draw_tasks(top) == ["a", "b"]
    top["tasks"]["b"]["data_draws"] = 1
    assert multi_draw_tasks(top) == ["a"]
    assert draw_task("a", 4) == "a_draw4"


def test_an_explicit_single_draw_trains_with_the_default_settings():
    assert trained_tasks(config(data_draws=1))["a"] == config()["tasks"]["a"]


@pytest.mark.parametrize("where", ["task", "top"])
@pytest.mark.parametrize("value", [0, -1, 2.5, "3"])
def test_bad_data_draws_name_the_key(where, value):
    cfg = config()
    key = "tasks.a.data_draws" if where == "task" else "data_draws"
    if where == "task":
        cfg["tasks"]["a"]["data_draws"] = value
    else:
        cfg["data_draws"] = value
    assert f"invalid config key '{key}'" in first_schema_problem(cfg, SCHEMA)
    with pytest.raises(ConfigError, match=rf"invalid config key '{re.escape(key)}': .* not an integer >= 1"):
        check_draws(cfg)


def test_boolean_data_draws_are_refused():
    cfg = config()
    cfg["tasks"]["a"]["data_draws"] = True
    with pytest.raises(ConfigError, match=r"'tasks\.a\.data_draws'"):
        data_draws(cfg, "a")


def test_a_draw_name_that_is_a_task_is_refused():
    cfg = config(data_draws=2)
    cfg["tasks"]["a_draw1"] = cfg["tasks"].pop("b")
    with pytest.raises(ConfigError, match=r"'tasks\.a\.data_draws'.*\['a_draw1'\] is also a configured task"):
        check_config(cfg)


@pytest.mark.parametrize("scope", ["task", "top"])
def test_checkpoints_with_several_draws_name_both_keys(scope):
    cfg = config(data_draws=2)
    spec = {"at": [0, 10], "n": [10]}
    if scope == "task":
        cfg["tasks"]["a"]["checkpoints"] = spec
        where = "tasks.a.checkpoints"
    else:
        cfg["checkpoints"] = spec
        where = "checkpoints"
    with pytest.raises(ConfigError, match=rf"'tasks\.a\.data_draws' and '{re.escape(where)}'"):
        check_config(cfg)
    cfg["tasks"]["a"]["checkpoints"] = None  # the task opts out: fine
    check_config(cfg)


def test_plan_counts_every_draw():
    plan = plan_summary(config(data_draws=3))
    assert "a: 18 members in 3 data draws" in plan and "b: 6 members," in plan


def test_wildcard_patterns_split_the_tasks():
    multi, trained = task_pattern(["a"]), excluding_pattern(["a"])

    def matches(pattern, path):
        return re.fullmatch(f"(?P<task>{pattern})/alignment\\.nc", path) is not None

    assert matches(multi, "a/alignment.nc")
    assert not matches(multi, "a_draw0/alignment.nc") and not matches(multi, "ab/alignment.nc")
    assert not matches(trained, "a/alignment.nc")
    assert matches(trained, "a_draw0/alignment.nc") and matches(trained, "ab/alignment.nc")
    assert matches(trained, "b/alignment.nc")
    assert not matches(task_pattern([]), "a/alignment.nc")
    assert excluding_pattern([]) == "[A-Za-z][A-Za-z0-9_]*"


# --------------------------------------------------------------------------- the data of a draw

@pytest.mark.parametrize("dataset", [{"kind": "teacher_mlp", "dim": 4, "teacher_hidden": 6},
                                     {"kind": "diabetes"}])
def test_each_draw_has_its_own_data_and_a_draw_is_recreated_alone(dataset):
    from alignlib.ensembles.data import make_task_data, ood_probe_set

    cfg = config(data_draws=2, dataset=dataset, ood={"kind": "shift", "factor": 2.0})
    settings = trained_tasks(cfg)

    def with_ood(name):
        data = make_task_data(name, settings[name])
        return data.merge(ood_probe_set(name, settings[name], data), combine_attrs="override")

    d0, d1 = with_ood("a_draw0"), with_ood("a_draw1")
    for name in ("train_x", "probe_x", "test_x", "train_y", "ood_x"):
        assert not np.allclose(d0[name].values, d1[name].values), name
    xr.testing.assert_identical(with_ood("a_draw1"), d1)
    # K = 1: the task's own name keys its data, as always
    single = make_task_data("a", config()["tasks"]["a"] | {"dataset": cfg["tasks"]["a"]["dataset"],
                                                             "ood": cfg["tasks"]["a"]["ood"]})
    assert not np.allclose(single["probe_x"].values, d0["probe_x"].values)


def test_bad_draws_fail_through_the_library_entry_point(tmp_path):
    import yaml

    from alignpipe.config import main

    cfg = copy.deepcopy(config())
    cfg["tasks"]["a"]["data_draws"] = 0
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main([str(path)]) == 1
