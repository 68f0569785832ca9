"""From activation cubes to the alignment table of a task (``alignment.nc``).

``alignment(metric, layer, snr, n, pair)`` holds the metric for every pair of
distinct members; ``pair`` carries the coordinates ``seed_a`` and ``seed_b``.
Means over pairs are left to readers. ``cosine_end_to_end`` compares the
members' end-to-end maps, so it is stored at the last layer ('output') and is
NaN at the hidden layers.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from alignlib._extras import pipeline_import  # noqa: E402

xr = pipeline_import("xarray", __name__)

from alignlib import __version__
from alignlib import theory
from alignlib.names import END_TO_END_METRICS
from alignlib.stats.members import draw_members, nested_pair_mean, pair_index


def layer_activations(ds: xr.Dataset, layer: str) -> xr.DataArray:
    """The activations of one layer without the NaN padding: dims (..., probe, unit)."""
    width = int(ds["layer_width"].sel(layer=layer))
    return ds["activation"].sel(layer=layer).isel(unit=slice(0, width))


def member_pairs(seeds) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j), i < j, of every pair of distinct members."""
    pairs = list(combinations(range(len(seeds)), 2))
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def compute_alignment(cube: xr.Dataset, metrics: list[str], metric_options: dict | None = None,
                      device=None, log=sys.stderr, probe_x=None, chance_draws: int = 0,
                      base_seed: int = 0, task: str = "", device_blocks: bool | None = None) -> xr.Dataset:
    """Every metric, layer and grid point of a task's cube, for all pairs of members.

    ``device``: a torch device to compute on (e.g. CUDA); None (or the CPU) computes on the CPU with
    NumPy input. On an accelerator each layer's activations go to the device once, as one block of
    every grid point (in slices of SNRs of at most :data:`DEVICE_BLOCK_BYTES`), and every grid point's
    ``pairwise`` and chance draws run on its slice there; ``device_blocks`` = True forces that route on
    any device (the CPU included: it gives the same values), None: only on an accelerator.
    ``probe_x``: the probe inputs (probes, features) the cube was computed on (the task's
    ``data["probe_x"]``); with them the CCA family also detects layers that are invertible
    linear maps of the inputs.

    A cell (metric, layer, grid point) where the metric is uninformative by construction
    (``alignlib.metrics.preconditions``, checked on the stored values at the cube's storage dtype) is
    NaN; ``alignment_note(metric, layer)`` says where and why ("" when informative at every
    grid point), and one line per excluded (metric, layer) goes to ``log``. The CCA family
    gets ``rank_eps`` = the storage dtype's eps unless ``metric_options`` set it.

    ``chance_draws`` = K > 0 adds the permutation baseline (``alignlib.stats.chance``): K draws of the
    metric with one member's probes shuffled per (metric, layer, snr, n), seeded by
    (``base_seed``, ``task``, metric, layer, snr, n), stored as ``chance`` (their mean) and
    ``chance_hi`` (their 95th percentile), NaN wherever ``alignment`` is NaN for the whole cell,
    and ``chance_note(metric)`` ("" or why a metric has none). K = 0: no chance variables.
    """
    metric_options = metric_options or {}
    job = _AlignmentJob(cube=cube, device=device, log=log, draws=chance_draws, base_seed=base_seed, task=task,
                        device_blocks=device_blocks)
    job.probe_x = _probe_inputs(job, probe_x, metrics)
    # end-to-end metrics need a linear network's end-to-end map; skip them elsewhere
    metrics = [m for m in metrics if job.has_e2e or m not in END_TO_END_METRICS]
    grid = job.grid
    values = np.full((len(metrics), len(grid.layers), len(grid.snrs), len(grid.ns), len(grid.ia)), np.nan)
    notes = np.full((len(metrics), len(grid.layers)), "", dtype=object)
    chance = np.full((len(metrics), len(grid.layers), len(grid.snrs), len(grid.ns), chance_draws), np.nan)
    for m, metric in enumerate(metrics):
        align_metric(job, metric, metric_options.get(metric, {}), values[m], chance[m], notes[m])
    return _alignment_dataset(cube, metrics, grid, values, notes, chance if chance_draws else None)


# The start of an alignment_note for a grid point where the metric raised an error.
_RAISED = "the metric raised an error"

#: on an accelerator, the most bytes of a layer's activations moved to the device at once
DEVICE_BLOCK_BYTES = 2**30


@dataclass(frozen=True)
class MemberGrid:
    """A cube's axes, its pairs of members (``member_pairs``) and the members kept (not diverged)."""

    snrs: np.ndarray
    ns: np.ndarray
    seeds: np.ndarray
    layers: np.ndarray
    ia: np.ndarray
    ib: np.ndarray
    kept: np.ndarray | None  # (snr, n, seed) bool; None: every member

    @classmethod
    def of(cls, cube: xr.Dataset) -> "MemberGrid":
        snrs, ns, seeds, layers = (cube[c].values for c in ("snr", "n", "seed", "layer"))
        return cls(snrs, ns, seeds, layers, *member_pairs(seeds), _kept_members(cube))

    def keep(self, i: int, j: int):
        """(seed,) bool: the members of grid point (i, j) that count; None: all of them."""
        return None if self.kept is None else self.kept[i, j]


@dataclass
class _AlignmentJob:
    """One compute_alignment call: the cube, what every cell shares, and the preconditions checked so far."""

    cube: xr.Dataset
    device: object
    log: object
    draws: int
    base_seed: int
    task: str
    # (layer, snr, n, check) -> reason or None, shared by the metrics with one check
    checked: dict = field(default_factory=dict)
    probe_x: np.ndarray | None = None  # the probe inputs, as _probe_inputs prepares them
    device_blocks: bool | None = None  # layer blocks on the device (None: on an accelerator)

    def __post_init__(self):
        import torch  # heavy imports kept local: readers of alignment tables (figures, report) need no torch

        from alignlib.metrics import METRICS, UninformativeWarning, pairwise, preconditions
        from alignlib.stats import chance

        self.torch, self.metrics, self.pairwise, self.preconditions, self.chance = (
            torch, METRICS, pairwise, preconditions, chance)
        self.uninformative = UninformativeWarning
        self.grid = MemberGrid.of(self.cube)
        self.storage = self.cube["activation"].dtype
        self.has_e2e = "end_to_end" in self.cube
        if self.device_blocks is None:
            self.device_blocks = self.device is not None and torch.device(self.device).type != "cpu"
        if self.device_blocks and self.device is None:
            self.device = "cpu"

    def blocks(self, reps: xr.DataArray):
        """Yield (i0, host, device): the layer's values (snr, n, seed, ...) as float64, SNRs i0 on, on the
        host (NumPy) and, with ``device_blocks``, the same on the device (one transfer per slice of SNRs
        of at most DEVICE_BLOCK_BYTES; else None)."""
        host = reps.transpose("snr", "n", "seed", ...).values.astype(np.float64)
        if not self.device_blocks:
            yield 0, host, None
            return
        per_snr = max(1, host[:1].nbytes)
        step = max(1, DEVICE_BLOCK_BYTES // per_snr)
        for i0 in range(0, host.shape[0], step):
            yield i0, host[i0:i0 + step], self.torch.as_tensor(host[i0:i0 + step], device=self.device)

    def say(self, text: str) -> None:
        print(text, file=self.log, flush=True)


def _probe_inputs(job: _AlignmentJob, probe_x, metrics: list[str]):
    """``probe_x`` checked against the job's cube (None stays None); its SVD once per task for the
    CCA family."""
    cube = job.cube
    if probe_x is None:
        return None
    probe_x = np.asarray(probe_x)
    if probe_x.ndim != 2 or probe_x.shape[0] != cube.sizes["probe"]:
        raise ValueError(f"probe_x must be (probes, features) with the cube's {cube.sizes['probe']} "
                         f"probes, got shape {probe_x.shape}")
    if any(m in job.preconditions.CCA_FAMILY for m in metrics):
        probe_x = job.preconditions.probe_space(probe_x)  # its SVD once per task, not per grid point
    return probe_x


def metric_settings(job: _AlignmentJob, metric: str, options: dict) -> tuple[dict, object]:
    """(the metric's options, its precondition check key or None): ``rank_eps`` = the storage dtype's
    eps where the metric takes one and ``options`` leave it unset."""
    options = dict(options)
    if "rank_eps" in job.metrics[metric].options and "rank_eps" not in options:
        options["rank_eps"] = job.preconditions.storage_eps(job.storage)
    return options, None if metric in END_TO_END_METRICS else job.preconditions.check_key(metric, options)


def align_metric(job: _AlignmentJob, metric: str, options: dict, values: np.ndarray, chance: np.ndarray,
                 notes: np.ndarray) -> None:
    """Fill one metric's ``values`` (layer, snr, n, pair), ``chance`` (layer, snr, n, draw) and
    ``notes`` (layer,) in place, layer by layer."""
    options, key = metric_settings(job, metric, options)
    layers = job.grid.layers
    for l, layer in enumerate(layers):
        if metric in END_TO_END_METRICS:
            if not job.has_e2e or l != len(layers) - 1:
                continue  # not computed there by design (see the alignment_note attribute), not excluded
            reps = job.cube["end_to_end"]
        else:
            reps = layer_activations(job.cube, str(layer))
        excluded = align_layer(job, metric, options, key, l, reps, values[l], chance[l])
        if excluded:
            notes[l] = _note(excluded, len(job.grid.snrs) * len(job.grid.ns))
            job.say(f"alignment: {metric} at layer {layer}: {notes[l]}")
    job.say(f"alignment: {metric} done")


def align_layer(job: _AlignmentJob, metric: str, options: dict, key, l: int, reps: xr.DataArray,
                values: np.ndarray, chance: np.ndarray) -> dict[str, int]:
    """Fill one layer's ``values`` (snr, n, pair) and ``chance`` (snr, n, draw) in place; returns
    {reason: grid points} of the points left NaN (the first error's text for every error).

    The layer's values are read (and, on an accelerator, moved to the device) once for all its grid
    points (:meth:`_AlignmentJob.blocks`)."""
    excluded: dict[str, int] = {}
    for i0, host, device in job.blocks(reps):
        for di in range(host.shape[0]):
            i = i0 + di
            for j in range(len(job.grid.ns)):
                reason = align_point(job, metric, options, key, (l, i, j), host[di, j], values[i, j], chance[i, j],
                                     None if device is None else device[di, j])
                if reason is not None and reason.startswith(_RAISED):  # counted under the first error's text
                    reason = next((r for r in excluded if r.startswith(_RAISED)), reason)
                if reason is not None:
                    excluded[reason] = excluded.get(reason, 0) + 1
    return excluded


def align_point(job: _AlignmentJob, metric: str, options: dict, key, where: tuple[int, int, int],
                block: np.ndarray, values: np.ndarray, chance: np.ndarray, on_device=None) -> str | None:
    """One grid point (layer l, snr i, n j) of members ``block`` (seed, ...; float64): its pairs' values and
    chance draws, in place (computed on ``on_device``, the same block as a device tensor, when given).
    Returns why it is NaN (a failed precondition, or the metric raised an error), or None."""
    l, i, j = where
    layer, snr, n = job.grid.layers[l], job.grid.snrs[i], job.grid.ns[j]
    keep = job.grid.keep(i, j)
    if key is not None:
        reason = point_precondition(job, metric, options, key, where, block, keep)
        if reason is not None:
            return reason
    if on_device is not None:
        block = on_device
    try:
        with warnings.catch_warnings():
            # Deliberately silent: the table flags uninformative cells itself (NaN plus alignment_note,
            # from alignlib.metrics.preconditions) and stores the chance level next to every value; the
            # library's per-call UninformativeWarning would repeat that once per grid point.
            warnings.simplefilter("ignore", job.uninformative)
            values[:] = _kept_pairs(job.pairwise, block, metric, options, job.grid.ia, job.grid.ib, keep)
    except ValueError as error:  # e.g. a dead (constant) layer: no value, say why
        job.say(f"alignment: {metric} at layer {layer}, snr {snr:g}, n {n}: NaN ({error})")
        return f"{_RAISED} (first: {error})"
    if job.draws and metric not in END_TO_END_METRICS:  # the cell's permutation baseline
        point_chance(job, metric, options, (str(layer), snr, n), block, keep, chance)
    return None


def point_precondition(job: _AlignmentJob, metric: str, options: dict, key, where, block, keep) -> str | None:
    """Why the metric is uninformative at this point by construction (None: it is not), checked once
    per (layer, snr, n, check) on the kept members and shared by the metrics with the same check."""
    if (*where, key) not in job.checked:
        members = block if keep is None else block[keep]
        job.checked[(*where, key)] = (job.preconditions.uninformative_reason(
            metric, members, job.probe_x, job.storage, options) if len(members) >= 2 else None)
    return job.checked[(*where, key)]


def point_chance(job: _AlignmentJob, metric: str, options: dict, point: tuple, block, keep,
                 chance: np.ndarray) -> None:
    """The point's chance draws into ``chance`` (draw,); left NaN, and said, when the metric raises."""
    layer, snr, n = point
    seed = job.chance.ChanceKey(base_seed=job.base_seed, task=job.task, metric=metric, layer=layer, snr=snr, n=n)
    try:
        chance[:] = job.chance.chance_draws(block, seed, job.draws, options=options, keep=keep)
    except ValueError as error:  # left NaN, said once per cell
        job.say(f"alignment: chance of {metric} at layer {layer}, snr {snr:g}, n {n}: NaN ({error})")


def _alignment_dataset(cube: xr.Dataset, metrics: list[str], grid: MemberGrid, values: np.ndarray,
                       notes: np.ndarray, chance: np.ndarray | None) -> xr.Dataset:
    """The alignment table from the computed arrays, with the cube's member records and attributes."""
    ds = xr.Dataset(
        {"alignment": (("metric", "layer", "snr", "n", "pair"), values),
         "alignment_note": (("metric", "layer"), notes.astype(str))},
        coords={
            "metric": list(metrics), "layer": [str(x) for x in grid.layers], "snr": grid.snrs, "n": grid.ns,
            "pair": np.arange(len(grid.ia)), "seed_a": ("pair", grid.seeds[grid.ia]),
            "seed_b": ("pair", grid.seeds[grid.ib]),
        },
    )
    if chance is not None:
        ds = ds.merge(chance_table(chance, metrics, ds))
    for name in ("train_error", "test_error", "steps", "converged", "noise_fit", "diverged"):
        if name in cube:
            ds[name] = cube[name].transpose("snr", "n", "seed")
    ds.attrs.update(cube.attrs)
    ds.attrs["alignlib_version"] = __version__
    ds.attrs["alignment_note"] = (
        "alignment(metric, layer, snr, n, pair): larger = more aligned, 1 = identical; "
        "cosine_end_to_end is stored at the last layer only"
    )
    return ds


def chance_table(draws: np.ndarray, metrics: list[str], table: xr.Dataset) -> xr.Dataset:
    """``chance``, ``chance_hi`` (metric, layer, snr, n) and ``chance_note(metric)`` from the draws
    (metric, layer, snr, n, draw) of ``compute_alignment``, on ``table``'s coordinates."""
    from alignlib.stats.chance import CHANCE_QUANTILE, chance_reason, summarise

    mean, hi = summarise(draws)
    dims = ("metric", "layer", "snr", "n")
    coords = {d: table[d] for d in dims}
    out = xr.Dataset({"chance": (dims, mean), "chance_hi": (dims, hi),
                      "chance_note": (("metric",), np.array([chance_reason(m) for m in metrics], dtype=object).astype(str))},
                     coords=coords)
    k = draws.shape[-1]
    out["chance"].attrs["description"] = (
        f"permutation baseline: mean over {k} draws of the metric between two members of the grid "
        "point with one member's probe order shuffled (alignlib.chance; draws seeded by task, metric, "
        "layer, snr, n); NaN where the cell is excluded (alignment_note) or the metric has no chance "
        "level (chance_note)")
    h = CHANCE_QUANTILE * (k - 1)
    out["chance_hi"].attrs["description"] = (
        f"numpy's interpolated {round(100 * CHANCE_QUANTILE)}th percentile of the same {k} single-pair draws: "
        f"a fresh pair of independent members falls at or below it with probability {(h + 1) / (k + 1):.3f} "
        "((h + 1) / (K + 1), h = 0.95 (K - 1)), not 0.95 unless K is large; the pair mean's own null is "
        "narrower, so 'mean alignment <= chance_hi' (verdicts: below_chance) is a screen, not a calibrated test")
    out["chance"].attrs["draws"] = out["chance_hi"].attrs["draws"] = k
    return out


def _note(excluded: dict[str, int], total: int) -> str:
    """"NaN at k/total grid points: reason" (several reasons: each with its count)."""
    count = sum(excluded.values())
    if len(excluded) == 1:
        return f"NaN at {count}/{total} grid points: {next(iter(excluded))}"
    return f"NaN at {count}/{total} grid points: " + "; ".join(f"{r} ({c})" for r, c in excluded.items())


def _kept_members(cube: xr.Dataset):
    """(snr, n, seed) bool: members that did not diverge in training (None: no divergence recorded)."""
    if "diverged" not in cube or not bool(cube["diverged"].any()):
        return None
    return ~cube["diverged"].transpose("snr", "n", "seed").values.astype(bool)


def _kept_pairs(pairwise, block, metric, options, ia, ib, keep) -> np.ndarray:
    """The metric for the pairs (ia, ib) of ``block``'s members; NaN for a pair with a member not in ``keep``."""
    if keep is None or keep.all():
        return pairwise(block, metric, **options)[ia, ib]
    out = np.full(len(ia), np.nan)
    index = np.flatnonzero(keep)
    if len(index) >= 2:
        position = np.full(len(keep), -1)
        position[index] = np.arange(len(index))
        both = keep[ia] & keep[ib]
        matrix = pairwise(block[index.tolist()], metric, **options)
        out[both] = matrix[position[ia[both]], position[ib[both]]]
    return out


def merge_metric_parts(parts: list[xr.Dataset], metrics: list[str]) -> xr.Dataset:
    """The table ``compute_alignment(cube, metrics)`` from the tables of groups of those metrics.

    ``parts``: ``compute_alignment(cube, group)`` for groups that together hold every metric
    (the pipeline's align_part jobs). A metric's values and its ``alignment_note`` depend on
    that metric alone, so the parts stacked along ``metric`` in the order of ``metrics`` are the
    table one job would have computed; everything else must agree between the parts.
    """
    # metric names as objects while stacking: fixed-width strings would be cut to the first part's width
    parts = [part.assign_coords(metric=np.asarray(part["metric"].values, dtype=object)) for part in parts]
    merged = xr.concat(parts, dim="metric", data_vars="minimal", coords="minimal", compat="override",
                       join="exact", combine_attrs="override")
    present = [str(m) for m in merged["metric"].values]
    if len(set(present)) != len(present):
        raise ValueError(f"align parts overlap: metrics {present}")
    order = [m for m in metrics if m in present]
    merged = merged.sel(metric=order).assign_coords(metric=order)
    for name in ("alignment_note", "chance_note"):
        if name in merged:
            merged[name] = merged[name].astype(str)
    return merged


def pair_mean(alignment: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Mean over pairs and its standard error from the delete-one-member jackknife.

    Pairs share members, so the pair standard deviation / sqrt(#pairs) is too small; the
    jackknife resamples members, the unit of replication (alignlib.stats.members); with several data
    draws (coordinate ``pair_draw``) the error is the two-stage one (alignlib.stats.members.nested_pair_mean).
    With fewer than 3 members (per draw) the error is NaN.
    """
    seeds = np.union1d(alignment["seed_a"].values, alignment["seed_b"].values)
    ia, ib, S = pair_index(alignment["seed_a"].values, alignment["seed_b"].values, seeds)
    draw = None  # several data draws (alignpipe.draws): the two-stage error, members nested in draws
    if "pair_draw" in alignment.coords:
        draw = np.empty(S, dtype=int)
        draw[ia], draw[ib] = alignment["pair_draw"].values, alignment["pair_draw"].values
    moved = alignment.transpose(..., "pair")
    dims = moved.dims[:-1]
    coords = {k: v for k, v in moved.coords.items() if "pair" not in v.dims}
    if S // len(draw_members(draw, S)) < 3:
        mean, se = moved.values.mean(-1), np.full(moved.shape[:-1], np.nan)
    else:
        mean, se = nested_pair_mean(moved.values, ia, ib, S, draw)
    return xr.DataArray(mean, coords=coords, dims=dims), xr.DataArray(se, coords=coords, dims=dims)


def primary_layer(ds: xr.Dataset, metric: str) -> str:
    """The layer a metric is plotted at: the last layer for end-to-end metrics, else the first hidden."""
    layers = [str(x) for x in ds["layer"].values]
    return layers[-1] if metric in END_TO_END_METRICS else layers[0]


THEORY_METRICS = ("cosine_end_to_end", "cka_linear")


def linear_input_dim(table: xr.Dataset) -> int | None:
    """d, the interpolation threshold of a linear network (None for other networks)."""
    if table.attrs.get("network") != "linear":
        return None
    return int(np.atleast_1d(table.attrs["widths"])[0])


def linear_theory(table: xr.Dataset, data: xr.Dataset) -> xr.Dataset:
    """``theory(metric, snr, n)``: the closed form, and ``theory_given_data(metric, snr, n)``: the exact
    expectation over the members' noise given the task's own training inputs, teacher and probes."""
    snrs, ns = table["snr"].values, table["n"].values
    d = data.sizes["feature"]
    metrics = [m for m in THEORY_METRICS if m in table["metric"].values]
    closed = np.stack([theory.linear_alignment(snrs[:, None], ns[None, :], d, m) for m in metrics])
    given = np.full_like(closed, np.nan)
    teacher, probes = data["teacher"].values, data["probe_x"].values
    for k, metric in enumerate(metrics):
        for j, n in enumerate(ns):
            x = data["train_x"].values[:n]
            given[k, :, j] = [theory.expected_alignment_given_X(
                x, teacher, s, metric, probes=probes if metric == "cka_linear" else None) for s in snrs]
    coords = {"metric": metrics, "snr": snrs, "n": ns}
    out = xr.Dataset({"theory": (("metric", "snr", "n"), closed),
                      "theory_given_data": (("metric", "snr", "n"), given)}, coords=coords)
    out["theory"].attrs["description"] = ("closed form for the minimum-norm least-squares members "
                                          "(alignlib.theory.linear_alignment, see docs/theory.md)")
    out["theory_given_data"].attrs["description"] = ("exact expectation over the two members' noise given "
                                                     "this task's training inputs, teacher and probes")
    # on the table's own metric axis (NaN where a metric has no closed form), so merging keeps its order
    return out.reindex(metric=table["metric"].values)


def dense_linear_theory(table: xr.Dataset, points: int = 160) -> xr.DataArray:
    """The closed form on a dense integer n grid spanning the table's n, for drawing smooth lines."""
    d = linear_input_dim(table)
    ns = table["n"].values
    dense = np.unique(np.round(np.geomspace(ns.min(), ns.max(), points)).astype(int))
    dense = np.union1d(dense, np.arange(max(ns.min(), d - 10), min(ns.max(), d + 10) + 1))
    snrs = table["snr"].values
    metrics = [m for m in THEORY_METRICS if m in table["metric"].values]
    values = np.stack([theory.linear_alignment(snrs[:, None], dense[None, :], d, m) for m in metrics])
    return xr.DataArray(values, coords={"metric": metrics, "snr": snrs, "n": dense}, dims=("metric", "snr", "n"))
