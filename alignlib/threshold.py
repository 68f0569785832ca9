"""The empirical interpolation threshold: the largest n at which members still fit their data."""

from __future__ import annotations

import numpy as np
import xarray as xr


def fits(train_error: xr.DataArray, tol: float, scale=1.0, quorum: float = 0.5) -> xr.DataArray:
    """Whether the members at each (snr, n) fit their noisy training set.

    A member fits when train_error / scale <= tol (``scale`` normalises a regression MSE by the
    variance of the noisy targets; use 1 for a 0-1 error). A grid point fits when at least
    ``quorum`` of its members do.
    """
    return ((train_error / scale) <= tol).mean("seed") >= quorum


def interpolation_threshold(train_error: xr.DataArray, tol: float, scale=1.0, quorum: float = 0.5) -> xr.DataArray:
    """Per SNR, the largest n of the grid such that every n up to it fits (NaN when the smallest n does not).

    Requiring the whole prefix to fit keeps a lucky fit at a large n from moving the threshold.
    """
    fitted = fits(train_error, tol, scale, quorum).transpose("snr", "n")
    ns = fitted["n"].values
    order = np.argsort(ns)
    values = []
    for row in fitted.values[:, order]:
        prefix = np.cumprod(row).astype(bool)
        values.append(float(ns[order][prefix].max()) if prefix.any() else np.nan)
    out = xr.DataArray(values, coords={"snr": fitted["snr"].values}, dims="snr", name="interpolation_threshold")
    out.attrs["definition"] = (f"largest n such that at every n' <= n at least {quorum:g} of the members have "
                               f"train error / scale <= {tol:g}")
    return out


def noisy_target_scale(table: xr.Dataset):
    """What a regression train MSE is divided by: the expected variance of the noisy targets.

    target_gaussian noise: Var(clean) * (1 + 1/snr); other noise: Var(clean). Classification
    errors are already fractions (scale 1).
    """
    if table.attrs.get("target") == "classification":
        return 1.0
    variance = float(table.attrs["target_variance"])
    if table.attrs.get("noise") == "target_gaussian":
        return variance * (1.0 + 1.0 / table["snr"])
    return variance


def task_interpolation_threshold(table: xr.Dataset, tol: float) -> xr.DataArray:
    """interpolation_threshold(snr) of a task from its recorded train errors."""
    return interpolation_threshold(table["train_error"], tol, scale=noisy_target_scale(table))
