"""Activation cubes: contents, NetCDF round-trip, atomic writes."""
import os

import numpy as np
import pytest
import xarray as xr

from alignlib.ensembles.alignment import layer_activations
from alignpipe.cubes import open_activations, write_netcdf
from alignlib.ensembles.data import make_task_data
from alignlib.ensembles.builder import extract_activations, model_attrs, params_of, train_grid_n


@pytest.fixture(scope="module")
def models_and_data(tiny_config):
    cfg = tiny_config["tasks"]["linear_regression"]
    data = make_task_data("linear_regression", cfg)
    parts = [train_grid_n("linear_regression", cfg, data, n, "cpu") for n in (7, 14)]
    models = xr.concat(parts, dim="n")
    models.attrs.update(model_attrs("linear_regression", cfg, data))
    return cfg, data, models


def test_cube_holds_each_members_forward_pass(models_and_data):
    cfg, data, models = models_and_data
    cube = extract_activations(cfg, data, models, "cpu")
    assert dict(cube["activation"].sizes) == {"snr": 3, "n": 2, "seed": 3, "layer": 2, "probe": 64, "unit": 20}
    assert list(cube["layer"].values) == ["hidden", "output"]
    w1, w2 = params_of(models, 3.0, 14)
    probes = data["probe_x"].values
    hidden = probes @ w1[1].T
    np.testing.assert_allclose(layer_activations(cube, "hidden").sel(snr=3.0, n=14, seed=1), hidden, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer_activations(cube, "output").sel(snr=3.0, n=14, seed=1), hidden @ w2[1].T,
                               rtol=1e-5, atol=1e-6)
    # the output layer has one real unit; the rest is NaN padding, stripped by layer_activations
    assert layer_activations(cube, "output").sizes["unit"] == 1
    assert np.isnan(cube["activation"].sel(layer="output").isel(unit=slice(1, None))).all()
    np.testing.assert_allclose(cube["end_to_end"].sel(snr=3.0, n=14, seed=1).values, w2[1] @ w1[1], rtol=1e-12)


def test_round_trip_through_open_activations(tmp_path, models_and_data):
    cfg, data, models = models_and_data
    for n in (7, 14):
        cube = extract_activations(cfg, data, models.sel(n=[n]), "cpu")
        write_netcdf(cube, tmp_path / "activations" / f"n{n}.nc")
    opened = open_activations([tmp_path / "activations" / f"n{n}.nc" for n in (14, 7)], expected_n=[7, 14])
    whole = extract_activations(cfg, data, models, "cpu")
    xr.testing.assert_identical(opened, whole)
    assert opened["snr"].dtype == np.float64 and opened["n"].dtype.kind == "i"
    assert opened.attrs["task"] == "linear_regression" and opened.attrs["network"] == "linear"
    assert "snr_definition" in opened.attrs and "alignlib_version" in opened.attrs


def test_killed_write_leaves_no_complete_looking_file(tmp_path, monkeypatch):
    ds = xr.Dataset({"x": ("a", np.arange(3.0))})
    target = tmp_path / "out.nc"

    def boom(self, path, *args, **kwargs):
        open(path, "wb").write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.Dataset, "to_netcdf", boom)
    with pytest.raises(KeyboardInterrupt):
        write_netcdf(ds, target)
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_open_activations_takes_files_not_a_folder(tmp_path):
    with pytest.raises(TypeError, match="not a folder"):
        open_activations(tmp_path)
    with pytest.raises(FileNotFoundError):
        open_activations([tmp_path / "activations" / "n7.nc"])
