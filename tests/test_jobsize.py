"""alignpipe.jobsize: job sizes and priorities, and per-task claims that stack to all verdicts."""
import math

import pytest
import yaml

from alignpipe.config import task_jobs_by_rule
from alignpipe.jobsize import (
    align_seconds,
    cube_groups,
    metric_groups,
    n_groups,
    part_name,
    train_seconds,
)
from conftest import REPO, validated


@pytest.fixture(scope="module")
def default_config():
    return validated(yaml.safe_load((REPO / "config.yaml").read_text()))


def test_integer_n_per_job_gives_consecutive_groups(default_config):
    task = default_config["tasks"]["mlp_regression"]
    groups = n_groups(task, 4)
    assert groups == [sorted(task["n"])[i:i + 4] for i in range(0, len(task["n"]), 4)]
    assert n_groups(task, 1) == [[n] for n in sorted(task["n"])]


@pytest.mark.parametrize("job_seconds", [5, 30, 1000])
def test_auto_groups_cover_the_grid_in_consecutive_runs_sized_by_work(default_config, job_seconds):
    for task in default_config["tasks"].values():
        groups = n_groups(task, "auto", job_seconds)
        ns = sorted(task["n"])
        assert [n for g in groups for n in g] == ns  # each n once, in order: consecutive runs
        total = sum(train_seconds(task, n) for n in ns)
        assert len(groups) <= min(len(ns), math.ceil(total / job_seconds))  # fewer when one n dominates
        assert n_groups(task, "auto", job_seconds) == groups  # deterministic
        largest = max(train_seconds(task, n) for n in ns)
        for g in groups:  # no run above twice the target, unless the costliest single n is larger
            assert sum(train_seconds(task, n) for n in g) <= max(2 * job_seconds, largest) + 1e-9


def test_default_linear_task_is_one_training_job_and_align_splits_where_the_work_is(default_config):
    linear = default_config["tasks"]["linear_regression"]
    assert len(n_groups(linear, "auto", 60)) == 1  # 13 n of ~20 preconditioned steps each
    for task in default_config["tasks"].values():
        metrics = [m for m in default_config["metrics"] if m != "cosine_end_to_end" or task is linear]
        groups = metric_groups(task, default_config["metrics"], "auto", 60)
        assert sorted(m for g in groups for m in g) == sorted(metrics)
        if sum(align_seconds(task, m) for m in metrics) > 2 * 60:  # more than twice the target: split
            assert len(groups) > 1
        for g in groups:  # each group in the config's order, about the target unless a single metric
            assert g == [m for m in default_config["metrics"] if m in g]
            assert sum(align_seconds(task, m) for m in g) <= 2 * 60 or len(g) == 1
    assert len(metric_groups(linear, default_config["metrics"], "auto", 5)) > 1  # a smaller target splits it


def test_metric_groups_leave_out_the_end_to_end_cosine_of_nonlinear_networks(default_config):
    mlp = default_config["tasks"]["mlp_regression"]
    groups = metric_groups(mlp, default_config["metrics"], 1)
    assert [g[0] for g in groups] == [m for m in default_config["metrics"] if m != "cosine_end_to_end"]
    assert metric_groups(mlp, default_config["metrics"], "auto", 1e6) == [
        [m for m in default_config["metrics"] if m != "cosine_end_to_end"]]
    assert part_name(["cca", "svcca"]) == "cca+svcca"


def test_cube_groups_join_chunks_up_to_the_size_limit(default_config):
    task = default_config["tasks"]["linear_regression"]
    chunks = n_groups(task, 2)
    assert cube_groups(chunks, task) == [sorted(task["n"])]  # 0.3 GB: one cube
    small = cube_groups(chunks, task, limit=1)  # every chunk its own cube
    assert small == chunks


def test_job_count_of_the_default_config(default_config):
    rules = [r for task in default_config["tasks"].values() for r in task_jobs_by_rule(default_config, task)]
    tasks = len(default_config["tasks"])
    assert rules.count("task_data") == rules.count("extract") == rules.count("align") == tasks
    assert rules.count("claims") == rules.count("figures") == tasks
    assert rules.count("train") < 20 and len(rules) + 2 < 60  # was 130 jobs with one n per job


def test_per_task_claims_stack_to_all_verdicts(tiny_run, tiny_config):
    from alignpipe.cubes import read_netcdf
    from alignlib.claims.verdicts import all_verdicts, combine_task_results, task_result

    tables = {task: read_netcdf(tiny_run / task / "alignment.nc") for task in tiny_config["tasks"]}
    primary = {t: c["primary_metric"] for t, c in tiny_config["tasks"].items()}
    verdicts, summary = all_verdicts(tables, primary)
    stacked = combine_task_results({t: task_result(t, table, primary[t]) for t, table in tables.items()})
    assert stacked[0].equals(verdicts) and stacked[1].equals(summary)


def test_priorities_follow_the_critical_path(default_config):
    from alignpipe.jobsize import task_priorities

    for task in default_config["tasks"]:
        p = task_priorities(default_config, task)
        assert p["task_data"] > max(p["train"].values())  # else a task's chain starts only when nothing else is ready
        assert min(p["train"].values()) > p["extract"] > p["align"] > max(p["claims"], p["figures"]) > 0
        for part in p["align_part"].values():  # a part waits for extract and holds up align
            assert p["extract"] > part > p["align"]
    linear = task_priorities(default_config, "linear_regression")
    mlp = task_priorities(default_config, "mlp_regression")
    assert linear["extract"] > mlp["extract"]  # the linear task's long align starts before the MLP's short one
