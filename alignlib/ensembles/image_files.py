"""Readers for the standard MNIST (IDX) and CIFAR-10 (python pickle) files on local disk.

Nothing is downloaded: the user points the config at a folder holding the usual files.
Every reader raises FileNotFoundError / ValueError naming the expected file.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_TEST = "test_batch"
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _find(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / (name + ".gz")):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"expected MNIST file {folder / name} (or {name}.gz) is missing")


def read_idx(path) -> np.ndarray:
    """An IDX file (gzipped or not) as an array of its declared shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except OSError as error:
        raise ValueError(f"{path}: cannot be read as an IDX file ({error})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: IDX header declares shape {shape} ({expected} bytes) but the file has {len(raw)}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def load_mnist(folder) -> dict:
    """{'train_images': (N, 28, 28) uint8, 'train_labels': (N,), 'test_images', 'test_labels'}."""
    folder = Path(folder)
    out = {key: read_idx(_find(folder, name)) for key, name in MNIST_FILES.items()}
    for split in ("train", "test"):
        images, labels = out[f"{split}_images"], out[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{folder}: MNIST {split} images {images.shape} and labels {labels.shape} do not match")
    return out


def _cifar_folder(folder: Path) -> Path:
    nested = folder / "cifar-10-batches-py"
    return nested if nested.is_dir() else folder


def _read_cifar_batch(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"expected CIFAR-10 file {path} is missing")
    try:
        with open(path, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as error:  # any unpickling/format problem is a malformed file
        raise ValueError(f"{path}: not a CIFAR-10 python batch ({type(error).__name__}: {error})") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(f"{path}: CIFAR-10 batch has data {data.shape} and {len(labels)} labels; expected (N, 3072)")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(folder) -> dict:
    """{'train_images': (N, 3, 32, 32) uint8, 'train_labels', 'test_images', 'test_labels'}."""
    folder = _cifar_folder(Path(folder))
    train = [_read_cifar_batch(folder / name) for name in CIFAR_TRAIN]
    test_images, test_labels = _read_cifar_batch(folder / CIFAR_TEST)
    return {
        "train_images": np.concatenate([t[0] for t in train]),
        "train_labels": np.concatenate([t[1] for t in train]),
        "test_images": test_images,
        "test_labels": test_labels,
    }


LOADERS = {"mnist": load_mnist, "cifar10": load_cifar10}


def check_image_files(kind: str, folder) -> dict:
    """Load once to fail early (before any job) on a missing or malformed file.

    Returns the number of images in each split, {'train': N, 'test': M}, as the files declare them.
    """
    if folder is None:
        raise FileNotFoundError(f"data set {kind!r} needs dataset.path, the folder holding its files")
    files = LOADERS[kind](folder)
    return {"train": len(files["train_images"]), "test": len(files["test_images"])}
