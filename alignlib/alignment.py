"""From activation cubes to the alignment table of a task (``alignment.nc``).

``alignment(metric, layer, snr, n, pair)`` holds the metric for every pair of
distinct members; ``pair`` carries the coordinates ``seed_a`` and ``seed_b``.
Means over pairs are left to readers. ``cosine_end_to_end`` compares the
members' end-to-end maps, so it is stored at the last layer ('output') and is
NaN at the hidden layers.
"""

from __future__ import annotations

import sys
from itertools import combinations

import numpy as np
import xarray as xr

from . import __version__
from .cubes import layer_activations

END_TO_END_METRICS = ("cosine_end_to_end",)


def member_pairs(seeds) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j), i < j, of every pair of distinct members."""
    pairs = list(combinations(range(len(seeds)), 2))
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def compute_alignment(cube: xr.Dataset, metrics: list[str], metric_options: dict | None = None,
                      log=sys.stderr) -> xr.Dataset:
    """Every metric, layer and grid point of a task's cube, for all pairs of members."""
    from .metrics import pairwise  # heavy import kept local: alignlib.cubes users need no torch

    metric_options = metric_options or {}
    has_e2e = "end_to_end" in cube
    # end-to-end metrics need a linear network's end-to-end map; skip them elsewhere
    metrics = [m for m in metrics if has_e2e or m not in END_TO_END_METRICS]
    snrs, ns, seeds, layers = (cube[c].values for c in ("snr", "n", "seed", "layer"))
    ia, ib = member_pairs(seeds)
    values = np.full((len(metrics), len(layers), len(snrs), len(ns), len(ia)), np.nan)
    for m, metric in enumerate(metrics):
        options = metric_options.get(metric, {})
        for l, layer in enumerate(layers):
            if metric in END_TO_END_METRICS:
                if not has_e2e or l != len(layers) - 1:
                    continue
                reps = cube["end_to_end"]
            else:
                reps = layer_activations(cube, str(layer))
            for i, snr in enumerate(snrs):
                for j, n in enumerate(ns):
                    block = reps.sel(snr=snr, n=n).transpose("seed", ...).values.astype(np.float64)
                    try:
                        values[m, l, i, j] = pairwise(block, metric, **options)[ia, ib]
                    except ValueError as error:  # e.g. a dead (constant) layer: no value, say why
                        print(f"alignment: {metric} at layer {layer}, snr {snr:g}, n {n}: NaN ({error})",
                              file=log, flush=True)
        print(f"alignment: {metric} done", file=log, flush=True)
    ds = xr.Dataset(
        {"alignment": (("metric", "layer", "snr", "n", "pair"), values)},
        coords={
            "metric": list(metrics), "layer": [str(x) for x in layers], "snr": snrs, "n": ns,
            "pair": np.arange(len(ia)), "seed_a": ("pair", seeds[ia]), "seed_b": ("pair", seeds[ib]),
        },
    )
    for name in ("train_error", "test_error", "steps", "converged"):
        ds[name] = cube[name].transpose("snr", "n", "seed")
    ds.attrs.update(cube.attrs)
    ds.attrs["alignlib_version"] = __version__
    ds.attrs["alignment_note"] = (
        "alignment(metric, layer, snr, n, pair): larger = more aligned, 1 = identical; "
        "cosine_end_to_end is stored at the last layer only"
    )
    return ds


def pair_mean(alignment: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Mean over pairs and its standard error (std over pairs / sqrt(pairs))."""
    mean = alignment.mean("pair")
    sem = alignment.std("pair", ddof=1) / np.sqrt(alignment.sizes["pair"])
    return mean, sem


def primary_layer(ds: xr.Dataset, metric: str) -> str:
    """The layer a metric is plotted at: the last layer for end-to-end metrics, else the first hidden."""
    layers = [str(x) for x in ds["layer"].values]
    return layers[-1] if metric in END_TO_END_METRICS else layers[0]
