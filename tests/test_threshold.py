import numpy as np
import pytest
import xarray as xr

from alignlib.stats.threshold import double_descent_peak, interpolation_threshold, threshold_with_interval


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


# ---------------------------------------------------------------- threshold intervals and the test-error peak


def _noise_fit_table(ok, ns=(5, 10, 20, 40, 80)):
    """ok[snr][seed][n] -> noise_fit 0 (interpolates) or 1."""
    arr = np.where(np.array(ok, dtype=bool), 0.0, 1.0)
    return xr.DataArray(arr.transpose(0, 2, 1), coords={"snr": [1.0, 10.0][:arr.shape[0]], "n": list(ns),
                                                         "seed": range(arr.shape[1])}, dims=("snr", "n", "seed"))


def test_threshold_interval_spans_at_least_the_grid_gap():
    every = [[[1, 1, 1, 0, 0]] * 8]  # all 8 members interpolate up to n = 20, none beyond
    out = threshold_with_interval(_noise_fit_table(every), tol=0.01, n_boot=200)
    assert float(out["interpolation_threshold"][0]) == 20
    assert float(out["interpolation_threshold_low"][0]) == 20 and float(out["interpolation_threshold_high"][0]) == 40
    assert float(out["first_non_interpolating_n"][0]) == 40


def test_threshold_interval_widens_where_the_quorum_is_close_and_opens_at_the_grid_edges():
    close = [[[1, 1, 1, 1, 0]] * 4 + [[1, 1, 0, 0, 0]] * 4]  # at n = 20 and 40 exactly half interpolate
    out = threshold_with_interval(_noise_fit_table(close), tol=0.01, n_boot=500)
    assert float(out["interpolation_threshold"][0]) == 40
    assert float(out["interpolation_threshold_low"][0]) == 10 and float(out["interpolation_threshold_high"][0]) == 80
    all_fit = threshold_with_interval(_noise_fit_table([[[1] * 5] * 6]), tol=0.01, n_boot=50)
    assert float(all_fit["interpolation_threshold"][0]) == 80 and np.isnan(all_fit["interpolation_threshold_high"][0])
    none_fit = threshold_with_interval(_noise_fit_table([[[0] * 5] * 6]), tol=0.01, n_boot=50)
    assert np.isnan(none_fit["interpolation_threshold"][0]) and np.isnan(none_fit["interpolation_threshold_low"][0])


def test_double_descent_peak_with_interval():
    rng = np.random.default_rng(3)
    ns = [5, 10, 20, 40, 80, 160]
    curve = np.array([1.0, 1.5, 3.0, 1.6, 1.1, 1.0])
    err = curve[None, :, None] + 0.05 * rng.normal(size=(1, 6, 8))
    te = xr.DataArray(err, coords={"snr": [1.0], "n": ns, "seed": range(8)}, dims=("snr", "n", "seed"))
    out = double_descent_peak(te, n_boot=300)
    assert float(out["test_error_peak"][0]) == 20
    assert float(out["test_error_peak_low"][0]) == 20 and float(out["test_error_peak_high"][0]) == 20
    assert float(out["test_error_peak_p"][0]) < 0.001
    assert float(out["test_error_peak_prominence"][0]) == pytest.approx(2.0, abs=0.1)  # min(3.0 - 1.0, 3.0 - 1.0)
    # the recorded definition names the null the test uses (docs/methods.md), not a flat curve
    assert "least favourable" in out["test_error_peak"].attrs["definition"]


def test_peak_prominence_by_hand():
    from alignlib.stats.threshold import peak_prominence

    P, k = peak_prominence(np.array([[1.0, 1.5, 3.0, 1.6, 1.1, 1.0],  # peak at 2: min(3 - 1, 3 - 1) = 2
                                      [3.0, 2.0, 1.0, 1.0, 1.0, 1.0],  # monotone: no interior maximum
                                      [1.0, 2.0, 1.5, 2.5, 0.5, 0.4]]))  # two peaks: min(2.5-1, 2.5-0.4) = 1.5
    np.testing.assert_allclose(P, [2.0, 0.0, 1.5])
    np.testing.assert_array_equal(k[[0, 2]], [2, 3])
    assert peak_prominence(np.array([1.0, np.nan, 2.0, 1.0]))[0] == pytest.approx(1.0)  # NaN never counts


def test_error_peak_is_a_test_not_the_argmax():
    """Test error that falls with n and levels off (mlp_classification's shape) has its argmax at the
    first n, which the old 'peak' reported; as a test it is 'no peak' (NaN) with a large p, and a real
    interior peak of 8 standard errors is found at its n."""
    from alignlib.claims.calibration import GRIDS, error_curve, test_error_table

    ns = GRIDS["mlp"][0]
    rng = np.random.default_rng(4)
    falling = double_descent_peak(test_error_table(error_curve(ns, "falling then flat"), ns, 10, rng), n_boot=50)
    assert np.isnan(falling["test_error_peak"]).all() and (falling["test_error_peak_p"] > 0.05).all()
    assert np.isfinite(falling["test_error_peak_prominence"]).all()
    se = 0.03 / np.sqrt(10)
    peaked = double_descent_peak(test_error_table(error_curve(ns, "peak", 8 * se), ns, 10, rng), n_boot=50)
    np.testing.assert_array_equal(peaked["test_error_peak"].values, [300, 300, 300])
    assert (peaked["test_error_peak_p"] < 0.05).all()


def test_peak_test_keeps_its_level_on_curves_without_an_interior_maximum():
    """The least favourable curves (a step at one end, flat elsewhere) and a flat one: a raw p < 0.05 at
    most 5 % of the time (a flat null would fire on the steps); a peak of 4 standard errors: >= 80 %."""
    from alignlib.stats.threshold import peak_test

    se = np.full(10, 0.01)
    rng = np.random.default_rng(5)
    for curve in (np.r_[0.5, np.full(9, 0.2)], np.r_[np.full(9, 0.2), 0.5], np.full(10, 0.2)):
        ps = [peak_test(curve + rng.standard_normal(10) * se, se, rng, n_null=1000)[2] for _ in range(300)]
        assert np.mean(np.array(ps) < 0.05) <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 300)
    peak = np.r_[np.full(5, 0.2), 0.2 + 4 * np.sqrt(2) * 0.01, np.full(4, 0.2)]
    ps = [peak_test(peak + rng.standard_normal(10) * se, se, rng, n_null=1000)[2] for _ in range(100)]
    assert np.mean(np.array(ps) < 0.05) >= 0.8
    assert np.isnan(peak_test(np.array([0.1, np.nan, 0.2]), np.ones(3), rng)[2])


def test_below_threshold_fit_counts_members_under_threshold_over_factor():
    from alignlib.stats.threshold import below_threshold_fit

    ns = [5, 10, 20, 40, 80]
    nf = np.zeros((1, 5, 4))
    nf[0, 1, 0] = 0.5  # one member at n = 10 stopped short of its noise floor
    nf[0, 3:] = 1.0  # n >= 40 does not interpolate: threshold 20
    steps = np.full((1, 5, 4), 10)
    steps[0, 1, 0] = 3000
    table = xr.Dataset({"noise_fit": (("snr", "n", "seed"), nf), "steps": (("snr", "n", "seed"), steps),
                        "interpolation_threshold": ("snr", [20.0])},
                       coords={"snr": [1.0], "n": ns, "seed": range(4)}, attrs={"max_steps": 3000})
    out = below_threshold_fit(table, tol=0.01, factor=1.5)  # n <= 13.3: n = 5 and 10, 8 members
    assert out["members"] == 8 and out["fraction"] == 7 / 8 and out["stopped_short"] == 1 / 8


def test_fit_by_n_fractions_per_grid_point():
    from alignlib.stats.threshold import fit_by_n

    nf = np.zeros((2, 3, 4))
    nf[0, 1, :2] = 0.5  # snr 1, n = 20: two of four members above the floor ...
    nf[1, 2, :] = np.nan  # snr 10, n = 40: every member diverged (NaN never reaches the floor)
    steps = np.full((2, 3, 4), 10)
    steps[0, 1, 0] = 3000  # ... one of them because it ran out of steps
    table = xr.Dataset({"noise_fit": (("snr", "n", "seed"), nf), "steps": (("snr", "n", "seed"), steps)},
                       coords={"snr": [1.0, 10.0], "n": [10, 20, 40], "seed": range(4)}, attrs={"max_steps": 3000})
    out = fit_by_n(table, tol=0.01)
    np.testing.assert_array_equal(out["reached_noise_floor"].values, [[1, 0.5, 1], [1, 1, 0]])
    np.testing.assert_array_equal(out["stopped_short"].values, [[0, 0.25, 0], [0, 0, 0]])
    del table.attrs["max_steps"]
    assert np.isnan(fit_by_n(table, tol=0.01)["stopped_short"]).all()
