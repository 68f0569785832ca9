import numpy as np
import xarray as xr

from alignlib.threshold import interpolation_threshold


def _errors(table, ns=(5, 10, 20, 40, 80), snrs=(1.0, 10.0)):
    """table[snr][seed] = list of train errors over ns."""
    arr = np.array([[table[s][k] for k in range(len(table[s]))] for s in range(len(snrs))])  # snr, seed, n
    return xr.DataArray(arr, coords={"snr": list(snrs), "seed": range(arr.shape[1]), "n": list(ns)},
                        dims=("snr", "seed", "n"))


def test_threshold_is_last_n_of_fitting_prefix():
    zero, big = 0.0, 0.5
    err = _errors([
        [[zero, zero, zero, big, big], [zero, zero, zero, big, big], [zero, zero, big, big, big]],
        [[zero, zero, big, big, zero], [zero, zero, big, big, zero], [zero, big, big, big, zero]],
    ])
    t = interpolation_threshold(err, tol=1e-3)
    # SNR 1: at n = 20 two of three members fit -> threshold 20; SNR 10: a late fit at n = 80 is ignored
    assert t.sel(snr=1.0) == 20 and t.sel(snr=10.0) == 10


def test_no_threshold_when_nothing_fits_and_scale_normalises():
    err = _errors([[[1.0] * 5] * 2, [[0.02, 0.02, 0.02, 0.5, 0.5]] * 2])
    t = interpolation_threshold(err, tol=0.01)
    assert np.isnan(t.sel(snr=1.0)) and np.isnan(t.sel(snr=10.0))
    scaled = interpolation_threshold(err, tol=0.01, scale=xr.DataArray([100.0, 4.0], coords={"snr": [1.0, 10.0]}, dims="snr"))
    assert scaled.sel(snr=1.0) == 80 and scaled.sel(snr=10.0) == 20


def test_unsorted_n_grid():
    err = _errors([[[0, 1, 0, 0, 1]] * 2, [[0, 0, 0, 0, 0]] * 2], ns=(20, 80, 5, 10, 40))
    t = interpolation_threshold(err, tol=1e-3)
    assert t.sel(snr=1.0) == 20 and t.sel(snr=10.0) == 80
