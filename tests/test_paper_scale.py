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
    # 40 n in jobs of 4: per task data + 10 train + 10 extract + align + figures; linear adds
    # its theory figure; then summary and all
    assert int(jobs) == 7 * 23 + 1 + 2
    assert not (tmp_path / "run" / "results_paper").exists()
