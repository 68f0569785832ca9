"""alignpipe.cubes: NetCDF round-trip of activation cubes, atomic writes."""
import os

import numpy as np
import pytest
import xarray as xr
from tiny_linear import tiny_linear

from alignlib.ensembles.builder import extract_activations
from alignpipe.cubes import open_activations, write_netcdf


def test_round_trip_through_open_activations(tmp_path):
    cfg, data, models = tiny_linear()
    for n in (7, 14):
        cube = extract_activations(cfg, data, models.sel(n=[n]), "cpu")
        write_netcdf(cube, tmp_path / "activations" / f"n{n}.nc")
    opened = open_activations([tmp_path / "activations" / f"n{n}.nc" for n in (14, 7)], expected_n=[7, 14])
    whole = extract_activations(cfg, data, models, "cpu")
    xr.testing.assert_identical(opened, whole)
    assert opened["snr"].dtype == np.float64 and opened["n"].dtype.kind == "i"
    assert opened.attrs["task"] == "linear_regression" and opened.attrs["network"] == "linear"
    assert "snr_definition" in opened.attrs and "alignlib_version" in opened.attrs


def test_float16_cubes_round_trip_bit_for_bit_at_half_the_disk(tmp_path):
    """activation_dtype: float16 (NetCDF has no 16-bit float): the cube written and read back is the one
    extracted, float16 with its NaN padding, and its file is about half the float32 one's."""
    cfg, data, models = tiny_linear()
    half = extract_activations(cfg, data, models, "cpu", storage_dtype=np.float16)
    assert half["activation"].dtype == np.float16 and np.isnan(half["activation"].values).any()  # padded units
    write_netcdf(half, tmp_path / "half.nc")
    back = open_activations([tmp_path / "half.nc"])
    xr.testing.assert_identical(back, half)
    assert back["activation"].dtype == np.float16
    np.testing.assert_array_equal(back["activation"].values.view(np.uint16), half["activation"].values.view(np.uint16))
    full = extract_activations(cfg, data, models, "cpu", storage_dtype=np.float32)
    write_netcdf(full, tmp_path / "full.nc")
    assert (tmp_path / "half.nc").stat().st_size < 0.75 * (tmp_path / "full.nc").stat().st_size


def test_a_flagged_variable_that_is_not_uint16_is_refused(tmp_path):
    from alignpipe.cubes import FLOAT16_BITS, CorruptFileError, read_netcdf
    ds = xr.Dataset({"activation": ("x", np.arange(3, dtype=np.float32), {FLOAT16_BITS: 1})})
    ds.to_netcdf(tmp_path / "odd.nc")
    with pytest.raises(CorruptFileError, match="rebuild it") as caught:
        read_netcdf(tmp_path / "odd.nc")
    assert "stored as float32, not uint16" in str(caught.value.__cause__)


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
