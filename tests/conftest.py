import copy
import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
CONFIGS = Path(__file__).resolve().parent / "configs"


def _no_slurm_env(workdir: Path) -> dict:
    """The environment with a stub `scontrol` first on PATH.

    Snakemake loads the installed SLURM executor plugin on every start, and the plugin asks
    `scontrol show config` for the cluster's MinJobAge; on a machine where SLURM is installed
    but not running (after the cluster tests stopped it) that waits 9 s for a timeout. Local
    runs never talk to SLURM, so the stub answers "not here" at once.
    """
    stub = workdir / ".no_slurm"
    stub.mkdir(parents=True, exist_ok=True)
    script = stub / "scontrol"
    script.write_text("#!/bin/sh\necho 'no SLURM controller for local test runs' >&2\nexit 1\n")
    script.chmod(0o755)
    return dict(os.environ, PATH=f"{stub}{os.pathsep}{os.environ.get('PATH', '')}")


def run_snakemake(workdir: Path, config: dict, *args, check=True, timeout=600, slurm=False):
    """Run the real snakemake CLI on ``config`` (written to workdir) with results in workdir.

    ``slurm``: leave the real SLURM tools on PATH (the cluster tests); otherwise a stub
    `scontrol` saves the 9 s the SLURM plugin waits for an absent controller.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config = dict(config, results=str(workdir / "results"))
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(REPO), "--configfile", str(path), "--cores", "2", *args]
    env = None if slurm else _no_slurm_env(workdir)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def validated(config: dict) -> dict:
    """The config with the schema's defaults filled in, as the workflow sees it."""
    from alignpipe.config import with_defaults

    return with_defaults(copy.deepcopy(config), REPO / "schemas" / "config.schema.yaml")


@pytest.fixture(scope="session")
def tiny_config():
    return validated(yaml.safe_load((CONFIGS / "tiny.yaml").read_text()))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_config):
    """The tiny workflow run once for the whole test session (read only: tests must not change it).

    Under pytest-xdist every worker has its own session; the first to ask runs it in the folder the
    workers share, under a lock, and the others wait for it and read the same results.
    """
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    workdir = shared / "tiny_run_shared"
    with open(shared / "tiny_run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (workdir / "finished").exists():
            shutil.rmtree(workdir, ignore_errors=True)
            run_snakemake(workdir, tiny_config)
            (workdir / "finished").touch()
    return workdir / "results"


@pytest.fixture(scope="module")
def single_torch_thread():
    """Tiny problems: one intra-op thread avoids OpenMP barrier stalls when other jobs share the cores."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
