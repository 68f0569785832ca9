"""NetCDF files of the pipeline: atomic writes and the activation cubes.

An activation cube holds ``activation(snr, n, seed, layer, probe, unit)``: every
member's activations on the shared probe inputs. Layers narrower than the widest
one are padded with NaN along ``unit``; ``layer_width(layer)`` says how many units
are real, and alignlib.ensembles.alignment.layer_activations strips the padding.
"""

from __future__ import annotations

import errno
import os
import shlex
import shutil
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

# Below this much free space after a failed write, the failure is reported as a full disk.
LOW_SPACE_BYTES = 16 * 2**20


class CorruptFileError(OSError):
    """A pipeline file that exists but cannot be read: its message says how to rebuild it."""


class NoSpaceError(OSError):
    """A write that failed because the disk holding its folder is (nearly) full."""


class CubeMismatchError(ValueError):
    """Activation cubes whose n values overlap or differ from the config's grid."""


def write_netcdf(ds: xr.Dataset, path, compress: bool = True) -> None:
    """Write ``ds`` to ``path`` atomically: a temporary file in the same folder, then rename.

    A job killed mid-write leaves only a ``.tmp`` file, never a file that looks complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = _float16_as_bits(ds)
    encoding = {name: {"_FillValue": None} for name in ds.data_vars if ds[name].attrs.get(FLOAT16_BITS)}
    if compress:
        for name, var in ds.data_vars.items():
            if var.dtype.kind in "fiub":
                encoding.setdefault(name, {}).update(zlib=True, complevel=4)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it normal permissions
        os.replace(tmp, path)
    except BaseException as error:
        # judge the free space while the partial file still occupies it
        full = _disk_full(path.parent, error) if isinstance(error, Exception) else None
        if os.path.exists(tmp):
            os.remove(tmp)
        if full is not None:
            raise NoSpaceError(
                f"no space left on {path.parent} ({full / 2**20:.1f} MiB free) while writing {path.name} "
                f"(up to {ds.nbytes / 2**20:.1f} MiB before compression; the write failed with "
                f"{type(error).__name__}: {error}); free some space and rerun") from error
        raise


# NetCDF has no 16-bit float type: a float16 variable (``activation_dtype: float16``) is stored as its
# bit patterns in an unsigned 16-bit integer variable carrying this attribute, and read back bit for bit.
FLOAT16_BITS = "stored_as_float16_bits"


def _float16_as_bits(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with every float16 data variable replaced by its bit patterns (uint16, flagged)."""
    halves = [name for name, var in ds.data_vars.items() if var.dtype == np.float16]
    if not halves:
        return ds
    ds = ds.copy()
    for name in halves:
        var = ds[name]
        ds[name] = var.copy(data=np.ascontiguousarray(var.values).view(np.uint16))
        ds[name].attrs[FLOAT16_BITS] = 1
    return ds


def _float16_from_bits(ds: xr.Dataset) -> xr.Dataset:
    """The inverse of :func:`_float16_as_bits` on a loaded Dataset."""
    for name, var in list(ds.data_vars.items()):
        if var.attrs.get(FLOAT16_BITS):
            if var.dtype != np.uint16:
                raise ValueError(f"variable {name!r} is flagged {FLOAT16_BITS} but stored as {var.dtype}, not uint16")
            attrs = {k: v for k, v in var.attrs.items() if k != FLOAT16_BITS}
            ds[name] = var.copy(data=var.values.view(np.float16))
            ds[name].attrs = attrs
    return ds


def _disk_full(folder: Path, error: BaseException) -> int | None:
    """The free bytes of ``folder``'s disk when ``error`` looks like a full disk, else None.

    NetCDF/HDF5 often reports a full disk only as 'NetCDF: HDF error', so the free space
    decides, not the error text.
    """
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    seen, cause = set(), error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if getattr(cause, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            return free
        cause = cause.__cause__ or cause.__context__
    return free if free < LOW_SPACE_BYTES else None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_netcdf(path) -> xr.Dataset:
    """Load a whole NetCDF file into memory and close it (no open handles left behind).

    Every NetCDF input of the pipeline is read here. A file that exists but cannot be read
    raises :class:`CorruptFileError` with :func:`rebuild_command`; a missing file stays a
    FileNotFoundError.
    """
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            return _float16_from_bits(ds.load())
    except FileNotFoundError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError, IndexError) as error:
        raise CorruptFileError(f"cannot read {path}: corrupt or truncated; rebuild it and what depends on it "
                               f"with `{rebuild_command(path)}` (plus this run's --configfile, if any)") from error


def rebuild_command(path) -> str:
    """The command that rebuilds exactly the pipeline output ``path``: its job and the jobs downstream.

    Deleting the file is not enough: Snakemake 9 does not rebuild a missing intermediate file
    while the final outputs exist ("Nothing to be done"), and ``--forcerun <rule>`` reruns every
    job of that rule in every task.
    """
    return f"snakemake --cores all --forcerun {shlex.quote(str(path))}"


def open_activations(files, expected_n=None, key: str = "n") -> xr.Dataset:
    """The activation cubes ``files`` (a list of paths) as one Dataset sorted by n.

    Its variables are indexed by (snr, n, seed, layer), plus probe and unit. Only the files
    given are read, never a folder's other contents: after the grid changed in place, the
    folder still holds the old grid's cubes. The cubes' n values must be distinct and, when
    ``expected_n`` (the config's n; ``key`` names it in messages) is given, equal to it;
    anything else raises :class:`CubeMismatchError` naming the files and how to remove them.
    """
    if isinstance(files, (str, os.PathLike)):
        if Path(files).is_dir():
            raise TypeError(f"open_activations takes the list of cube files, not a folder ({files}): a folder "
                            "may also hold cubes of an earlier grid; pass the files of the grid you mean")
        files = [files]
    files = [Path(f) for f in files]
    if not files:
        raise FileNotFoundError("open_activations: no activation cube files given")
    parts = [read_netcdf(f) for f in files]
    check_cube_ns(files, [part["n"].values for part in parts], expected_n, key)
    ds = xr.concat(parts, dim="n", data_vars="minimal", coords="minimal", compat="override",
                   join="outer", combine_attrs="override")
    return ds.sortby("n")


def check_cube_ns(files, ns_per_file, expected_n=None, key: str = "n") -> None:
    """Raise :class:`CubeMismatchError` unless the files' n values are distinct (and equal ``expected_n``)."""
    owners: dict[int, list[Path]] = {}
    for f, ns in zip(files, ns_per_file):
        for n in np.atleast_1d(ns).tolist():
            owners.setdefault(int(n), []).append(Path(f))
    problems, culprits = [], set()
    for n, where in sorted(owners.items()):
        if len(where) > 1:
            problems.append(f"n = {n} is in {len(where)} cubes ({', '.join(str(w) for w in where)})")
            culprits.update(where)
    if expected_n is not None:
        expected = sorted(int(n) for n in expected_n)
        extra = sorted(set(owners) - set(expected))
        missing = sorted(set(expected) - set(owners))
        if extra:
            where = sorted({w for n in extra for w in owners[n]})
            problems.append(f"n = {extra} not in {key} = {expected} ({', '.join(str(w) for w in where)})")
            culprits.update(where)
        if missing:
            problems.append(f"no cube holds n = {missing} of {key} = {expected}")
    if problems:
        fix = (f"they are left over from an earlier grid: delete them (rm {' '.join(sorted(str(c) for c in culprits))}) "
               "and rerun" if culprits else "rerun the extract jobs (`snakemake --forcerun extract`)")
        raise CubeMismatchError(f"activation cubes do not match the config: {'; '.join(problems)}; {fix}")


def undeclared_cubes(files) -> list[Path]:
    """Other ``*.nc`` files in the folders of ``files``: cubes of an earlier grid, never read."""
    files = {Path(f).resolve() for f in files}
    folders = {f.parent for f in files}
    return sorted(p for folder in folders for p in folder.glob("*.nc") if p.resolve() not in files)
