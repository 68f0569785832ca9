"""The power study's subsetting and aggregation (alignlib.claims.power) on hand-made alignment tables."""
import numpy as np
import pytest
import xarray as xr

from alignlib.ensembles.alignment import member_pairs
from alignlib.claims.power import claim2_power, interval_ratio, member_subset

NS = [10, 20, 40, 80, 160]


def table_with_dip(S: int, depth: float, sd: float = 0.02, seed: int = 0) -> xr.Dataset:
    """One SNR, a U in n with its minimum at n = 40 (the last interpolating n), member effects of size sd."""
    rng = np.random.default_rng(seed)
    ia, ib = member_pairs(range(S))
    curve = 0.8 - depth * np.array([0.0, 0.5, 1.0, 0.5, 0.0])
    member = rng.normal(0, sd, (len(NS), S))
    values = curve[:, None] + member[:, ia] + member[:, ib] + rng.normal(0, sd / 4, (len(NS), len(ia)))
    nf = np.where(np.array(NS)[:, None] <= 40, 0.0, 0.5) * np.ones((1, S))
    return xr.Dataset(
        {"alignment": (("metric", "layer", "snr", "n", "pair"), values[None, None, None]),
         "noise_fit": (("snr", "n", "seed"), nf[None]),
         "test_error": (("snr", "n", "seed"), np.ones((1, len(NS), S)))},
        coords={"metric": ["cka_linear"], "layer": ["hidden1"], "snr": [1.0], "n": NS, "seed": np.arange(S),
                "pair": np.arange(len(ia)), "seed_a": ("pair", ia), "seed_b": ("pair", ib)})


def test_member_subset_keeps_exactly_the_pairs_among_the_subset():
    table = table_with_dip(6, 0.2)
    sub = member_subset(table, [4, 1, 3])
    assert sub.sizes["pair"] == 3 and list(sub["seed"].values) == [1, 3, 4]
    got = {(int(a), int(b)) for a, b in zip(sub["seed_a"].values, sub["seed_b"].values)}
    assert got == {(1, 3), (1, 4), (3, 4)}
    original = table["alignment"].isel(pair=((table.seed_a == 3) & (table.seed_b == 4)).values)
    kept = sub["alignment"].isel(pair=((sub.seed_a == 3) & (sub.seed_b == 4)).values)
    np.testing.assert_array_equal(original.values, kept.values)


def test_power_rises_with_members_and_is_zero_without_a_dip():
    strong = claim2_power(table_with_dip(16, 0.08), "cka_linear", "hidden1", 0.01, [4, 16], reps=20)
    by_m = strong.set_index("members")
    assert by_m.loc[16, "subsets"] == 1 and by_m.loc[4, "subsets"] == 20
    assert by_m.loc[16, "holds"] == 1.0
    assert by_m.loc[4, "holds"] < by_m.loc[16, "holds"]
    assert by_m.loc[16, "threshold_low"] == 40
    flat = claim2_power(table_with_dip(16, 0.0), "cka_linear", "hidden1", 0.01, [8], reps=20)
    assert flat["holds"].iloc[0] <= 0.15  # no dip: claim 2 should (almost) never hold


def test_power_rejects_more_members_than_the_pilot():
    with pytest.raises(ValueError, match="exceeds the pilot's 6 members"):
        claim2_power(table_with_dip(6, 0.1), "cka_linear", "hidden1", 0.01, [8])


def test_interval_ratio():
    np.testing.assert_allclose(interval_ratio([10, 40], [40, 40]), [4.0, 1.0])
