"""Task data: the shared training-input pool, probe set, clean test set and teacher.

Training inputs are nested: the set for sample size n is the first n rows of one
pool drawn once per task, so every member at (snr, n) sees the same X and growing n
only adds samples. Noise is not stored here; it is drawn per member (alignlib.noise).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import __version__
from .seeding import stream


def gaussian_linear(task: str, cfg: dict) -> xr.Dataset:
    """x ~ N(0, I_d); y = teacher . x with a fixed unit-norm teacher, so Var(y) = 1."""
    d = cfg["dataset"]["dim"]
    seed = cfg["base_seed"]
    teacher = stream(seed, task, "teacher").standard_normal(d)
    teacher /= np.linalg.norm(teacher)
    train_x = stream(seed, task, "train_inputs").standard_normal((max(cfg["n"]), d))
    probe_x = stream(seed, task, "probe_inputs").standard_normal((cfg["probes"], d))
    test_x = stream(seed, task, "test_inputs").standard_normal((cfg["test_size"], d))
    ds = xr.Dataset(
        {
            "train_x": (("sample", "feature"), train_x),
            "train_y": (("sample", "output"), (train_x @ teacher)[:, None]),
            "probe_x": (("probe", "feature"), probe_x),
            "test_x": (("test_sample", "feature"), test_x),
            "test_y": (("test_sample", "output"), (test_x @ teacher)[:, None]),
            "teacher": (("feature",), teacher),
        },
        attrs={
            # Population variance of the clean target: |teacher|^2 for isotropic inputs.
            "target_variance": float(teacher @ teacher),
            "target_variance_definition": "population Var(teacher . x) = |teacher|^2",
        },
    )
    return ds


DATASETS = {"gaussian_linear": gaussian_linear}


def make_task_data(task: str, cfg: dict) -> xr.Dataset:
    """Build the data set of one task from its (validated) config section."""
    kind = cfg["dataset"]["kind"]
    if kind not in DATASETS:
        raise ValueError(f"tasks.{task}.dataset.kind: unknown data set {kind!r}; known: {sorted(DATASETS)}")
    ds = DATASETS[kind](task, cfg)
    n_max = max(cfg["n"])
    if ds.sizes["sample"] < n_max:
        raise ValueError(
            f"tasks.{task}.n: the largest n ({n_max}) exceeds the {ds.sizes['sample']} "
            f"training samples available in data set {kind!r}"
        )
    ds.attrs.update(task=task, dataset=kind, alignlib_version=__version__)
    return ds
