"""Synthetic alignment tables with a known truth, for measuring the claim tests' error rates.

:func:`synthetic_panel` draws pair values with member-level structure: at a grid point
with true mean mu, the pair (a, b) gets mu + u_a + u_b + e_ab, u ~ N(0, member_sd^2) per
member (shared by all its pairs) and e ~ N(0, pair_sd^2) per pair; every grid point has
its own members. :func:`null_panel_from` turns a real panel into a null one with the
task's own member-level noise: each grid point's pairs are centred on one common mean and
the SNR labels are shuffled at every n. :func:`rejection_rates` runs claim 1 and claim 2
on many such panels: on null panels the rates are false-positive rates, on panels with a
known trend or dip they are powers.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .alignment import member_pairs
from .claims import Panel, increases_with_snr, minimum_near_threshold


def synthetic_panel(means: np.ndarray, S: int, rng: np.random.Generator, member_sd: float = 0.05,
                    pair_sd: float | None = None, snrs=None, ns=None) -> Panel:
    """A Panel with true pair means ``means`` (snr, n) and member-level noise (see module docstring)."""
    means = np.asarray(means, dtype=np.float64)
    pair_sd = member_sd if pair_sd is None else pair_sd
    ia, ib = member_pairs(range(S))
    u = rng.standard_normal(means.shape + (S,)) * member_sd
    e = rng.standard_normal(means.shape + (len(ia),)) * pair_sd
    values = means[..., None] + u[..., ia] + u[..., ib] + e
    snrs = np.geomspace(0.1, 100, means.shape[0]) if snrs is None else np.asarray(snrs, float)
    ns = np.arange(1, means.shape[1] + 1) * 10 if ns is None else np.asarray(ns)
    return Panel("synthetic", "hidden", values, snrs, ns, ia, ib, S)


def null_panel_from(p: Panel, rng: np.random.Generator) -> Panel:
    """The task's own noise around a flat curve, SNR labels shuffled at every n."""
    centred = p.values - np.nanmean(p.values, -1, keepdims=True) + np.nanmean(p.values)
    shuffled = np.stack([centred[rng.permutation(len(p.snrs)), j] for j in range(len(p.ns))], axis=1)
    return Panel(p.metric, p.layer, shuffled, p.snrs, p.ns, p.ia, p.ib, p.S)


def thresholds_at(snrs, ns, position: int) -> xr.Dataset:
    """A threshold table placing every SNR's threshold between grid positions ``position`` and ``position + 1``."""
    ns = np.asarray(ns)
    k = len(snrs)
    return xr.Dataset({"interpolation_threshold": ("snr", np.full(k, float(ns[position]))),
                       "first_non_interpolating_n": ("snr", np.full(k, float(ns[position + 1]))),
                       "interpolation_threshold_low": ("snr", np.full(k, float(ns[position]))),
                       "interpolation_threshold_high": ("snr", np.full(k, float(ns[position + 1])))},
                      coords={"snr": np.asarray(snrs, float)})


def claim1_positive(p: Panel, alpha: float = 0.05) -> bool:
    """Claim 1 called at some n: a significant rise (Holm across n)."""
    return any(r["call"] == "increases" for r in increases_with_snr(p, alpha))


def claim1_rises(p: Panel, alpha: float = 0.05) -> np.ndarray:
    """Per n: whether a significant rise was called."""
    return np.array([r["call"] == "increases" for r in increases_with_snr(p, alpha)])


def claim2_holds(p: Panel, thresholds: xr.Dataset, alpha: float = 0.05, n_boot: int = 200, seed: int = 0) -> np.ndarray:
    """Per SNR: whether claim 2 was called ``holds``."""
    return np.array([r["call"] == "holds" for r in minimum_near_threshold(p, thresholds, alpha, seed=seed,
                                                                           n_boot=n_boot)])


def rejection_rates(make_panel, test, reps: int, seed: int = 0) -> np.ndarray:
    """Mean over ``reps`` seeded panels of ``test(panel)`` (a bool or a bool array)."""
    rng = np.random.default_rng(seed)
    return np.mean([np.asarray(test(make_panel(rng)), dtype=float) for _ in range(reps)], axis=0)
