"""The paper-scale config builds its DAG (dry run) and prints members, jobs and disk."""
import re

import yaml

from conftest import REPO, run_snakemake
from test_image_files import make_cifar, make_mnist


def paper_scale_with_fake_images(tmp_path):
    """configs/paper_scale.yaml with its image folders pointed at tiny generated files."""
    (tmp_path / "mnist").mkdir()
    (tmp_path / "cifar").mkdir()
    make_mnist(tmp_path / "mnist")
    make_cifar(tmp_path / "cifar")
    config = yaml.safe_load((REPO / "configs" / "paper_scale.yaml").read_text())
    config["tasks"]["mnist_mlp"]["dataset"]["path"] = str(tmp_path / "mnist")
    config["tasks"]["cifar10_cnn"]["dataset"]["path"] = str(tmp_path / "cifar")
    return config


def test_paper_scale_dry_run(tmp_path):
    config = paper_scale_with_fake_images(tmp_path)
    for task in config["tasks"].values():
        assert len(task["snr"]) == 10 and len(task["n"]) == 40 and task["seeds"] == 20
    proc = run_snakemake(tmp_path / "run", config, "-n", "--quiet", "rules")
    out = proc.stdout + proc.stderr
    summary = re.search(r"(\d+) task\(s\), (\d+) members, (\d+) jobs, activation cubes <= ([\d.]+) GB", out)
    assert summary, out[-3000:]
    tasks, members, jobs, _ = summary.groups()
    assert int(tasks) == 7 and int(members) == 7 * 10 * 40 * 20
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", out[out.index("Job stats:"):], re.MULTILINE))
    assert int(jobs) == int(stats["total"])  # the announced count is the DAG's
    assert int(stats["train"]) == 7 * 10  # 40 n in jobs of 4 (n_per_job: 4)
    # one job per task for data, align, claims, figures; extract per cube (<= 2 GB each)
    for rule in ("task_data", "align", "claims", "figures"):
        assert int(stats[rule]) == 7, rule
    assert 7 <= int(stats["extract"]) <= 70 and int(stats["theory_residuals"]) == 1
    assert not (tmp_path / "run" / "results_paper").exists()
