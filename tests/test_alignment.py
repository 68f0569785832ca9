"""alignlib.ensembles.alignment: the alignment table of a cube (pairs, diverged members, errors and their
notes, end-to-end metrics), the merge of align parts, the chance table, pair means and the linear theory."""
import io

import numpy as np
import pytest
import xarray as xr
from tiny_linear import tiny_linear, tiny_linear_cube

from alignlib import theory
from alignlib.ensembles.alignment import (
    MemberGrid,
    _note,
    chance_table,
    compute_alignment,
    dense_linear_theory,
    linear_input_dim,
    member_pairs,
    merge_metric_parts,
    pair_mean,
    primary_layer,
)
from alignlib.metrics import compare
from alignlib.stats.chance import END_TO_END_REASON
from alignlib.stats.members import jackknife_pair_mean

pytestmark = pytest.mark.usefixtures("single_torch_thread")

SNRS, NS, S, PROBES = [1.0, 10.0], [5, 20], 4, 16


def hand_cube(seed=0, diverged=None):
    """2 SNR x 2 n x 4 members of Gaussian activations: a 3-unit hidden layer and a 2-unit output (one NaN pad)."""
    rng = np.random.default_rng(seed)
    acts = np.full((2, 2, S, 2, PROBES, 3), np.nan)
    acts[..., 0, :, :] = rng.standard_normal((2, 2, S, PROBES, 3))
    acts[..., 1, :, :2] = rng.standard_normal((2, 2, S, PROBES, 2))
    cube = xr.Dataset({"activation": (("snr", "n", "seed", "layer", "probe", "unit"), acts),
                       "layer_width": (("layer",), np.array([3, 2]))},
                      coords={"snr": SNRS, "n": NS, "seed": [10, 11, 12, 13], "layer": ["hidden", "output"]},
                      attrs={"task": "hand", "network": "mlp"})
    cube["test_error"] = (("snr", "n", "seed"), rng.random((2, 2, S)))
    if diverged is not None:
        cube["diverged"] = (("snr", "n", "seed"), diverged.astype(np.int8))
    return cube


def test_member_pairs_and_the_grid_of_a_cube():
    ia, ib = member_pairs([7, 8, 9, 10])
    assert list(zip(ia.tolist(), ib.tolist())) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    grid = MemberGrid.of(hand_cube())
    assert grid.kept is None and grid.keep(1, 1) is None and list(grid.layers) == ["hidden", "output"]
    diverged = np.zeros((2, 2, S), bool)
    diverged[0, 1, 2] = True
    grid = MemberGrid.of(hand_cube(diverged=diverged))
    assert grid.keep(0, 1).tolist() == [True, True, False, True] and grid.keep(1, 0).all()


def test_every_pair_holds_the_metric_of_its_two_members():
    cube = hand_cube()
    table = compute_alignment(cube, ["cka_linear", "procrustes"], log=io.StringIO())
    assert table["alignment"].dims == ("metric", "layer", "snr", "n", "pair")
    assert table["seed_a"].values.tolist() == [10, 10, 10, 11, 11, 12]
    assert table["seed_b"].values.tolist() == [11, 12, 13, 12, 13, 13]
    for metric in ("cka_linear", "procrustes"):
        for layer, width in (("hidden", 3), ("output", 2)):
            for snr in SNRS:
                for n in NS:
                    reps = cube["activation"].sel(snr=snr, n=n, layer=layer).values[..., :width]
                    expected = [compare(reps[a], reps[b], metric) for a, b in zip(*member_pairs(range(S)))]
                    got = table["alignment"].sel(metric=metric, layer=layer, snr=snr, n=n).values
                    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert (table["alignment_note"].values == "").all()
    xr.testing.assert_identical(table["test_error"], cube["test_error"])
    assert table.attrs["task"] == "hand" and "alignlib_version" in table.attrs


def test_diverged_members_leave_their_pairs_nan_and_the_others_unchanged():
    diverged = np.zeros((2, 2, S), bool)
    diverged[0, 0, 1] = True  # member 11 at (snr 1, n 5)
    diverged[1, 1, :3] = True  # one member left at (snr 10, n 20): no pair
    clean = compute_alignment(hand_cube(), ["cka_linear"], log=io.StringIO())["alignment"]
    table = compute_alignment(hand_cube(diverged=diverged), ["cka_linear"], log=io.StringIO())["alignment"]
    point = table.sel(snr=1.0, n=5)
    with_11 = ((table["seed_a"] == 11) | (table["seed_b"] == 11)).values
    assert point.isel(pair=with_11).isnull().all()
    xr.testing.assert_equal(point.isel(pair=~with_11), clean.sel(snr=1.0, n=5).isel(pair=~with_11))
    assert table.sel(snr=10.0, n=20).isnull().all()
    xr.testing.assert_equal(table.sel(snr=10.0, n=5), clean.sel(snr=10.0, n=5))


def test_errors_leave_the_point_nan_and_one_note_counts_them_under_the_first_text():
    cube = hand_cube()
    cube["activation"][{"snr": 0, "n": 0, "seed": 0, "layer": 0}] = 1.0  # member 0 constant at one point
    cube["activation"][{"snr": 1, "n": 1, "seed": 2, "layer": 0}] = 1.0  # member 2 constant at another
    log = io.StringIO()
    table = compute_alignment(cube, ["cka_linear"], log=log)
    hidden = table["alignment"].sel(metric="cka_linear", layer="hidden")
    assert hidden.sel(snr=1.0, n=5).isnull().all() and hidden.sel(snr=10.0, n=20).isnull().all()
    assert np.isfinite(hidden.sel(snr=1.0, n=20)).all()
    note = str(table["alignment_note"].sel(metric="cka_linear", layer="hidden").values)
    assert note.startswith("NaN at 2/4 grid points: the metric raised an error (first: cka_linear: member 0 ")
    assert str(table["alignment_note"].sel(metric="cka_linear", layer="output").values) == ""
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("alignment: cka_linear at layer hidden, snr 1, n 5: NaN (cka_linear: member 0")
    assert lines[1].startswith("alignment: cka_linear at layer hidden, snr 10, n 20: NaN (cka_linear: member 2")
    assert lines[2] == f"alignment: cka_linear at layer hidden: {note}" and lines[-1] == "alignment: cka_linear done"


def test_notes_count_each_reason():
    assert _note({"rank one": 3}, 8) == "NaN at 3/8 grid points: rank one"
    assert _note({"rank one": 3, "ties": 1}, 8) == "NaN at 4/8 grid points: rank one (3); ties (1)"


def test_end_to_end_metrics_sit_at_the_last_layer_and_are_dropped_without_end_to_end_maps():
    cube = tiny_linear_cube()
    table = compute_alignment(cube, ["cosine_end_to_end", "cka_linear"], log=io.StringIO())
    e2e = table["alignment"].sel(metric="cosine_end_to_end")
    assert e2e.sel(layer="hidden").isnull().all() and np.isfinite(e2e.sel(layer="output")).all()
    beta = cube["end_to_end"].sel(snr=3.0, n=14).values[:, 0]
    cos = beta[0] @ beta[1] / np.linalg.norm(beta[0]) / np.linalg.norm(beta[1])
    assert float(e2e.sel(layer="output", snr=3.0, n=14).isel(pair=0)) == pytest.approx(cos, rel=1e-10)
    assert primary_layer(table, "cosine_end_to_end") == "output" and primary_layer(table, "cka_linear") == "hidden"
    without = compute_alignment(hand_cube(), ["cosine_end_to_end", "cka_linear"], log=io.StringIO())
    assert without["metric"].values.tolist() == ["cka_linear"]


def test_probe_inputs_must_match_the_cube():
    with pytest.raises(ValueError, match=r"probe_x must be \(probes, features\) with the cube's 16 probes, "
                                         r"got shape \(15, 3\)"):
        compute_alignment(hand_cube(), ["cca"], log=io.StringIO(), probe_x=np.zeros((15, 3)))


# --------------------------------------------------------------------------- align parts


@pytest.mark.parametrize("groups", [
    [["cka_linear", "cosine_end_to_end"], ["rsa", "cca"]],
    [["cosine_end_to_end"], ["cca"], ["cka_linear", "rsa"]],
])
def test_merged_parts_equal_one_computation(groups):
    cube, (_, data, _) = tiny_linear_cube(), tiny_linear()
    metrics = ["cka_linear", "rsa", "cca", "cosine_end_to_end"]
    whole = compute_alignment(cube, metrics, log=io.StringIO(), probe_x=data["probe_x"].values)
    parts = [compute_alignment(cube, g, log=io.StringIO(), probe_x=data["probe_x"].values) for g in groups]
    merged = merge_metric_parts(parts[::-1], metrics)  # the order of the parts does not matter
    xr.testing.assert_identical(merged, whole)
    assert merged["metric"].values.tolist() == metrics
    with pytest.raises(ValueError, match="overlap"):
        merge_metric_parts(parts + parts[:1], metrics)


def test_merged_metric_parts_carry_the_chance():
    metrics = ["cka_linear", "rsa", "cosine_end_to_end"]
    kw = dict(log=io.StringIO(), chance_draws=4, task="linear_regression", base_seed=0)
    whole = compute_alignment(tiny_linear_cube(), metrics, **kw)
    parts = [compute_alignment(tiny_linear_cube(), g, **kw) for g in (["cosine_end_to_end", "rsa"], ["cka_linear"])]
    merged = merge_metric_parts(parts, metrics)
    xr.testing.assert_identical(merged, whole)
    assert {"chance", "chance_hi", "chance_note"} <= set(merged.data_vars)


# --------------------------------------------------------------------------- chance table, pair means, theory


def test_chance_table_is_the_mean_and_the_95th_percentile_of_the_draws():
    table = compute_alignment(hand_cube(), ["cka_linear"], log=io.StringIO())
    draws = np.arange(2 * 2 * 2 * 5, dtype=float).reshape(1, 2, 2, 2, 5)  # metric, layer, snr, n, draw
    out = chance_table(draws, ["cka_linear"], table)
    np.testing.assert_array_equal(out["chance"].values, draws.mean(-1))
    np.testing.assert_allclose(out["chance_hi"].values, draws[..., 0] + 3.8)  # 0.95 * (5 - 1) = 3.8 steps up
    assert out["chance"].attrs["draws"] == out["chance_hi"].attrs["draws"] == 5
    assert "(h + 1) / (K + 1)" in out["chance_hi"].attrs["description"] and "0.800" in out["chance_hi"].attrs["description"]
    e2e = chance_table(np.full((1, 2, 2, 2, 5), np.nan), ["cosine_end_to_end"], table.assign_coords(
        metric=["cosine_end_to_end"]))
    assert str(e2e["chance_note"].values[0]) == END_TO_END_REASON


def test_pair_mean_is_the_member_jackknife():
    table = compute_alignment(hand_cube(), ["cka_linear"], log=io.StringIO())
    values = table["alignment"].sel(metric="cka_linear", layer="hidden")
    mean, se = pair_mean(values)
    ia, ib = member_pairs(range(S))
    expected_mean, expected_se = jackknife_pair_mean(values.values, ia, ib, S)
    np.testing.assert_allclose(mean.values, expected_mean, rtol=1e-14)
    np.testing.assert_allclose(se.values, expected_se, rtol=1e-14)
    assert mean.dims == ("snr", "n")
    two = values.isel(pair=[0])  # members 10 and 11 only: a mean, no error
    mean2, se2 = pair_mean(two)
    np.testing.assert_array_equal(mean2.values, two.values[..., 0])
    assert np.isnan(se2.values).all()


def test_dense_theory_spans_the_grid_with_every_integer_near_d():
    table = xr.Dataset(coords={"metric": ["cka_linear", "rsa"], "snr": [1.0, 10.0], "n": [5, 200]},
                       attrs={"network": "linear", "widths": [40, 60, 1]})
    assert linear_input_dim(table) == 40 and linear_input_dim(table.assign_attrs(network="mlp")) is None
    dense = dense_linear_theory(table, points=20)
    ns = dense["n"].values
    assert ns.min() == 5 and ns.max() == 200 and set(range(30, 51)) <= set(ns.tolist())
    assert dense["metric"].values.tolist() == ["cka_linear"]  # rsa has no closed form
    np.testing.assert_allclose(dense.sel(metric="cka_linear", snr=10.0, n=45),
                               theory.linear_alignment(10.0, 45, 40, "cka_linear"))


# --------------------------------------------------------------------------- the device route


def _every_metric_with_chance(cube, **route):
    cfg, data, _ = tiny_linear()
    from alignlib.metrics.names import METRIC_NAMES

    return compute_alignment(cube, list(METRIC_NAMES), {"linear_predictivity": {"ridge": 1e-3}}, log=io.StringIO(),
                             probe_x=data["probe_x"].values, chance_draws=3, task="linear_regression", **route)


def _tiny_cube_with_diverged():
    cube = tiny_linear_cube().copy()
    diverged = np.zeros((cube.sizes["snr"], cube.sizes["n"], cube.sizes["seed"]), np.int8)
    diverged[1, 0, 2] = diverged[2, 1, 0] = 1
    cube["diverged"] = (("snr", "n", "seed"), diverged)
    return cube


def test_layer_blocks_on_the_device_give_the_per_point_values(monkeypatch):
    """The accelerator's route (each layer moved to the device once, every point computed on its slice),
    forced on the CPU, against the per-point NumPy route: every metric, chance draws, diverged members;
    also with the layer cut into slices of one SNR."""
    from alignlib.ensembles import alignment

    cube = _tiny_cube_with_diverged()
    numpy_route = _every_metric_with_chance(cube)
    device_route = _every_metric_with_chance(cube, device="cpu", device_blocks=True)
    xr.testing.assert_allclose(device_route, numpy_route, rtol=1e-12, atol=1e-12)
    xr.testing.assert_identical(device_route["alignment_note"], numpy_route["alignment_note"])
    monkeypatch.setattr(alignment, "DEVICE_BLOCK_BYTES", 1)  # one SNR at a time
    sliced = _every_metric_with_chance(cube, device="cpu", device_blocks=True)
    xr.testing.assert_allclose(sliced, numpy_route, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_alignment_on_cuda_equals_the_cpu():
    """With device cuda (layer blocks on the GPU): every metric and chance draw within 1e-10 of the CPU."""
    cube = _tiny_cube_with_diverged()
    cpu = _every_metric_with_chance(cube)
    cuda = _every_metric_with_chance(cube, device="cuda")
    xr.testing.assert_allclose(cuda, cpu, rtol=1e-10, atol=1e-10)
    xr.testing.assert_identical(cuda["alignment_note"], cpu["alignment_note"])
