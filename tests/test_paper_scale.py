"""The paper-scale config builds its DAG (dry run) and prints members, jobs and disk."""
import re

import yaml

import pickle

import numpy as np

from alignlib.ensembles.image_files import MNIST_FILES
from conftest import REPO, run_snakemake
from test_image_files import write_idx


def full_size_blank_images(tmp_path):
    """MNIST (gzipped IDX) and CIFAR-10 (pickled batches) files of the real sizes, all pixels 0.

    The pipeline checks max(n) + probes + test_size against the image counts before any job,
    so the fakes need the real counts (60000 + 10000 MNIST, 50000 + 10000 CIFAR-10 images);
    blank pixels keep the gzipped MNIST files small.
    """
    mnist, cifar = tmp_path / "mnist", tmp_path / "cifar" / "cifar-10-batches-py"
    mnist.mkdir()
    cifar.mkdir(parents=True)
    counts = {"train_images": 60000, "train_labels": 60000, "test_images": 10000, "test_labels": 10000}
    for key, name in MNIST_FILES.items():
        shape = (counts[key], 28, 28) if key.endswith("images") else (counts[key],)
        write_idx(mnist / (name + ".gz"), np.zeros(shape, np.uint8), compress=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(cifar / name, "wb") as handle:
            pickle.dump({b"data": np.zeros((10000, 3072), np.uint8), b"labels": [0] * 10000,
                         b"batch_label": name.encode()}, handle)


def paper_scale_with_fake_images(tmp_path):
    """configs/paper_scale.yaml with its image folders pointed at generated files of the real sizes."""
    full_size_blank_images(tmp_path)
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
