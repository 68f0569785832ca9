"""Power of the claim-2 test: how often it decides, and how precisely it locates the minimum, with fewer members.

A pilot ensemble of S members is trained once; an ensemble of m < S members is then a random
subset of them (its pairs are the pilot's pairs between subset members). Every subset gets the
whole analysis of the pipeline (its own thresholds from its members' ``noise_fit``, the dip test,
the bootstrap interval of the minimising n), so the fraction of subsets where claim 2 ``holds``
estimates the power of an m-member experiment at the effect the pilot shows. Subsets overlap
(they are drawn from one pilot), so the estimate is a pilot estimate, not an independent
replication; with m = S there is a single subset: the pilot's own verdict.
"""

from __future__ import annotations

import numpy as np

from alignlib._extras import pipeline_import  # noqa: E402

pd = pipeline_import("pandas", __name__)
xr = pipeline_import("xarray", __name__)

from alignlib.claims.claim_tests import Criteria, minimum_near_threshold, panel


def member_subset(table: xr.Dataset, seeds) -> xr.Dataset:
    """The alignment table of the members ``seeds`` only: their per-member variables and the pairs among them."""
    seeds = np.asarray(seeds)
    keep = np.isin(table["seed_a"].values, seeds) & np.isin(table["seed_b"].values, seeds)
    sub = table.isel(pair=np.flatnonzero(keep)).sel(seed=np.sort(seeds))
    return sub.assign_coords(pair=np.arange(int(keep.sum())))


def claim2_cells(table: xr.Dataset, metric: str, layer: str, tol: float, n_boot: int = 400, seed: int = 0) -> pd.DataFrame:
    """Claim 2's per-SNR rows (alignlib.claims.claim_tests.minimum_near_threshold) on this table: the subset's own
    threshold, jointly bootstrapped with its curve."""
    crit = Criteria(tol=tol, n_boot=n_boot, seed=seed)
    return pd.DataFrame(minimum_near_threshold(panel(table, metric, layer), crit))


def interval_ratio(low, high) -> np.ndarray:
    """Width of an n interval as the ratio high / low (1 = a single grid point)."""
    return np.asarray(high, float) / np.asarray(low, float)


def claim2_power(table: xr.Dataset, metric: str, layer: str, tol: float, members: list[int], reps: int = 40,
                 seed: int = 0, n_boot: int = 400) -> pd.DataFrame:
    """Per (members m, SNR): the fraction of m-member subsets where claim 2 holds / fails / is undecided,
    the median ratio high/low of the minimising n's interval, and the median dip depth and threshold."""
    rng = np.random.default_rng(seed)
    seeds = table["seed"].values
    rows = []
    for m in members:
        if m > len(seeds):
            raise ValueError(f"members: {m} exceeds the pilot's {len(seeds)} members")
        draws = 1 if m == len(seeds) else reps
        cells = []
        for r in range(draws):
            subset = seeds if m == len(seeds) else rng.choice(seeds, size=m, replace=False)
            frame = claim2_cells(member_subset(table, subset), metric, layer, tol, n_boot=n_boot, seed=r)
            cells.append(frame.assign(draw=r))
        cells = pd.concat(cells, ignore_index=True)
        for snr, group in cells.groupby("snr"):
            rows.append(dict(
                metric=metric, layer=layer, members=m, snr=float(snr), subsets=len(group),
                holds=float((group.call == "holds").mean()), fails=float((group.call == "fails").mean()),
                undecided=float((group.call == "undecided").mean()),
                dip=float(np.nanmedian(group.estimate)),
                n_min=float(np.nanmedian(group.n_min)),
                n_min_ratio=float(np.nanmedian(interval_ratio(group.ci_low, group.ci_high))),
                r=float(np.nanmedian(group.r)), r_width=float(np.nanmedian(group.r_high - group.r_low)),
                threshold_low=float(np.nanmedian(group.threshold_low)),
                threshold_high=float(np.nanmedian(group.threshold_high)),
            ))
    return pd.DataFrame(rows)
