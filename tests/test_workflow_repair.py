"""Repairing one corrupt file through the real snakemake (issue 18 item 6, hole 1).

Deleting a corrupt intermediate file does not rebuild it: Snakemake 9 does not regenerate a
missing intermediate while the final outputs exist ("Nothing to be done"), and
``--forcerun train`` retrains every job of every task. The failing job's message names the one
command that rebuilds exactly that file, ``snakemake --cores all --forcerun <file>``: it reruns
the job that writes the file and the jobs that depend on it, nothing else.
"""
import re
import shlex
import subprocess
import sys

import pytest
import xarray as xr

from alignpipe.cubes import read_netcdf
from conftest import REPO, _no_slurm_env, run_snakemake

TASK = "linear_regression"  # the tiny config's task whose model file gets corrupted
OTHER = "digits_tiny"


def job_counts(console: str) -> dict:
    """Snakemake's 'Job stats' table of a run: {rule: number of jobs}."""
    table = console[console.index("Job stats:"):].split("\n\n")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


@pytest.mark.workflow
def test_the_command_in_the_corrupt_file_message_rebuilds_exactly_that_file(tmp_path, tiny_config):
    results = tmp_path / "results"
    run_snakemake(tmp_path, tiny_config)
    model = sorted((results / TASK / "models").glob("n*.nc"))[0]
    good = read_netcdf(model)
    untouched = [p for p in sorted(results.glob("*/models/*.nc")) if p != model]
    untouched += [results / OTHER / "alignment.nc"]
    stamps = {p: p.stat().st_mtime_ns for p in untouched}
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])  # a copy cut short

    failed = run_snakemake(tmp_path, tiny_config, check=False)
    console = failed.stdout + failed.stderr
    assert failed.returncode != 0
    command = f"snakemake --cores all --forcerun {model}"
    assert f"cannot read {model}: corrupt or truncated; rebuild it and what depends on it with `{command}`" in console
    assert "Traceback" not in console  # the traceback stays in the job's log

    # the command as printed, plus this run's options (its --configfile; the test's two cores)
    printed = re.search(r"`(snakemake --cores all --forcerun [^`]+)`", console).group(1)
    assert printed == command
    cmd = [sys.executable, "-m", *shlex.split(printed), "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(REPO), "--configfile", str(tmp_path / "config.yaml"), "--cores", "2"]
    repair = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO,
                            env=_no_slurm_env(tmp_path))
    console = repair.stdout + repair.stderr
    assert repair.returncode == 0, console[-4000:]
    counts = job_counts(console)
    assert counts["train"] == 1, counts
    assert "task_data" not in counts, counts  # upstream of the file: untouched
    xr.testing.assert_identical(read_netcdf(model), good)  # rebuilt, valid, and the same members
    assert {p: p.stat().st_mtime_ns for p in untouched} == stamps  # nothing else rebuilt

    again = run_snakemake(tmp_path, tiny_config, "--dry-run")
    assert "Nothing to be done" in again.stdout + again.stderr
