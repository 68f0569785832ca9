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
