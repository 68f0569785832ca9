"""NetCDF files of the pipeline: atomic writes and the activation cubes.

An activation cube holds ``activation(snr, n, seed, layer, probe, unit)``: every
member's activations on the shared probe inputs. Layers narrower than the widest
one are padded with NaN along ``unit``; ``layer_width(layer)`` says how many units
are real, and :func:`layer_activations` strips the padding.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import xarray as xr


def write_netcdf(ds: xr.Dataset, path, compress: bool = True) -> None:
    """Write ``ds`` to ``path`` atomically: a temporary file in the same folder, then rename.

    A job killed mid-write leaves only a ``.tmp`` file, never a file that looks complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoding = {}
    if compress:
        encoding = {
            name: {"zlib": True, "complevel": 4}
            for name, var in ds.data_vars.items()
            if var.dtype.kind in "fiub"
        }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it normal permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_netcdf(path) -> xr.Dataset:
    """Load a whole NetCDF file into memory and close it (no open handles left behind)."""
    with xr.open_dataset(path, engine="netcdf4") as ds:
        return ds.load()


def open_activations(task_dir) -> xr.Dataset:
    """All activation cubes of a task (``<task_dir>/activations/*.nc``) as one Dataset.

    Its variables are indexed by (snr, n, seed, layer), plus probe and unit.
    """
    files = sorted(Path(task_dir, "activations").glob("*.nc"))
    if not files:
        raise FileNotFoundError(f"no activation cubes (*.nc) in {Path(task_dir, 'activations')}")
    parts = [read_netcdf(f) for f in files]
    ds = xr.concat(parts, dim="n", data_vars="minimal", coords="minimal", compat="override",
                   join="outer", combine_attrs="override")
    return ds.sortby("n")


def layer_activations(ds: xr.Dataset, layer: str) -> xr.DataArray:
    """The activations of one layer without the NaN padding: dims (..., probe, unit)."""
    width = int(ds["layer_width"].sel(layer=layer))
    return ds["activation"].sel(layer=layer).isel(unit=slice(0, width))
