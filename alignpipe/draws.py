"""Independent data draws of a task (``data_draws: K``; issue 17 item 7).

With K = 1 (the default) a task has one data set: one training-input pool, one teacher (synthetic
data) or split (real data), one probe set, one test set and one set of OOD probes, and all its
members share them, so every inference is conditional on that draw. With K > 1 the task's grid
points get members nested in K independent data draws.

**Streams and files.** Draw k of task ``t`` is trained, extracted and aligned as an internal task
named ``t_draw<k>`` (k = 0 .. K-1) with the task's own settings, under ``results/t_draw<k>/``.
Every random stream of the pipeline is keyed by the task's name (``alignlib.seeding.stream``), so
the internal name keys all of a draw's randomness: its inputs, teacher or split, probes, test set
and OOD probes, and its members' noise, initialisation and chance permutations. A single member
(draw k, snr, n, seed s) is re-created alone as member (snr, n, s) of task ``t_draw<k>``, and no
stream of the default (K = 1) pipeline changes. (A draw index as an extra stream key would have
reached into every stream's call site; the name needs none of them changed.)

**The combined table.** :func:`combine_draws` stacks the draws' alignment tables into the task's
``results/t/alignment.nc``, the file every downstream rule reads, with the same variables and
dimensions as a single-draw table:

* ``seed`` lists all K x S members, labelled ``k * stride + s`` (``stride`` = 1 + the largest seed
  of any draw: S when seeds are 0 .. S-1), with coordinates ``draw(seed)`` (the member's draw) and
  ``seed_in_draw(seed)`` (its seed within the draw, the key of its streams);
* ``pair`` holds only pairs of distinct members of the same draw (members of different draws saw
  different probes, so no cross-draw pair exists), with ``seed_a``, ``seed_b`` in those labels and
  ``pair_draw(pair)``, the pair's draw (xarray allows one coordinate per name, and ``draw`` is the
  members'; ``pair_draw`` equals ``draw`` at ``seed_a`` and at ``seed_b``);
* member variables ``(snr, n, seed)`` (train_error, test_error, steps, converged, noise_fit,
  diverged) are concatenated over the draws;
* ``chance`` is the mean of the draws' chance levels (each the mean of the same number of shuffled
  draws, so this is the mean of all of them); ``chance_hi`` the largest of the draws' ``chance_hi``:
  a quantile of the pooled shuffled values (a mixture of the draws') lies between the smallest and
  the largest of the draws' quantiles, so the largest is an upper edge at least as high as the
  pooled one (the below-chance screen flags at least the cells each draw alone would);
* a cell (metric, layer, snr, n) that is excluded (all pairs NaN) in any draw is excluded in the
  combined table (NaN over all pairs, chance NaN), so a cell is either informative in every draw or
  NaN, as in a single-draw table; ``alignment_note`` and ``chance_note`` are the draws' notes,
  prefixed by their draw where they differ;
* ``theory`` and ``theory_given_data`` (the linear task) are the means over the draws: the closed
  form does not depend on the draw, and the mean of the draws' expectations given their own inputs,
  teacher and probes estimates the expectation over data draws;
* every other variable without a ``seed`` or ``pair`` dimension (the interpolation thresholds and
  test-error peaks each draw's align computed) is left out: those are task-level statistics, which
  the caller recomputes on the combined table (the combine rule: ``alignlib.stats.threshold.task_thresholds``);
* attributes: the first draw's, with ``task`` = the parent task, ``data_draws`` = K, ``draw_tasks``
  (the internal names, comma-separated); an attribute that differs between draws (e.g. the
  classification tasks' ``target_variance``) becomes the draws' mean if numeric, else the first
  draw's value, with its per-draw values in ``<name>_by_draw``; ``diverged_note`` is left to the
  caller (``alignlib.ensembles.divergence.exclusion_note`` on the combined table).

A task with ``refine`` refines one grid for all its draws: the refine checkpoint reads the coarse
members of every draw (:func:`stack_members`) and writes one refine.json that every draw follows.

Nothing here imports torch or snakemake (the Snakefile loads this module).
"""

from __future__ import annotations

import re

import numpy as np
import xarray as xr

from alignpipe.errors import ConfigError

DRAW_SEPARATOR = "_draw"

#: Per-grid-point variables combined by a mean over draws, and by their maximum.
MEAN_VARIABLES = ("chance", "theory", "theory_given_data")
MAX_VARIABLES = ("chance_hi",)
#: String variables: one note per (metric, layer) or per metric.
NOTE_VARIABLES = ("alignment_note", "chance_note")


def _config_error(message: str):

    return ConfigError(message)


def draw_task(task: str, k: int) -> str:
    """The internal task of draw ``k`` of ``task``: ``<task>_draw<k>``."""
    return f"{task}{DRAW_SEPARATOR}{int(k)}"


def data_draws_key(config: dict, task: str) -> str:
    """The config key a task's number of data draws comes from (its own, else the top-level one)."""
    return f"tasks.{task}.data_draws" if "data_draws" in config["tasks"][task] else "data_draws"


def data_draws(config: dict, task: str) -> int:
    """K, the task's number of independent data draws: ``tasks.<task>.data_draws``, else the top-level
    ``data_draws``, else 1. Raises ConfigError naming the key for anything but an integer >= 1."""
    key = data_draws_key(config, task)
    value = config["tasks"][task]["data_draws"] if key != "data_draws" else config.get("data_draws", 1)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise _config_error(f"invalid config key '{key}': {value!r} is not an integer >= 1 (the number of "
                            "independent data draws of the task: inputs, teacher or split, probes, test set)")
    return int(value)


def draw_tasks(config: dict, task: str) -> list[str]:
    """The tasks that train a task's members: itself (K = 1), else ``<task>_draw0`` .. ``<task>_draw<K-1>``."""
    k = data_draws(config, task)
    return [task] if k == 1 else [draw_task(task, i) for i in range(k)]


def multi_draw_tasks(config: dict) -> list[str]:
    """The tasks with K > 1 (their alignment.nc is combined from their draws')."""
    return [task for task in config["tasks"] if data_draws(config, task) > 1]


def _without_draws(cfg: dict) -> dict:
    """A task's settings as its (internal) tasks are trained with: without ``data_draws``, so an explicit
    ``data_draws: 1`` gives the very params (and files) of the default."""
    return cfg if "data_draws" not in cfg else {k: v for k, v in cfg.items() if k != "data_draws"}


def trained_tasks(config: dict) -> dict[str, dict]:
    """Every task that has its own data, models, cubes and alignment table, with its settings: a task
    with K = 1 itself, a task with K > 1 its K internal draw tasks (each the task's settings)."""
    out = {}
    for task, cfg in config["tasks"].items():
        for name in draw_tasks(config, task):
            out[name] = _without_draws(cfg)
    return out


def parent_task(config: dict, name: str) -> str:
    """The configured task a trained task belongs to (itself for a K = 1 task)."""
    if name in config["tasks"]:
        return name
    for task in multi_draw_tasks(config):
        if name in draw_tasks(config, task):
            return task
    raise KeyError(f"{name} is neither a configured task nor a data draw of one")


def task_pattern(names) -> str:
    """A regex matching exactly the given task names as a path component (a wildcard constraint)."""
    names = list(names)
    if not names:
        return "(?!x)x"  # matches nothing
    return "(?:" + "|".join(re.escape(n) for n in names) + ")(?![A-Za-z0-9_])"


def excluding_pattern(names, base: str = "[A-Za-z][A-Za-z0-9_]*") -> str:
    """``base`` except the given task names (a wildcard constraint for the rules they must not match)."""
    names = list(names)
    if not names:
        return base
    return "(?!" + task_pattern(names) + ")" + base


def check_draws(config: dict) -> None:
    """The data-draw checks a schema cannot express; ConfigError naming the keys. Every task's K is an
    integer >= 1; an internal draw task's name is not also a configured task; a task with K > 1 has no
    alignment during training (checkpoints are not combined over draws)."""
    for task in config["tasks"]:
        k = data_draws(config, task)
        if k == 1:
            continue
        key = data_draws_key(config, task)
        clash = [name for name in draw_tasks(config, task) if name in config["tasks"]]
        if clash:
            raise _config_error(f"invalid config key '{key}': task {task} with {k} data draws trains them as "
                                f"tasks {draw_tasks(config, task)}, but {clash} is also a configured task; rename it")
        own = "checkpoints" in config["tasks"][task]
        spec = config["tasks"][task]["checkpoints"] if own else config.get("checkpoints")
        if spec:
            where = f"tasks.{task}.checkpoints" if own else "checkpoints"
            raise _config_error(
                f"invalid config keys '{key}' and '{where}': alignment during training (checkpoints) is not "
                f"available for a task with several data draws (task {task}: {k}); set tasks.{task}.checkpoints: "
                f"null, or tasks.{task}.data_draws: 1")


# --------------------------------------------------------------------------- combining tables

def _seed_stride(seed_lists) -> int:
    values = [int(s) for seeds in seed_lists for s in np.asarray(seeds).tolist()]
    if any(s < 0 for s in values):
        raise ValueError(f"seed labels must be >= 0, got {min(values)}")
    return max(values, default=-1) + 1


def _member_labels(k: int, seeds, stride: int) -> np.ndarray:
    return k * stride + np.asarray(seeds, dtype=np.int64)


def stack_members(objects, seed_dim: str = "seed"):
    """Members of several draws (DataArrays or Datasets with a ``seed`` dimension, in draw order) as one
    object over all of them, labelled as :func:`combine_draws` labels them, with coordinates ``draw``
    and ``seed_in_draw``. One object is returned unchanged (no ``draw`` coordinate: a single draw)."""
    objects = list(objects)
    if not objects:
        raise ValueError("no draws to stack")
    if len(objects) == 1:
        return objects[0]
    stride = _seed_stride([o[seed_dim].values for o in objects])
    relabelled = []
    for k, obj in enumerate(objects):
        seeds = np.asarray(obj[seed_dim].values, dtype=np.int64)
        relabelled.append(obj.assign_coords({seed_dim: _member_labels(k, seeds, stride),
                                             "draw": (seed_dim, np.full(len(seeds), k, dtype=np.int64)),
                                             "seed_in_draw": (seed_dim, seeds)}))
    return xr.concat(relabelled, dim=seed_dim, join="exact", combine_attrs="drop_conflicts")


def _check_tables(tables: list[xr.Dataset]) -> None:
    for k, table in enumerate(tables):
        for name in ("alignment", "seed_a", "seed_b"):
            if name not in table.variables:
                raise ValueError(f"draw {k}'s table has no {name!r}: not an alignment table")
        if "seed" not in table.dims:
            raise ValueError(f"draw {k}'s table has no 'seed' dimension (its members' variables)")
        if "draw" in table.variables or "pair_draw" in table.variables:
            raise ValueError(f"draw {k}'s table already combines data draws (it has a 'draw' coordinate)")
        seeds = {int(s) for s in table["seed"].values}
        paired = {int(s) for s in table["seed_a"].values} | {int(s) for s in table["seed_b"].values}
        if not paired <= seeds:
            raise ValueError(f"draw {k}'s pairs name seeds {sorted(paired - seeds)} that are not its members")
    first = tables[0]
    for k, table in enumerate(tables[1:], start=1):
        for dim in ("metric", "layer", "snr", "n"):
            if dim not in first.coords and dim not in table.coords:
                continue
            a, b = np.asarray(first[dim].values), np.asarray(table[dim].values)
            if a.shape != b.shape or not (a == b).all():
                raise ValueError(f"draw {k}'s {dim} {b.tolist()} differ from draw 0's {a.tolist()}: the draws of a "
                                 "task must share one grid (metrics, layers, SNRs and n)")
        missing = set(first.data_vars) ^ set(table.data_vars)
        if missing:
            raise ValueError(f"draw {k}'s variables differ from draw 0's: {sorted(missing)}")


def _same(a, b) -> bool:
    try:
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return False
        if a.dtype.kind in "fc" and b.dtype.kind in "fc":
            return bool(np.array_equal(a, b, equal_nan=True))
        return bool((a == b).all())
    except (TypeError, ValueError):
        return False


def _combined_attrs(tables: list[xr.Dataset], task: str, names: list[str]) -> dict:
    attrs = dict(tables[0].attrs)
    for name in tables[0].attrs:
        values = [t.attrs.get(name) for t in tables]
        if all(_same(values[0], v) for v in values[1:]) or name == "task":
            continue
        if all(v is not None and np.asarray(v).dtype.kind in "fiu" and np.asarray(v).ndim == 0 for v in values):
            attrs[name] = float(np.mean([float(v) for v in values]))
            attrs[f"{name}_by_draw"] = np.asarray([float(v) for v in values])
        else:
            attrs[f"{name}_by_draw"] = " | ".join(f"draw {k}: {v}" for k, v in enumerate(values))
    attrs.pop("diverged_note", None)
    attrs.update(task=task, data_draws=len(tables), draw_tasks=", ".join(names))
    attrs["draws_definition"] = (
        f"{len(tables)} independent data draws (inputs, teacher or split, probes, test set, OOD probes), each "
        "trained as the internal task named in draw_tasks (its name keys every random stream); seed lists every "
        "member (draw(seed), seed_in_draw(seed): its draw and its seed there), pair only pairs of members of one "
        "draw (pair_draw(pair)); chance: mean over draws, chance_hi: largest over draws; theory: mean over draws "
        "(alignlib.draws)")
    return attrs


def _note(notes: list[str]) -> str:
    """One note from the draws' notes: the common one, else each draw's non-empty note with its draw."""
    if all(n == notes[0] for n in notes):
        return notes[0]
    return "; ".join(f"draw {k}: {n}" for k, n in enumerate(notes) if n)


def combine_draws(tables: list[xr.Dataset], task: str, names: list[str] | None = None) -> xr.Dataset:
    """The task's alignment table from its draws' tables (in draw order; module docstring for the
    layout). One table is returned unchanged. Raises ValueError when the draws do not share one grid,
    a table is not an alignment table, or one already combines draws."""
    tables = list(tables)
    if not tables:
        raise ValueError(f"task {task}: no draw tables to combine")
    if len(tables) == 1:
        return tables[0]
    _check_tables(tables)
    names = list(names) if names is not None else [str(t.attrs.get("task", f"draw{k}")) for k, t in enumerate(tables)]
    first = tables[0]
    stride = _seed_stride([t["seed"].values for t in tables])
    grid = ("metric", "layer", "snr", "n")
    # a cell that some draw excludes (all its pairs NaN) is excluded in every draw
    cell_dims = tuple(d for d in grid if d in first["alignment"].dims)
    excluded = None
    for table in tables:
        values = table["alignment"].transpose(*cell_dims, "pair").values
        dead = ~np.isfinite(values).any(-1) if values.shape[-1] else np.zeros(values.shape[:-1], bool)
        excluded = dead if excluded is None else excluded | dead
    pair_parts, seed_parts = [], []
    pair_offset = 0
    for k, table in enumerate(tables):
        seeds = np.asarray(table["seed"].values, dtype=np.int64)
        labels = _member_labels(k, seeds, stride)
        relabel = dict(zip(seeds.tolist(), labels.tolist()))
        pairs = table.sizes["pair"]
        pair_vars = [v for v in table.data_vars if "pair" in table[v].dims]
        part = table[pair_vars].drop_vars([c for c in table[pair_vars].coords if c not in ("pair", "seed_a", "seed_b")
                                           and c not in grid])
        part = part.assign_coords(
            pair=np.arange(pair_offset, pair_offset + pairs),
            seed_a=("pair", np.array([relabel[int(s)] for s in table["seed_a"].values], dtype=np.int64)),
            seed_b=("pair", np.array([relabel[int(s)] for s in table["seed_b"].values], dtype=np.int64)),
            pair_draw=("pair", np.full(pairs, k, dtype=np.int64)))
        pair_parts.append(part)
        pair_offset += pairs
        seed_vars = [v for v in table.data_vars if "seed" in table[v].dims and "pair" not in table[v].dims]
        seed_parts.append(table[seed_vars].assign_coords(
            seed=labels, draw=("seed", np.full(len(seeds), k, dtype=np.int64)), seed_in_draw=("seed", seeds)))
    out = xr.merge([xr.concat(pair_parts, dim="pair", join="exact", combine_attrs="override"),
                    xr.concat(seed_parts, dim="seed", join="exact", combine_attrs="override")],
                   join="exact", combine_attrs="override")
    if "alignment" in out and excluded.any():
        aligned = out["alignment"].transpose(*cell_dims, "pair")
        values = aligned.values.copy()
        values[excluded] = np.nan
        out["alignment"] = aligned.copy(data=values).transpose(*first["alignment"].dims)
    for name in first.data_vars:
        var = first[name]
        if "pair" in var.dims or "seed" in var.dims:
            continue
        if name in MEAN_VARIABLES or name in MAX_VARIABLES:
            stacked = np.stack([np.asarray(t[name].transpose(*var.dims).values, dtype=np.float64) for t in tables])
            with np.errstate(invalid="ignore"):
                value = stacked.mean(0) if name in MEAN_VARIABLES else stacked.max(0)
            if name.startswith("chance") and excluded.any() and var.dims == cell_dims:
                value[excluded] = np.nan  # chance is NaN wherever the cell is excluded
            out[name] = var.copy(data=value)
            how = "mean" if name in MEAN_VARIABLES else "largest"
            out[name].attrs["description"] = (var.attrs.get("description", "") + f"; the {how} over the "
                                              f"{len(tables)} data draws' values (alignlib.draws)").lstrip("; ")
        elif name in NOTE_VARIABLES:
            notes = np.stack([np.asarray(t[name].transpose(*var.dims).values).astype(str) for t in tables])
            flat = notes.reshape(len(tables), -1)
            combined = np.array([_note(list(flat[:, i])) for i in range(flat.shape[1])], dtype=object)
            out[name] = var.copy(data=combined.reshape(var.shape).astype(str))
        # anything else (thresholds, test-error peaks): a task-level statistic the caller recomputes
    for coord in grid:
        if coord in first.coords:
            out = out.assign_coords({coord: first[coord].values})
    out = out[[v for v in first.data_vars if v in out.data_vars]]  # the first table's order
    out.attrs = _combined_attrs(tables, task, names)
    out["seed_in_draw"].attrs["description"] = "the member's seed within its draw (the key of its random streams)"
    out["draw"].attrs["description"] = "the member's data draw (internal task draw_tasks[draw])"
    out["pair_draw"].attrs["description"] = "the data draw of both members of the pair"
    return out


def coarse_noise_fit(models: list[xr.Dataset]) -> xr.DataArray:
    """``noise_fit(snr, n, seed)`` of the refinement's coarse members from their model files (the refine
    job's inputs, draw by draw): concatenated over n within a draw (the files' ``task`` attribute names
    it), then over the draws' members (:func:`stack_members`; one draw: as it always was)."""
    groups: dict[str, list] = {}
    for model in models:
        groups.setdefault(str(model.attrs.get("task", "")), []).append(model["noise_fit"])
    if not groups:
        raise ValueError("no model files to read the coarse members from")
    per_draw = [xr.concat(parts, dim="n") for parts in groups.values()]
    ns = [sorted(int(n) for n in fit["n"].values) for fit in per_draw]
    if any(n != ns[0] for n in ns[1:]):
        raise ValueError(f"the draws' coarse models hold different n: {dict(zip(groups, ns))}")
    return stack_members([fit.sortby("n") for fit in per_draw]) if len(per_draw) > 1 else per_draw[0]
