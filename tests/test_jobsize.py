"""alignpipe.jobsize: job sizes and priorities, and per-task claims that stack to all verdicts."""
import math

import pytest
import yaml

from alignpipe.config import task_jobs_by_rule
from alignpipe.jobsize import (
    align_seconds,
    claims_runtime_minutes,
    claims_seconds,
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


# --------------------------------------------------------------------------- cores (issue 20 item 4)

def test_two_cores_and_a_cluster_keep_the_job_seconds_layout(default_config):
    """On up to 2 cores (and on a cluster: cores None) the target is job_seconds and no job gets threads:
    the layout the constants were tuned on, job for job."""
    from alignpipe.jobsize import run_target, task_priorities, train_threads

    for cores in (None, 1, 2):
        target = run_target(default_config, cores)
        assert target == default_config["job_seconds"]
        for name, task in default_config["tasks"].items():
            assert n_groups(task, "auto", target, cores) == n_groups(task, "auto", default_config["job_seconds"])
            assert all(train_threads(task, c, cores, target) == 1 for c in n_groups(task, "auto", target, cores))
            assert task_priorities(default_config, name, cores) == task_priorities(default_config, name)


def test_sixteen_cores_cut_training_finer_and_split_the_linear_align(default_config):
    from alignpipe.jobsize import MAX_JOB_THREADS, THREAD_BOUND, align_threads, run_target, train_threads

    target = run_target(default_config, 16)
    assert 10 <= target < default_config["job_seconds"]
    for task in default_config["tasks"].values():
        chunks = n_groups(task, "auto", target, 16)
        assert [n for c in chunks for n in c] == sorted(task["n"])
        assert len(chunks) >= len(n_groups(task, "auto", 60))
        for chunk in chunks:
            one = sum(train_seconds(task, n) for n in chunk)
            assert one <= target or len(chunk) == 1  # only an n above the target is a job of its own
            threads = train_threads(task, chunk, 16, target)
            assert 1 <= threads <= MAX_JOB_THREADS
            assert (threads > 1) == (one > THREAD_BOUND * target)  # threads only where one would stretch the path
            if threads > 1:
                assert sum(train_seconds(task, n, threads) for n in chunk) < one
    linear = default_config["tasks"]["linear_regression"]
    groups = metric_groups(linear, default_config["metrics"], "auto", target)
    assert len(groups) > 1  # split into align_part jobs
    assert all(align_threads(linear, g, 16, target) == 1 for g in groups)


def test_cuda_trains_a_task_in_one_job(default_config):
    from alignpipe.jobsize import run_target

    cuda = dict(default_config, device="cuda")
    for cores in (2, 16, None):
        target = run_target(cuda, cores)
        for task in default_config["tasks"].values():
            assert n_groups(task, "auto", target, cores) == [sorted(task["n"])]
            assert len(metric_groups(task, default_config["metrics"], "auto", target)) == 1
            assert n_groups(task, 3, target, cores) == n_groups(task, 3)  # a fixed n_per_job stays


def test_thread_speedup_is_amdahls_law():
    from alignpipe.jobsize import THREAD_SERIAL_FRACTION, thread_speedup

    assert thread_speedup(1) == 1.0 and thread_speedup(0) == 1.0
    assert thread_speedup(4) == pytest.approx(4 / (1 + 3 * THREAD_SERIAL_FRACTION))
    assert all(thread_speedup(k + 1) > thread_speedup(k) for k in range(1, 16))
    task = {"snr": [1], "seeds": 4, "n": [100], "dataset": {"kind": "teacher_mlp", "dim": 10, "target": "regression"},
            "network": {"kind": "mlp", "hidden": [32]}, "training": {"optimizer": "adam", "max_steps": 100}}
    assert train_seconds(task, 100, 4) < train_seconds(task, 100)


def test_critical_path_is_the_longest_chain():
    from alignpipe.jobsize import PlannedJob, critical_path

    jobs = [PlannedJob("a", "r", "t", 2), PlannedJob("b", "r", "t", 5, after=("a",)),
            PlannedJob("c", "r", "t", 1, after=("a",)), PlannedJob("d", "r", "t", 3, after=("b", "c", "gone")),
            PlannedJob("e", "r", "t", 9)]
    total, path = critical_path(jobs)
    assert total == 10 and [j.name for j in path] == ["a", "b", "d"]
    assert critical_path([]) == (0.0, [])


def test_plan_of_the_default_run_on_sixteen_cores(default_config):
    """Issue 20 item 4: sized for 16 cores, the default run's critical path (expected seconds) is under
    80 s; on 2 cores it is what job_seconds gives."""
    from alignpipe.jobsize import critical_path, plan

    total16, path = critical_path(plan(default_config, 16))
    assert total16 < 80, [(j.name, j.seconds) for j in path]
    assert [j.rule for j in path][:2] == ["task_data", "train"] and path[-1].rule == "summary"
    total2, _ = critical_path(plan(default_config, 2))
    assert total2 > 120
    jobs = plan(default_config, 2)
    names = [j.name for j in jobs]
    assert len(names) == len(set(names))
    for index, job in enumerate(jobs):  # every job after those it waits for
        assert all(names.index(other) < index for other in job.after), job.name


@pytest.mark.workflow
def test_plan_matches_the_dry_run_on_sixteen_cores(tmp_path, default_config):
    """The plan's jobs of the rules the refinement does not hold back are the DAG's (snakemake -n
    --cores 16), with the same threads."""
    import collections
    import re

    from alignpipe.jobsize import plan
    from conftest import run_snakemake

    proc = run_snakemake(tmp_path, yaml.safe_load((REPO / "config.yaml").read_text()), "-n", "--cores", "16")
    out = proc.stdout + proc.stderr
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", out[out.index("Job stats:"):], re.MULTILINE))
    jobs = plan(default_config, 16, refined={task: [] for task in default_config["tasks"]})
    counts = collections.Counter(j.rule for j in jobs)
    for rule in ("task_data", "ood_data", "train", "refine", "align", "align_ood", "claims", "figures",
                 "ood_summary", "theory_residuals", "summary"):
        assert counts[rule] == int(stats[rule]), rule
    threads = {f"train {m.group(1)} n{m.group(2)}": int(m.group(3)) for m in re.finditer(
        r"output: \S+/(\w+)/models/n([\d-]+)\.nc\n(?:.*\n){0,8}?\s+threads: (\d+)", out)}
    planned = {j.name: j.threads for j in jobs if j.rule == "train" and j.threads > 1}
    assert threads and threads == planned


def test_threads_change_no_number():
    """A job's threads (jobsize.job_threads) decide its speed only: members trained with 1 and with 3
    intra-op threads are bit-identical (batches large enough for torch to split them: 30 members x
    1300 samples x 8 units, digits' largest n)."""
    import numpy as np
    import torch

    from alignlib.ensembles.networks import Architecture, init_member, stack_members
    from alignlib.ensembles.training import TrainSettings, train

    arch = Architecture(widths=(64, 8, 10), activation="tanh", bias=True)
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.standard_normal((1300, 64)), dtype=torch.float32)
    y = torch.as_tensor(rng.integers(0, 10, (30, 1300)))
    members = [init_member(arch, 1.0, rng) for _ in range(30)]
    settings = TrainSettings(optimizer="adam", lr=0.01, max_steps=25, tol=0.0, loss="cross_entropy")
    old = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 3):
            torch.set_num_threads(threads)
            results.append(train(arch, stack_members(members, torch.float32, "cpu"), x, y, settings))
    finally:
        torch.set_num_threads(old)
    for a, b in zip(results[0].params, results[1].params):
        assert torch.equal(a, b)


def test_critical_path_of_a_job_table(tmp_path):
    """benchmarks/bench_pipeline.py --critical-path: a job waits for the producers of its inputs, and a
    refined training job (input: data.nc only) for its task's refine checkpoint."""
    import base64
    import json
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_pipeline import dependency_graph, jobs_of

    from alignpipe.jobsize import critical_path

    results, meta = tmp_path / "results", tmp_path / ".snakemake" / "metadata"
    meta.mkdir(parents=True)
    (results / "t" / "logs").mkdir(parents=True)

    def record(rule, output, inputs, log, start, end):
        path = str(results / output)
        (meta / base64.b64encode(path.encode()).decode()).write_text(json.dumps(
            {"rule": rule, "input": [str(results / i) for i in inputs], "log": [str(results / "t" / "logs" / log)],
             "job_hash": hash(output), "starttime": start, "endtime": end}))

    record("task_data", "t/data/data.nc", [], "data.log", 0, 2)
    record("train", "t/models/n10.nc", ["t/data/data.nc"], "train_n10.log", 2, 12)
    record("train", "t/models/n20.nc", ["t/data/data.nc"], "train_n20.log", 2, 5)
    record("refine", "t/refine.json", ["t/data/data.nc", "t/models/n10.nc", "t/models/n20.nc"], "refine.log", 12, 13)
    record("train", "t/models/n15.nc", ["t/data/data.nc"], "train_n15.log", 13, 20)  # refined: after refine
    record("extract", "t/activations/n10-15-20.nc", ["t/models/n10.nc", "t/models/n15.nc", "t/models/n20.nc"],
           "extract.log", 20, 21)
    record("align", "t/alignment.nc", ["t/activations/n10-15-20.nc", "t/refine.json"], "align.log", 21, 30)
    record("figures", "figures/t_x.png", ["t/alignment.nc"], "figures.log", 30, 31)
    graph = dependency_graph(jobs_of(tmp_path))
    total, path = critical_path(graph)
    assert [j.rule for j in path] == ["task_data", "train", "refine", "train", "extract", "align", "figures"]
    assert total == pytest.approx(2 + 10 + 1 + 7 + 1 + 9 + 1)
    refined = next(j for j in graph if j.name.startswith("train train_n15"))
    assert any(name.startswith("refine") for name in refined.after)


def test_claims_seconds_grow_with_members_squared_grid_and_panels(default_config):
    task, metrics = default_config["tasks"]["mlp_regression"], default_config["metrics"]
    base = claims_seconds(task, metrics, 10) - claims_seconds(task, metrics, 0)  # the resampling part
    assert claims_seconds(task, metrics, 20) - claims_seconds(task, metrics, 0) == pytest.approx(4 * base)
    assert claims_seconds(task, metrics, 10, 2 * len(task["n"])) - claims_seconds(task, metrics, 0) == pytest.approx(2 * base)
    applied = [m for m in metrics if m != "cosine_end_to_end"]  # the end-to-end cosine is for linear networks only
    assert claims_seconds(task, applied[:1], 10) - claims_seconds(task, metrics, 0) == pytest.approx(base / len(applied))


def test_claims_runtime_covers_the_measured_paper_scale_job():
    """The diabetes paper grid's claims job took 765 s (3 draws x 32 members, 22 n, 9 SNRs; 2-core VM):
    the fixed 10-minute request it had would have let a cluster kill it; the request now has room."""
    config = validated(yaml.safe_load((REPO / "configs" / "paper_scale.yaml").read_text()))
    assert claims_runtime_minutes(config, "diabetes_regression") * 60 >= 2 * 765
    default = validated(yaml.safe_load((REPO / "config.yaml").read_text()))
    assert all(claims_runtime_minutes(default, t) == 10 for t in default["tasks"])  # small runs: the floor
