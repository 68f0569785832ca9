"""Schema validation through the real snakemake: bad values fail before any job, naming the key."""
import copy

import pytest

from conftest import run_snakemake


def bad(tiny_config, path, value):
    cfg = copy.deepcopy(tiny_config)
    node = cfg
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return cfg


CASES = [
    (("tasks", "linear_regression", "snr"), [1.0, 0.0], "tasks.linear_regression.snr[1]", "0.0"),
    (("tasks", "linear_regression", "snr"), [-3.0, 1.0], "tasks.linear_regression.snr[0]", "-3.0"),
    (("tasks", "linear_regression", "n"), [1, 10], "tasks.linear_regression.n[0]", "minimum of 2"),
    (("tasks", "linear_regression", "n"), [10, 20, 10], "tasks.linear_regression.n", "duplicate values [10]"),
    (("tasks", "linear_regression", "snr"), [1.0, 3.0, 1.0], "tasks.linear_regression.snr", "duplicate values [1.0]"),
    (("tasks", "linear_regression", "seeds"), 1, "tasks.linear_regression.seeds", "minimum of 2"),
    (("tasks", "linear_regression", "network", "kind"), "transformer", "tasks.linear_regression.network.kind",
     "'transformer' is not one of"),
    (("device",), "tpu", "device", "'tpu' is not one of ['auto', 'cpu', 'cuda']"),
    (("metrics",), ["cka_linear", "nonsense"], "metrics", "unknown metric(s) ['nonsense']"),
    (("metric_options",), {"linear_predictiviti": {"ridge": 0.1}}, "metric_options",
     "unknown metric(s) ['linear_predictiviti']"),
    # yaml .nan / -.inf: a schema bound lets NaN through (nan > 0 is never false)
    (("tasks", "linear_regression", "snr"), [0.3, float("nan")], "tasks.linear_regression.snr[1]",
     "nan is not a finite number"),
    (("tasks", "linear_regression", "training", "lr"), float("-inf"), "tasks.linear_regression.training.lr",
     "-inf is not a finite number"),
]


@pytest.mark.parametrize("path,value,key,fragment", CASES, ids=[c[2] + "=" + str(c[1]) for c in CASES])
def test_bad_config_names_key(tiny_config, path, value, key, fragment):
    """Every case through the Snakefile's own checks (alignpipe.config.checked_config, what
    validated_config runs before any job); the two cases below show the real snakemake prints it."""
    from alignpipe.config import checked_config
    from alignpipe.errors import ConfigError
    from conftest import REPO

    with pytest.raises(ConfigError) as error:
        checked_config(bad(tiny_config, path, value), REPO / "schemas" / "config.schema.yaml", check_files=False)
    assert f"invalid config key '{key}'" in str(error.value)
    assert fragment in str(error.value)


THROUGH_SNAKEMAKE = [CASES[0], CASES[8]]  # a schema bound; a check the schema cannot express


@pytest.mark.workflow
@pytest.mark.parametrize("path,value,key,fragment", THROUGH_SNAKEMAKE,
                         ids=[c[2] + "=" + str(c[1]) for c in THROUGH_SNAKEMAKE])
def test_bad_config_names_key_and_runs_nothing(tmp_path, tiny_config, path, value, key, fragment):
    proc = run_snakemake(tmp_path, bad(tiny_config, path, value), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"invalid config key '{key}'" in out, out[-2000:]
    assert fragment in out, out[-2000:]
    assert "Traceback" not in out
    assert not (tmp_path / "results").exists(), "a job ran despite the bad config"


@pytest.mark.workflow
def test_unknown_key_lists_allowed_keys(tmp_path, tiny_config):
    cfg = copy.deepcopy(tiny_config)
    cfg["tasks"]["linear_regression"]["seed"] = 3  # typo for 'seeds'
    proc = run_snakemake(tmp_path, cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "invalid config key 'tasks.linear_regression'" in out
    assert "'seed' was unexpected" in out and "'seeds'" in out


def test_metrics_default_to_every_metric_from_one_list():
    """The schema lists no metric names; an absent `metrics` is alignlib.metrics.names.METRIC_NAMES."""
    import yaml

    from alignlib.metrics.names import METRIC_NAMES
    from conftest import REPO, validated

    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    assert "default" not in schema["properties"]["metrics"]
    task = {"snr": [1.0], "n": [4, 8], "seeds": 2}
    assert validated({"tasks": {"t": task}})["metrics"] == list(METRIC_NAMES)
    assert validated({"tasks": {"t": task}, "metrics": ["rsa"]})["metrics"] == ["rsa"]


def test_known_metrics_match_registry():
    from alignpipe.config import KNOWN_METRICS
    from alignlib.metrics import metric_names

    assert set(KNOWN_METRICS) == set(metric_names())


def test_metric_options_reach_the_alignment():
    """metric_options (config) are the metric's options in compute_alignment: a fixed ridge gives
    what linear_predictivity computes with that ridge, not its cross-validated default."""
    import numpy as np
    import xarray as xr

    from alignlib.ensembles.alignment import compute_alignment
    from alignlib.metrics import compare

    rng = np.random.default_rng(0)
    acts = rng.standard_normal((1, 1, 3, 1, 40, 4))
    acts[..., 1, :, :, :] = acts[..., 0, :, :, :] @ rng.standard_normal((4, 4)) + 0.3 * rng.standard_normal((40, 4))
    cube = xr.Dataset({"activation": (("snr", "n", "seed", "layer", "probe", "unit"), acts),
                       "layer_width": (("layer",), [4])},
                      coords={"snr": [1.0], "n": [10], "seed": [0, 1, 2], "layer": ["hidden"]})
    options = {"linear_predictivity": {"ridge": 10.0}}
    table = compute_alignment(cube, ["linear_predictivity"], metric_options=options)
    got = float(table["alignment"].isel(pair=0).squeeze())
    a, b = acts[0, 0, 0, 0], acts[0, 0, 1, 0]
    assert got == pytest.approx(compare(a, b, "linear_predictivity", ridge=10.0), abs=1e-12)
    assert abs(got - compare(a, b, "linear_predictivity")) > 1e-3  # the default (cv) differs


def test_derived_configs_keep_the_default_tasks_in_step():
    """configs/convergent.yaml (checkpoints on), configs/claim2_power.yaml (24 members) and configs/confirm.yaml
    (held out: base_seed, data_draws, members) are the default tasks with a few keys changed: every other key
    of every task must equal config.yaml's."""
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parent.parent
    default = yaml.safe_load((repo / "config.yaml").read_text())["tasks"]
    derived = (("convergent.yaml", {"checkpoints", "training"}), ("claim2_power.yaml", {"seeds", "ood"}),
               ("confirm.yaml", {"base_seed", "data_draws", "seeds"}))
    for name, changed in derived:
        tasks = yaml.safe_load((repo / "configs" / name).read_text())["tasks"]
        for task, cfg in tasks.items():
            assert task in default, f"{name}: {task} is not a default task"
            for key in set(cfg) | set(default[task]):
                if key in changed:
                    continue
                assert cfg.get(key) == default[task].get(key), f"{name}: tasks.{task}.{key} differs from config.yaml"
        if name == "convergent.yaml":
            for task, cfg in tasks.items():  # training may only gain a batch size
                extra = {k: v for k, v in cfg["training"].items() if default[task]["training"].get(k) != v}
                assert set(extra) <= {"batch_size"}, f"{name}: tasks.{task}.training differs: {extra}"


def test_confirmation_config_is_the_default_design_held_out():
    """configs/confirm.yaml (issue 17 item 7): every default task, each on a base_seed never used before
    and in 3 data draws; every top-level key but results and data_draws as config.yaml's."""
    from pathlib import Path

    import yaml

    from alignpipe.draws import data_draws

    repo = Path(__file__).resolve().parent.parent
    default = yaml.safe_load((repo / "config.yaml").read_text())
    confirm = yaml.safe_load((repo / "configs" / "confirm.yaml").read_text())
    assert list(confirm["tasks"]) == list(default["tasks"])
    for key in set(confirm) | set(default):
        if key not in ("tasks", "results", "data_draws"):
            assert confirm.get(key) == default.get(key), f"confirm.yaml: {key} differs from config.yaml"
    assert confirm["results"] != default["results"]  # the exploratory results stay
    used = {cfg.get("base_seed", 0) for cfg in default["tasks"].values()}
    for task, cfg in confirm["tasks"].items():
        assert cfg["base_seed"] == 20261204 and cfg["base_seed"] not in used, task
        assert data_draws(confirm, task) == 3, task
