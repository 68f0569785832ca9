"""The workflow on a real single-node SLURM cluster, through profiles/slurm.

tests/cluster/start-slurm.sh installs (Debian packages) and starts slurmctld, slurmd and munge;
it needs root and apt. The tiny config then runs with every job submitted by
snakemake-executor-plugin-slurm, and its outputs must equal a local run's. A second run with
device: cuda checks that the training job's sbatch asks for a GPU (the CI node has one fake GPU,
so the request is accepted) and is then interrupted.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import threading

import pandas as pd
import pytest
import xarray as xr
import yaml
from conftest import REPO, run_snakemake

from alignpipe.cubes import read_netcdf

pytestmark = pytest.mark.cluster

CLUSTER = REPO / "tests" / "cluster"
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+)")
WORKFLOW_RULES = {"task_data", "train", "extract", "align", "figures", "summary"}  # at least these


def _skip_reason():
    if not sys.platform.startswith("linux"):
        return "the SLURM test cluster needs Linux"
    if os.geteuid() != 0:
        return "the SLURM test cluster needs root (it installs packages and starts daemons)"
    have_slurm = all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "munged", "sbatch"))
    if not have_slurm and not shutil.which("apt-get"):
        return "SLURM is not installed and apt-get is unavailable to install it"
    return None


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running single-node cluster; stopped at the end if this session started it."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    was_up = shutil.which("sinfo") and subprocess.run(
        ["sinfo", "-h"], capture_output=True, timeout=30, check=False).returncode == 0
    proc = subprocess.run(["bash", str(CLUSTER / "start-slurm.sh")], capture_output=True, text=True,
                          timeout=600, check=False)
    if proc.returncode != 0:
        pytest.fail(f"start-slurm.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    yield
    if not was_up:
        subprocess.run(["bash", str(CLUSTER / "start-slurm.sh"), "stop"], capture_output=True, timeout=120, check=False)


def _deep_merge(base, override):
    out = dict(base)
    for key, value in override.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else value
    return out


@pytest.fixture(scope="session")
def ci_profile(tmp_path_factory):
    """profiles/slurm with the CI cluster's overrides (tests/cluster/profile) merged over it."""
    profile = _deep_merge(yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text()),
                          yaml.safe_load((CLUSTER / "profile" / "config.yaml").read_text()))
    folder = tmp_path_factory.mktemp("slurm_profile")
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


def _run_on_slurm(workdir, config, profile, *args, check=True):
    """run_snakemake with the SLURM profile; returns (process, {slurm jobid: snakemake jobid})."""
    proc = run_snakemake(workdir, config, "--workflow-profile", str(profile),
                         "--slurm-logdir", str(workdir / "slurm_logs"), "--slurm-keep-successful-logs",
                         *args, check=check, timeout=900, slurm=True)
    log = proc.stdout + proc.stderr
    return proc, {slurm: job for job, slurm in SUBMITTED.findall(log)}


def _show_job(slurm_jobid):
    """scontrol show job as a dict (finished jobs stay visible: MinJobAge=600)."""
    out = subprocess.run(["scontrol", "-o", "show", "job", slurm_jobid], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    return dict(re.findall(r"(\w[\w/:]*)=(\S*)", out))


@pytest.fixture(scope="session")
def slurm_run(slurm_cluster, ci_profile, tiny_config, tmp_path_factory):
    """The tiny workflow run once through the SLURM profile."""
    workdir = tmp_path_factory.mktemp("slurm_run")
    proc, jobs = _run_on_slurm(workdir, tiny_config, ci_profile)
    return workdir, proc.stdout + proc.stderr, jobs


def test_every_job_ran_as_a_slurm_job(slurm_run):
    workdir, log, jobs = slurm_run
    # the job-stats table: "rule   count" lines between "Job stats:" and "total"
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", log.split("Job stats:")[1].split("total")[0], re.MULTILINE))
    expected = {rule: int(count) for rule, count in stats.items() if rule != "all"}
    assert set(expected) >= WORKFLOW_RULES
    ran = {}
    for slurm_jobid in jobs:
        info = _show_job(slurm_jobid)
        assert info["JobState"] == "COMPLETED", info
        rule = re.match(r"rule_([a-z_]+?)(_wildcards_.*)?$", info["Comment"]).group(1)
        ran[rule] = ran.get(rule, 0) + 1
        assert list((workdir / "slurm_logs").rglob(f"{slurm_jobid}.log")), f"no SLURM log of job {slurm_jobid}"
    assert ran == expected, f"SLURM jobs per rule {ran}, workflow jobs per rule {expected}"
    assert len(jobs) == sum(expected.values())


def test_cpu_config_requests_no_gpu(slurm_run):
    _, _, jobs = slurm_run
    for slurm_jobid in jobs:
        info = _show_job(slurm_jobid)
        assert "gpu" not in (info.get("TresPerJob", "") + info.get("TresPerNode", "")
                             + info.get("CpusPerTres", "") + info.get("TRES", "")), info


def test_outputs_equal_a_local_run(slurm_run, tiny_run):
    results = slurm_run[0] / "results"
    local = sorted(p.relative_to(tiny_run) for p in tiny_run.rglob("*") if p.suffix in (".nc", ".csv", ".png"))
    on_slurm = sorted(p.relative_to(results) for p in results.rglob("*") if p.suffix in (".nc", ".csv", ".png"))
    assert on_slurm == local
    for path in local:
        if path.suffix == ".nc":
            xr.testing.assert_identical(read_netcdf(tiny_run / path), read_netcdf(results / path))
        elif path.suffix == ".csv":
            pd.testing.assert_frame_equal(pd.read_csv(tiny_run / path), pd.read_csv(results / path))


def test_cuda_config_requests_a_gpu_for_training(slurm_cluster, ci_profile, tiny_config, tiny_run, tmp_path):
    """device: cuda -> the train job's sbatch has --gpus=1 --cpus-per-gpu=N, as slurmctld records it.

    Snakemake is interrupted (SIGINT: it scancels its jobs) as soon as the job is submitted: the
    request is what is checked, and on the CI node the job could only fail (no CUDA).
    """
    results = tmp_path / "results" / "linear_regression"
    (results / "data").mkdir(parents=True)
    shutil.copy(tiny_run / "linear_regression" / "data" / "data.nc", results / "data")  # only train to run
    config = dict(tiny_config, device="cuda", results=str(tmp_path / "results"))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    # its own --directory: the interrupted run's .snakemake state stays in tmp_path
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
           str(tmp_path), "--configfile", str(tmp_path / "config.yaml"), "--cores", "2",
           "--workflow-profile", str(ci_profile), "--slurm-logdir", str(tmp_path / "slurm_logs"),
           str(results / "models" / "n4-7.nc")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    watchdog = threading.Timer(300, proc.kill)
    watchdog.start()
    log, slurm_jobid = [], None
    try:
        for line in proc.stdout:
            log.append(line)
            submitted = SUBMITTED.search(line)
            if submitted:
                slurm_jobid = submitted.group(2)
                info = _show_job(slurm_jobid)
                proc.send_signal(signal.SIGINT)
                break
        log.append(proc.stdout.read())
        proc.wait(120)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
    assert slurm_jobid, "no job submitted:\n" + "".join(log)[-4000:]
    assert info["Comment"].startswith("rule_train"), info
    assert info["TresPerJob"] == "gres:gpu:1", info
    cpus_per_gpu = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())[
        "set-resources"]["train"]["cpus_per_gpu"]
    assert info["CpusPerTres"] == f"gres:gpu:{cpus_per_gpu}", info
    assert _show_job(slurm_jobid)["JobState"] in ("CANCELLED", "FAILED", "COMPLETED")  # nothing left behind


def test_skips_with_a_reason_without_root_or_apt(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "needs root" in _skip_reason()
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    assert "apt-get is unavailable" in _skip_reason()


def test_real_cluster_profile_keeps_ci_settings_out():
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert {"runtime", "mem_mb", "slurm_partition"} <= set(profile["default-resources"])
    assert isinstance(profile["set-resources"]["train"]["cpus_per_gpu"], int)
    ci_only = set(yaml.safe_load((CLUSTER / "profile" / "config.yaml").read_text())) - {"default-resources"}
    assert "slurm-status-command" in ci_only and not ci_only & set(profile) - {"jobs", "latency-wait"}
