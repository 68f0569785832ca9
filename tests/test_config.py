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
]


@pytest.mark.workflow
@pytest.mark.parametrize("path,value,key,fragment", CASES, ids=[c[2] + "=" + str(c[1]) for c in CASES])
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


def test_known_metrics_match_registry():
    from alignlib.config import KNOWN_METRICS
    from alignlib.metrics import metric_names

    assert set(KNOWN_METRICS) == set(metric_names())
