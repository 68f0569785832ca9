"""configs/paper_scale.yaml (issue 20 item 7): the default design on denser grids with more members.

It must stay in step with config.yaml (as the derived configs in test_config.py do): every key of every
task but the grids, the members and the refinement's point count equals the default's, every top-level
numeric setting too; its SNRs stay inside each task's learnable range (the default's); and its DAG
builds (dry run) with the members the grids promise.
"""
import re

import yaml

from conftest import REPO, run_snakemake

CHANGED = {"snr", "n", "seeds", "refine"}  # per task, what paper scale may change
TOP_LEVEL_OWN = {"results", "device", "job_seconds", "activation_dtype", "data_draws"}


def configs():
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    paper = yaml.safe_load((REPO / "configs" / "paper_scale.yaml").read_text())
    return default, paper


def test_paper_scale_keeps_the_default_design():
    default, paper = configs()
    assert list(paper["tasks"]) == list(default["tasks"])  # the deep task included, no task dropped
    for key in (set(paper) | set(default)) - TOP_LEVEL_OWN - {"tasks"}:
        assert paper.get(key) == default.get(key), f"paper_scale.yaml: {key} differs from config.yaml"
    assert paper["data_draws"] >= 3
    for name, task in paper["tasks"].items():
        base = default["tasks"][name]
        for key in (set(task) | set(base)) - CHANGED:
            assert task.get(key) == base.get(key), f"paper_scale.yaml: tasks.{name}.{key} differs"
        assert (task.get("refine") is None) == (base.get("refine") is None), name
        if base.get("refine"):
            assert task["refine"]["span"] == base["refine"]["span"] and task["refine"]["points"] >= base["refine"]["points"]
        # learnable range: never below or above the default's SNRs, and denser
        assert min(base["snr"]) <= min(task["snr"]) and max(task["snr"]) <= max(base["snr"]), name
        assert len(task["snr"]) > len(base["snr"]) and len(task["n"]) > len(base["n"]), name
        assert task["seeds"] > base["seeds"], name
        assert task["n"] == sorted(set(task["n"])), name


def test_paper_scale_dry_run(tmp_path):
    """The DAG builds on a machine without a GPU (a dry run starts no job) and announces its members."""
    _, config = configs()
    proc = run_snakemake(tmp_path / "run", config, "-n", "--quiet", "rules", timeout=900)
    out = proc.stdout + proc.stderr
    summary = re.search(r"(\d+) task\(s\), (\d+) members, (\d+) jobs", out)
    assert summary, out[-3000:]
    tasks, members, jobs = map(int, summary.groups())
    expected = sum(len(t["snr"]) * len(t["n"]) * t["seeds"] * config["data_draws"] for t in config["tasks"].values())
    assert tasks == 6 and members == expected
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", out[out.index("Job stats:"):], re.MULTILINE))
    assert int(stats["combine_draws"]) == 6 and int(stats["task_data"]) == 6 * 3
    assert int(stats["claims"]) == 6
    assert not (tmp_path / "run" / "results").exists()
