"""The tiny config's linear task (tests/configs/tiny.yaml) trained at n = 7 and 14: real members for the
tests of the builder, the cubes, the alignment and the chance. Built once per test session; callers
must not modify what they get."""
import functools
import io

import xarray as xr
import yaml
from conftest import CONFIGS, validated

from alignlib.ensembles.builder import extract_activations, model_attrs, train_grid_n
from alignlib.ensembles.data import make_task_data

TASK = "linear_regression"


@functools.cache
def tiny_linear() -> tuple[dict, xr.Dataset, xr.Dataset]:
    """(the task's config, its data set, its members' weights at n = 7 and 14)."""
    cfg = validated(yaml.safe_load((CONFIGS / "tiny.yaml").read_text()))["tasks"][TASK]
    data = make_task_data(TASK, cfg)
    models = xr.concat([train_grid_n(TASK, cfg, data, n, "cpu", log=io.StringIO()) for n in (7, 14)], dim="n")
    models.attrs.update(model_attrs(TASK, cfg, data))
    return cfg, data, models


@functools.cache
def tiny_linear_cube() -> xr.Dataset:
    """The members' activation cube on the task's probes."""
    cfg, data, models = tiny_linear()
    return extract_activations(cfg, data, models, "cpu")
