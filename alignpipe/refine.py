"""A sample-size grid that refines itself around the interpolation threshold.

With ``refine: {points: P, span: [a, b]}`` in a task's config, the pipeline first trains the
coarse grid (the task's ``n``), then its ``refine`` checkpoint reads the coarse members'
``noise_fit``, finds each SNR's interpolation threshold t (and its member-bootstrap interval,
:func:`alignlib.stats.threshold.threshold_with_interval`) and adds up to P sample sizes log-spaced
over [a x min t, b x max t] (min and max over the SNRs with a threshold), rounded to integers,
kept within [2, the training pool of the data set] and without the coarse grid's n. Those are
trained like any other n (every member keyed by (task, snr, n, seed)), so the refined grid is a
function of the config alone: a rerun adds nothing, and a run whose ``n`` lists the refined
grid outright gives the same numbers.

The record (:func:`refinement`) is a small JSON file per task; ``alignment.nc`` carries its
summary as attributes (:func:`refinement_attrs`). Nothing here imports torch.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from alignlib.stats.threshold import threshold_with_interval

MIN_N = 2  # the schema's smallest n


def refine_range(thresholds, span) -> tuple[float, float] | None:
    """[span[0] x the smallest, span[1] x the largest] finite threshold; None when no SNR has one."""
    values = np.asarray(thresholds, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    return float(span[0]) * float(values.min()), float(span[1]) * float(values.max())


def log_spaced_ns(low: float, high: float, points: int) -> list[int]:
    """``points`` sample sizes log-spaced over [low, high], rounded to integers, sorted, distinct
    (one point: the geometric mean)."""
    if points < 1 or not (0 < low <= high):
        return []
    values = [math.sqrt(low * high)] if points == 1 else np.geomspace(low, high, points)
    return sorted({int(np.rint(v)) for v in values})


def refined_ns(coarse_n, thresholds, points: int, span, n_max: int, n_min: int = MIN_N) -> list[int]:
    """The sample sizes the refinement adds to the coarse grid ``coarse_n``: ``points`` log-spaced
    over :func:`refine_range` of the ``thresholds`` (one per SNR, NaN where none), that range first
    clipped to [n_min, n_max] (``n_max``: the data set's training pool), then the coarse grid's n
    removed. Sorted; empty when no SNR has a threshold or the range lies outside [n_min, n_max]."""
    bounds = refine_range(thresholds, span)
    if bounds is None:
        return []
    low, high = max(bounds[0], n_min), min(bounds[1], n_max)
    if low > high:
        return []
    coarse = {int(n) for n in coarse_n}
    return [n for n in log_spaced_ns(low, high, points) if n_min <= n <= n_max and n not in coarse]


def _floats(values) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, dtype=float)]


def refinement(task: str, cfg: dict, noise_fit: xr.DataArray, pool: int) -> dict:
    """The refinement record of a task from its coarse pass: ``noise_fit(snr, n, seed)`` of the
    coarse grid's members and the size of the training pool (the largest n the data allows)."""
    settings = cfg["refine"]
    points, span = int(settings["points"]), [float(s) for s in settings["span"]]
    coarse = sorted(int(n) for n in cfg["n"])
    found = sorted(int(n) for n in noise_fit["n"].values)
    if found != coarse:
        raise ValueError(f"tasks.{task}: the coarse models hold n = {found}, the config's n = {coarse}")
    thresholds = threshold_with_interval(noise_fit, cfg["interpolation_tol"])
    t = thresholds["interpolation_threshold"].values
    bounds = refine_range(t, span)
    added = refined_ns(coarse, t, points, span, pool)
    return {
        "task": task,
        "points": points,
        "span": span,
        "interpolation_tol": float(cfg["interpolation_tol"]),
        "snr": [float(s) for s in thresholds["snr"].values],
        "coarse_threshold": _floats(t),
        "coarse_threshold_low": _floats(thresholds["interpolation_threshold_low"].values),
        "coarse_threshold_high": _floats(thresholds["interpolation_threshold_high"].values),
        "range": None if bounds is None else [max(bounds[0], MIN_N), min(bounds[1], pool)],
        "pool": int(pool),
        "coarse_n": coarse,
        "added_n": added,
        "n": sorted(set(coarse) | set(added)),
    }


def grid_n(coarse_n, added_n) -> list[int]:
    """The task's full grid: the coarse n and the refinement's, sorted."""
    return sorted({int(n) for n in coarse_n} | {int(n) for n in added_n})


def write_refinement(record: dict, path) -> None:
    """Write the record as JSON atomically (a temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=1)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_refinement(path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def refinement_attrs(record: dict) -> dict:
    """The attributes ``alignment.nc`` records about a refined grid (NetCDF reads a one-element
    list back as a scalar: use ``np.atleast_1d``)."""
    nan = (lambda values: np.array([np.nan if v is None else v for v in values], dtype=float))
    span = record["span"]
    where = ("no SNR had a threshold in the coarse grid, so nothing was added" if record["range"] is None else
             f"log-spaced over [{record['range'][0]:g}, {record['range'][1]:g}]")
    return {
        "n_refined": np.asarray(record["added_n"], dtype=np.int64),
        "n_coarse": np.asarray(record["coarse_n"], dtype=np.int64),
        "refine_coarse_threshold": nan(record["coarse_threshold"]),
        "refine_coarse_threshold_low": nan(record["coarse_threshold_low"]),
        "refine_coarse_threshold_high": nan(record["coarse_threshold_high"]),
        "refine_definition": (
            f"refine: points={record['points']}, span=[{span[0]:g}, {span[1]:g}]: up to {record['points']} "
            f"sample sizes {where} = span x the smallest and largest of the coarse pass's interpolation "
            f"thresholds over SNR (refine_coarse_threshold, one per snr; NaN: none), clipped to [2, "
            f"{record['pool']}] (the training pool), rounded, without the coarse grid's n (n_coarse); "
            "n_refined: the n added"),
    }
