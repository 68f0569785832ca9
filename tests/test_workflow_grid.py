"""A grid that grows without retraining (issue 18 item 4), through the real snakemake: a finished run
extended by one seed, one n and one SNR trains only the new members and keeps the old ones byte for
byte; an OOD change reruns only the OOD steps; a metric change reruns only alignment and after."""
import re
import time

import numpy as np
import pytest
import xarray as xr
import yaml

from conftest import run_snakemake, validated

pytestmark = pytest.mark.workflow

BASE = """
results: results
device: cpu
n_per_job: 2
metrics: [cka_linear, procrustes]
chance: {draws: 0}
tasks:
  lin:
    snr: [1, 10]
    n: [4, 10, 40]
    seeds: 3
    probes: 32
    test_size: 100
    dataset: {kind: gaussian_linear, dim: 6}
    network: {kind: linear, hidden: [8], bias: false, init_scale: 0.001}
    noise: {kind: target_gaussian}
    training: {optimizer: preconditioned_gd, lr: 1.0, max_steps: 20000, tol: 1.0e-7, dtype: float64}
    ood: {kind: scale, factor: 2.0}
"""


def job_counts(text: str) -> dict:
    """{rule: jobs} from the 'Job stats' table Snakemake prints."""
    table = text.split("Job stats:", 1)[1] if "Job stats:" in text else ""
    counts = {}
    for line in table.splitlines()[3:]:
        match = re.match(r"^(\w+)\s+(\d+)\s*$", line)
        if match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
        elif line.strip() == "" and counts:
            break
    return counts


def trained_counts(results) -> dict:
    """{n: members trained (not taken from the store)} from the train jobs' logs."""
    out = {}
    for log in sorted((results / "lin" / "logs").glob("train_n*.log")):
        for n, found, trained in re.findall(r"\[lin n=(\d+)\] (\d+) member\(s\) from the store, (\d+) to train",
                                            log.read_text()):
            out[int(n)] = (int(found), int(trained))
    return out


def members(results, since: float = 0.0) -> xr.Dataset:
    """The model files (written after ``since``: an earlier grid's files stay on disk), stacked along n."""
    paths = [p for p in sorted((results / "lin" / "models").glob("n*.nc")) if p.stat().st_mtime >= since]
    return xr.concat([xr.load_dataset(p) for p in paths], dim="n").sortby("n")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    config = validated(yaml.safe_load(BASE))
    workdir = tmp_path_factory.mktemp("grid")
    run_snakemake(workdir, config)
    return workdir, config


def test_a_grown_grid_trains_only_its_new_members(base):
    workdir, config = base
    results = workdir / "results"
    before = members(results)
    grown = validated(yaml.safe_load(BASE))
    task = grown["tasks"]["lin"]
    task.update(seeds=4, n=[4, 10, 20, 40], snr=[1, 3, 10])
    for log in (results / "lin" / "logs").glob("train_n*.log"):
        log.unlink()
    start = time.time()
    proc = run_snakemake(workdir, grown)
    counts = trained_counts(results)
    # old (n, snr): 3 stored + 1 new seed; the new SNR 3: all 4 seeds; the new n = 20: all 3 x 4 members
    assert counts[4] == counts[10] == counts[40] == (6, 6), counts
    assert counts[20] == (0, 12), counts
    after = members(results, since=start)
    written = [p for p in (results / "lin" / "models").glob("*.nc") if p.stat().st_mtime >= start]
    assert job_counts(proc.stdout + proc.stderr).get("train") == len(written)
    old = after.sel(n=before["n"], snr=before["snr"], seed=before["seed"])
    for name in before.data_vars:
        assert np.array_equal(old[name].values, before[name].values, equal_nan=True), name  # the same bytes
        assert old[name].dtype == before[name].dtype
    # and the grown grid is in the alignment table
    table = xr.load_dataset(results / "lin" / "alignment.nc")
    assert table.sizes["seed"] == 4 and list(table["n"].values) == [4, 10, 20, 40]
    assert list(table["snr"].values) == [1.0, 3.0, 10.0]


def test_an_ood_change_reruns_only_the_ood_steps(base):
    workdir, _ = base
    config = validated(yaml.safe_load(BASE))
    config["tasks"]["lin"].update(seeds=4, n=[4, 10, 20, 40], snr=[1, 3, 10])  # as grown above
    run_snakemake(workdir, config)  # whatever the order of the tests: the grown grid finished
    config["tasks"]["lin"]["ood"]["factor"] = 3.0
    dry = run_snakemake(workdir, config, "-n")
    counts = job_counts(dry.stdout + dry.stderr)
    assert counts, dry.stdout[-2000:]
    assert set(counts) <= {"ood_data", "extract_ood", "align_ood", "ood_summary", "all"}, counts
    assert counts.get("ood_data") == 1


def test_a_metric_change_reruns_only_alignment_and_after(base):
    workdir, _ = base
    config = validated(yaml.safe_load(BASE))
    config["tasks"]["lin"].update(seeds=4, n=[4, 10, 20, 40], snr=[1, 3, 10])
    run_snakemake(workdir, config)
    config["metrics"] = ["cka_linear"]
    dry = run_snakemake(workdir, config, "-n")
    counts = job_counts(dry.stdout + dry.stderr)
    assert "train" not in counts and "extract" not in counts and "task_data" not in counts, counts
    assert counts.get("align") == 1, counts
