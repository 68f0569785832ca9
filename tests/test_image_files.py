"""MNIST (IDX) and CIFAR-10 (pickle) readers on tiny files written in exactly those formats."""
import gzip
import pickle
import struct

import numpy as np
import pytest

from alignlib.ensembles.data import make_task_data
from alignlib.ensembles.image_files import MNIST_FILES, load_cifar10, load_mnist, read_idx
from conftest import run_snakemake, validated


def write_idx(path, array, compress=False):
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    opener = gzip.open if compress else open
    with opener(path, "wb") as handle:
        handle.write(header + array.tobytes())


def make_mnist(folder, n_train=60, n_test=40, compress=False):
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28)), "train_labels": rng.integers(0, 10, n_train),
        "test_images": rng.integers(0, 256, (n_test, 28, 28)), "test_labels": rng.integers(0, 10, n_test),
    }
    for key, name in MNIST_FILES.items():
        write_idx(folder / (name + (".gz" if compress else "")), arrays[key], compress)
    return arrays


def make_cifar(folder, per_batch=12):
    rng = np.random.default_rng(1)
    sub = folder / "cifar-10-batches-py"
    sub.mkdir()
    out = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = list(rng.integers(0, 10, per_batch))
        with open(sub / name, "wb") as handle:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, handle)
        out[name] = (data, labels)
    return out


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_round_trip(tmp_path, compress):
    arrays = make_mnist(tmp_path, compress=compress)
    loaded = load_mnist(tmp_path)
    for key in arrays:
        np.testing.assert_array_equal(loaded[key], arrays[key])


def test_cifar_round_trip(tmp_path):
    batches = make_cifar(tmp_path)
    loaded = load_cifar10(tmp_path)
    assert loaded["train_images"].shape == (60, 3, 32, 32)
    np.testing.assert_array_equal(loaded["train_images"][:12].reshape(12, -1), batches["data_batch_1"][0])
    np.testing.assert_array_equal(loaded["test_labels"], batches["test_batch"][1])


def test_idx_errors_name_the_file(tmp_path):
    bad = tmp_path / "x.idx"
    bad.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05abc")  # declares 5 bytes, has 3
    with pytest.raises(ValueError, match="x.idx: IDX header declares shape"):
        read_idx(bad)
    bad.write_bytes(b"PK\x03\x04")
    with pytest.raises(ValueError, match="bad magic number"):
        read_idx(bad)
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        make_mnist(tmp_path)
        (tmp_path / "t10k-labels-idx1-ubyte").unlink()
        load_mnist(tmp_path)


def test_cifar_malformed_batch(tmp_path):
    make_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="data_batch_3: not a CIFAR-10 python batch"):
        load_cifar10(tmp_path)


def test_mnist_task_data_through_the_real_loader(tmp_path):
    make_mnist(tmp_path)
    cfg = validated({"tasks": {"m": {"snr": [1], "n": [10, 50], "seeds": 2, "probes": 10, "test_size": 20,
                                     "dataset": {"kind": "mnist", "path": str(tmp_path)},
                                     "noise": {"kind": "label_flip"},
                                     "network": {"kind": "cnn", "channels": [2], "hidden": [4]}}}})
    data = make_task_data("m", cfg["tasks"]["m"])
    assert data.sizes == {"sample": 60, "feature": 784, "probe": 10, "test_sample": 20}
    assert list(data.attrs["image_shape"]) == [1, 28, 28] and data.attrs["classes"] == 10


def test_missing_mnist_file_fails_before_any_job(tmp_path, tiny_config):
    folder = tmp_path / "mnist"
    folder.mkdir()
    make_mnist(folder)
    (folder / "train-images-idx3-ubyte").unlink()
    config = {"tasks": {"mnist_mlp": {"snr": [1], "n": [10], "seeds": 2, "probes": 10, "test_size": 20,
                                      "dataset": {"kind": "mnist", "path": str(folder)},
                                      "noise": {"kind": "label_flip"}, "network": {"kind": "mlp", "hidden": [4]}}}}
    proc = run_snakemake(tmp_path / "run", config, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "invalid config key 'tasks.mnist_mlp.dataset.path'" in out
    assert "train-images-idx3-ubyte" in out
    assert not (tmp_path / "run" / "results").exists()
