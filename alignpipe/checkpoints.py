"""Alignment during training: members' weights at training checkpoints, their activations, alignment
per checkpoint, the first-epoch fraction and its figure (issue 13, item 3).

The members of a task are reproducible from their seeds (alignlib.ensembles.builder.member_init and
member_training_set), so the checkpoint pass re-trains the members at a few sample sizes with
``train_ensemble(checkpoints=...)`` instead of storing weights during the main run; their final
weights are the main run's.

Config (``checkpoints:`` at the top level, for every task, or per task, which wins; null = off):
``at`` sorted distinct counts >= 0, ``unit`` (auto | epoch | step: auto = epoch with minibatch
training, step with full batches, where one epoch is one step), ``n`` (a list of the task's grid
n, or auto: see :func:`auto_n`), ``metrics`` (recorded besides the task's primary metric).

Files: ``results/{task}/checkpoints/activations.nc`` (a cube with a ``step`` axis, plus the
final weights' activations) and ``results/{task}/alignment_training.nc`` with
``alignment(metric, layer, step, snr, n, pair)`` and ``final_alignment(metric, layer, snr, n, pair)``.
The ``step`` coordinate holds the checkpoints in the config's unit (attribute ``step_unit``);
``steps_taken(step, n)`` the optimizer steps they are, ``epoch_steps(n)`` the steps of one epoch.

No torch import at module level: the Snakefile reads the settings from here.
"""

from __future__ import annotations

import sys

import numpy as np
import xarray as xr

DEFAULT_AT = [0, 1, 3, 10, 30, 100, 300, 1000]
UNITS = ("auto", "epoch", "step")


def _key(task: str, scope: str, name: str) -> str:
    return f"{scope}.{name}" if scope == "checkpoints" else f"tasks.{task}.checkpoints.{name}"


def auto_n(grid) -> list[int]:
    """Three n of a grid: those at the middle of its lower, middle and upper thirds (positions
    (len - 1) x 1/6, 1/2, 5/6 of the sorted grid, rounded); fewer when the grid is shorter."""
    ns = sorted(int(n) for n in grid)
    picks = [ns[int(np.floor((len(ns) - 1) * q + 0.5))] for q in (1 / 6, 1 / 2, 5 / 6)]  # halves round up
    return sorted(set(picks))


def checkpoint_settings(config: dict, task: str) -> dict | None:
    """The resolved checkpoint settings of a task, or None when checkpoints are off.

    A task's own ``checkpoints`` key wins over the top-level one (a task may set null to opt
    out). Returns {at, unit, n, metrics}; raises ValueError naming the key for a bad value.
    """
    task_cfg = config["tasks"][task]
    scope = f"tasks.{task}.checkpoints" if "checkpoints" in task_cfg else "checkpoints"
    spec = task_cfg["checkpoints"] if "checkpoints" in task_cfg else config.get("checkpoints")
    if not spec:
        return None
    at = list(spec.get("at", DEFAULT_AT))
    if not at or any(int(a) != a or a < 0 for a in at) or any(b <= a for a, b in zip(at, at[1:])):
        raise ValueError(f"invalid config key '{_key(task, scope, 'at')}': {at} must be sorted, distinct "
                         "integers >= 0")
    unit = spec.get("unit", "auto")
    if unit not in UNITS:
        raise ValueError(f"invalid config key '{_key(task, scope, 'unit')}': {unit!r}; allowed: {list(UNITS)}")
    n = spec.get("n", "auto")
    if n == "auto":
        n = auto_n(task_cfg["n"])
    else:
        outside = [int(v) for v in n if int(v) not in {int(g) for g in task_cfg["n"]}]
        if outside or not n:
            raise ValueError(f"invalid config key '{_key(task, scope, 'n')}': {list(n)}; every n must be in "
                             f"tasks.{task}.n {list(task_cfg['n'])} (or say auto)")
        n = sorted({int(v) for v in n})
    metrics = list(spec.get("metrics") or [])
    from alignpipe.config import KNOWN_METRICS

    unknown = [m for m in metrics if m not in KNOWN_METRICS]
    if unknown:
        raise ValueError(f"invalid config key '{_key(task, scope, 'metrics')}': unknown metric(s) {unknown}; "
                         f"known: {list(KNOWN_METRICS)}")
    return {"at": [int(a) for a in at], "unit": unit, "n": n, "metrics": metrics}


def all_checkpoint_settings(config: dict) -> dict:
    """Task -> its resolved settings (None where checkpoints are off); raises ValueError naming the key."""
    return {task: checkpoint_settings(config, task) for task in config["tasks"]}


def checkpoint_targets(settings: dict, results: str) -> list[str]:
    """The files rule all asks for: per task with checkpoints, its training figure and summary."""
    return [path for task, s in settings.items() if s
            for path in (f"{results}/figures/{task}_alignment_training.png", f"{results}/{task}/training_summary.csv")]


def settings_of(settings: dict, task: str) -> dict:
    """A task's settings for its checkpoint jobs; ValueError when it has none."""
    if not settings.get(task):
        raise ValueError(f"task {task} has no checkpoints (set the config key checkpoints or "
                         f"tasks.{task}.checkpoints)")
    return settings[task]


def checkpoint_metrics(task_cfg: dict, settings: dict) -> list[str]:
    """The task's primary metric (its ``primary_metric``, else the end-to-end cosine for a linear
    network, else linear CKA; as alignlib.claims.verdicts.primary_metric) and then the settings' metrics."""
    primary = task_cfg.get("primary_metric") or (
        "cosine_end_to_end" if task_cfg["network"]["kind"] == "linear" else "cka_linear")
    return list(dict.fromkeys([primary, *settings["metrics"]]))


def resolved_unit(unit: str, batch_size) -> str:
    """auto -> epoch with minibatch training, else step (one full-batch step is one epoch)."""
    if unit != "auto":
        return unit
    return "epoch" if batch_size is not None else "step"


# --- training and extraction -------------------------------------------------------------------

def _models(params, snrs, seeds, n: int, extra: dict | None = None) -> xr.Dataset:
    """A model file's layout (alignlib.ensembles.builder.train_grid_n) for weights of members ordered
    [(snr, seed) for snr in snrs for seed in seeds] at one n."""
    shape = (len(snrs), len(seeds))
    variables = {}
    for i, p in enumerate(params):
        p = p.double().cpu().numpy().reshape(shape + tuple(p.shape[1:]))
        variables[f"param{i}"] = (("snr", "seed") + tuple(f"param{i}_axis{j}" for j in range(p.ndim - 2)), p)
    for name, values in (extra or {}).items():
        variables[name] = (("snr", "seed"), np.asarray(values).reshape(shape))
    return xr.Dataset(variables, coords={"snr": list(snrs), "seed": list(seeds)}).expand_dims(n=[int(n)])


def checkpoint_activations(task: str, cfg: dict, data: xr.Dataset, settings: dict, device,
                           log=sys.stderr, storage_dtype=np.float32) -> xr.Dataset:
    """Re-train every (snr, seed) member at each of ``settings['n']`` with checkpoints recorded and
    return their activations on the probes: ``activation(step, snr, n, seed, layer, probe, unit)``
    at the checkpoints and ``final_activation(snr, n, seed, layer, probe, unit)`` of the final
    weights (linear networks also ``end_to_end`` / ``final_end_to_end``), with ``steps_taken(step,
    n)``, ``epoch_steps(n)`` and the final ``steps``, ``converged``, ``diverged`` per member."""
    from alignlib.ensembles.builder import extract_activations, model_attrs, train_members
    from alignlib.ensembles.training import steps_per_epoch

    snrs, seeds = [float(s) for s in cfg["snr"]], list(range(cfg["seeds"]))
    members = [(s, k) for s in snrs for k in seeds]
    batch_size = cfg["training"]["batch_size"]
    per_step, finals, taken, epoch_steps = [], [], [], []
    for n in settings["n"]:
        _, result, _, _, _ = train_members(task, cfg, data, n, members, device, log,
                                           checkpoints=settings["at"], checkpoint_unit=settings["unit"])
        extra = {"steps": result.steps, "converged": result.converged.astype(np.int8),
                 "diverged": result.diverged.astype(np.int8)}
        per_step.append([_models(p, snrs, seeds, n, {"diverged": extra["diverged"]}) for p in result.checkpoints])
        finals.append(_models(result.params, snrs, seeds, n, extra))
        taken.append(np.asarray(result.checkpoint_steps))
        epoch_steps.append(steps_per_epoch(int(n), batch_size))
    attrs = model_attrs(task, cfg, data)

    def cube(models_per_n):
        models = xr.concat(models_per_n, dim="n")
        models.attrs.update(attrs)
        return extract_activations(cfg, data, models, device, storage_dtype=storage_dtype)

    cubes = [cube([per_n[c] for per_n in per_step]) for c in range(len(settings["at"]))]
    step_axis = xr.DataArray(settings["at"], dims="step", name="step")
    final = cube(finals)
    out = xr.Dataset(
        {"activation": xr.concat([c["activation"] for c in cubes], dim=step_axis),
         "final_activation": final["activation"],
         "layer_width": final["layer_width"],
         "steps_taken": (("step", "n"), np.stack(taken, axis=1)),
         "epoch_steps": (("n",), np.asarray(epoch_steps))},
    )
    for name in ("steps", "converged", "diverged"):
        out[name] = final[name]
    if "end_to_end" in final:
        out["end_to_end"] = xr.concat([c["end_to_end"] for c in cubes], dim=step_axis)
        out["final_end_to_end"] = final["end_to_end"]
    out.attrs.update(final.attrs)
    out.attrs["step_unit"] = resolved_unit(settings["unit"], batch_size)
    out.attrs["batch_size"] = "full batch" if batch_size is None else int(batch_size)
    out.attrs["checkpoint_note"] = (
        "step: checkpoints in step_unit; steps_taken(step, n): optimizer steps applied there (a member "
        "that stopped earlier keeps its stopping weights); final_*: the final weights, as in the main run")
    return out


def cube_at(cube: xr.Dataset, step=None) -> xr.Dataset:
    """An ordinary activation cube (alignpipe.cubes layout) of the checkpoint cube at one checkpoint,
    or of the final weights when ``step`` is None."""
    if step is None:
        variables = {"activation": cube["final_activation"]}
        if "final_end_to_end" in cube:
            variables["end_to_end"] = cube["final_end_to_end"]
    else:
        variables = {"activation": cube["activation"].sel(step=step, drop=True)}
        if "end_to_end" in cube:
            variables["end_to_end"] = cube["end_to_end"].sel(step=step, drop=True)
    out = xr.Dataset(variables)
    out["layer_width"] = cube["layer_width"]
    out["diverged"] = cube["diverged"]  # diverged members are left out at every checkpoint
    out.attrs.update(cube.attrs)
    return out


def alignment_during_training(cube: xr.Dataset, metrics: list[str], device=None, log=sys.stderr,
                              probe_x=None, metric_options: dict | None = None) -> xr.Dataset:
    """alignlib.ensembles.alignment.compute_alignment at every checkpoint of ``cube`` and at the final weights:
    ``alignment(metric, layer, step, snr, n, pair)``, ``final_alignment(metric, layer, snr, n, pair)``,
    ``alignment_note(step, metric, layer)``, with the cube's ``steps_taken`` and ``epoch_steps``.
    ``metric_options``: per-metric options, as the config's ``metric_options`` (compute_alignment)."""
    from alignlib.ensembles.alignment import compute_alignment

    tables = [compute_alignment(cube_at(cube, s), metrics, metric_options, device=device, log=log, probe_x=probe_x)
              for s in cube["step"].values]
    final = compute_alignment(cube_at(cube, None), metrics, metric_options, device=device, log=log,
                              probe_x=probe_x)
    steps = xr.DataArray(cube["step"].values, dims="step", name="step")
    out = xr.Dataset({
        "alignment": xr.concat([t["alignment"] for t in tables], dim=steps).transpose(
            "metric", "layer", "step", "snr", "n", "pair"),
        "alignment_note": xr.concat([t["alignment_note"] for t in tables], dim=steps),
        "final_alignment": final["alignment"],
        "final_alignment_note": final["alignment_note"],
    })
    for name in ("steps_taken", "epoch_steps", "steps", "converged", "diverged"):
        out[name] = cube[name]
    out.attrs.update(final.attrs)
    out.attrs["alignment_note"] = ("alignment(metric, layer, step, snr, n, pair) at each checkpoint (step in "
                                   f"{cube.attrs.get('step_unit')}s), final_alignment at the final weights; "
                                   "larger = more aligned")
    return out


# --- the first-epoch fraction --------------------------------------------------------------------

def _loo_pair_means(values: np.ndarray, ia, ib, S: int):
    """Mean over pairs (last axis) and its S leave-one-member-out means (..., S)."""
    P = values.shape[-1]
    incidence = np.zeros((P, S))
    incidence[np.arange(P), ia] = 1.0
    incidence[np.arange(P), ib] = 1.0
    total = values.sum(-1)
    return total / P, (total[..., None] - values @ incidence) / (P - (S - 1))


def fraction_with_se(init, first, final, ia, ib, S: int):
    """(first - init) / (final - init) of pair means, and its delete-one-member jackknife SE.

    ``init``, ``first``, ``final``: pair values (..., P) of the same pairs. The jackknife recomputes
    the ratio from the leave-one-member-out pair means (members are the unit of replication);
    se^2 = (S - 1) / S * sum_i (f_(i) - mean f_(i))^2. Needs S >= 3 (else the SE is NaN).
    """
    vals = [np.asarray(v, dtype=np.float64) for v in (init, first, final)]
    (m0, l0), (m1, l1), (mf, lf) = (_loo_pair_means(v, ia, ib, S) for v in vals)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = (m1 - m0) / (mf - m0)
        if S < 3:
            return frac, np.full_like(frac, np.nan)
        loo = (l1 - l0) / (lf - l0)
        se = np.sqrt((S - 1) / S * ((loo - loo.mean(-1, keepdims=True)) ** 2).sum(-1))
    return frac, se


def summary_layers(table: xr.Dataset, metric: str) -> list[str]:
    """The layers the summary reports for ``metric``: its primary layer (alignlib.ensembles.alignment.primary_layer)
    first, then every other layer where it has a finite value (all depths of a deep network)."""
    from alignlib.ensembles.alignment import primary_layer

    first = primary_layer(table, metric)
    finite = [str(l) for l in table["layer"].values
              if bool(np.isfinite(table["final_alignment"].sel(metric=metric, layer=l)).any())]
    return [first] + [l for l in finite if l != first]


def first_epoch_summary(table: xr.Dataset, metric: str | None = None, task: str = "") -> "pd.DataFrame":
    """One row per (layer, snr, n): the alignment at init, after the first epoch and final (pair means),
    and the first-epoch fraction (after first epoch - at init) / (final - at init) with its member
    jackknife SE; the metric's primary layer first, then its other layers (:func:`summary_layers`).
    "After the first epoch" is the checkpoint whose ``steps_taken`` is one epoch's steps (n //
    batch_size with minibatches; one step = one pass in full-batch training); NaN when step 0 or
    that checkpoint was not recorded."""
    import pandas as pd

    from alignlib.stats.members import pair_index

    metric = metric or str(table["metric"].values[0])
    ia, ib, S = pair_index(table["seed_a"].values, table["seed_b"].values,
                           np.union1d(table["seed_a"].values, table["seed_b"].values))
    batch = table.attrs.get("batch_size")
    rows = []
    for layer in summary_layers(table, metric):
        values = table["alignment"].sel(metric=metric, layer=layer)
        final = table["final_alignment"].sel(metric=metric, layer=layer)
        for n in table["n"].values:
            taken = table["steps_taken"].sel(n=n).values
            one = int(table["epoch_steps"].sel(n=n))
            init_pos, first_pos = np.flatnonzero(taken == 0), np.flatnonzero(taken == one)
            for snr in table["snr"].values:
                row = {"task": task or table.attrs.get("task", ""), "metric": metric, "layer": layer,
                       "snr": float(snr), "n": int(n), "first_epoch_steps": one,
                       "first_epoch_definition": ("one full-batch step (one pass over the training set)"
                                                  if batch in (None, "full batch") or int(batch) >= int(n) else
                                                  f"one epoch = {one} minibatch step{'s' * (one > 1)} of {int(batch)}"),
                       "members": S}
                fin = final.sel(snr=snr, n=n).values
                if len(init_pos) and len(first_pos):
                    a0 = values.sel(snr=snr, n=n).isel(step=init_pos[0]).values
                    a1 = values.sel(snr=snr, n=n).isel(step=first_pos[0]).values
                    frac, se = fraction_with_se(a0, a1, fin, ia, ib, S)
                    row.update(at_init=float(a0.mean()), after_first_epoch=float(a1.mean()),
                               final=float(fin.mean()), fraction=float(frac), fraction_se=float(se))
                else:
                    row.update(at_init=np.nan, after_first_epoch=np.nan, final=float(fin.mean()),
                               fraction=np.nan, fraction_se=np.nan)
                rows.append(row)
    return pd.DataFrame(rows)


# --- the figure ----------------------------------------------------------------------------------

def threshold_labels(ns, thresholds=None) -> dict:
    """n -> "below / at / above the threshold" from the interpolation thresholds over SNR
    (alignment.nc's ``interpolation_threshold(snr)``): below the smallest finite one, above the
    largest, at it in between (or equal); "" where no threshold is known."""
    t = np.asarray([] if thresholds is None else thresholds, dtype=np.float64)
    t = t[np.isfinite(t)]
    if not len(t):
        return {int(n): "" for n in ns}
    lo, hi = t.min(), t.max()
    span = f"{lo:g}" if lo == hi else f"{lo:g}–{hi:g}"
    return {int(n): ("below" if n < lo else "above" if n > hi else "at") + f" threshold ({span})" for n in ns}


def alignment_training_figure(table: xr.Dataset, metric: str | None = None, thresholds=None):
    """Alignment (pair mean ± member-jackknife SE) against training time on a log axis, checkpoint 0
    drawn at the left edge; one panel per recorded n (labelled against the threshold when known),
    one curve per SNR, the final alignment as a dashed line of the same colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from alignlib.ensembles.alignment import pair_mean, primary_layer
    from alignpipe.figures import metric_label

    metric = metric or str(table["metric"].values[0])
    layer = primary_layer(table, metric)
    mean, se = pair_mean(table["alignment"].sel(metric=metric, layer=layer))
    fmean, fse = pair_mean(table["final_alignment"].sel(metric=metric, layer=layer))
    steps = table["step"].values.astype(float)
    positive = steps[steps > 0]
    zero_x = positive.min() / 3 if len(positive) else 1.0
    x = np.where(steps > 0, steps, zero_x)
    ns, snrs = table["n"].values, table["snr"].values
    labels = threshold_labels(ns, thresholds)
    colors = [plt.get_cmap("viridis")(v) for v in np.linspace(0.0, 0.9, len(snrs))]
    fig, axes = plt.subplots(1, len(ns), figsize=(4.6 * len(ns), 3.8), squeeze=False, sharey=True)
    unit = table.attrs.get("step_unit", "step")
    for ax, n in zip(axes.flat, ns):
        for snr, color in zip(snrs, colors):
            m, s = mean.sel(n=n, snr=snr).values, se.sel(n=n, snr=snr).values
            ax.plot(x, m, marker="o", ms=3, color=color, label=f"SNR {snr:g}")
            ax.fill_between(x, m - s, m + s, color=color, alpha=0.2, lw=0)
            ax.axhline(float(fmean.sel(n=n, snr=snr)), color=color, ls="--", lw=1, alpha=0.7)
        ax.set_xscale("log")
        ticks = sorted(set(x.tolist()))
        ax.set_xticks(ticks)
        ax.set_xticklabels(["init" if t == zero_x and 0 in steps else f"{t:g}" for t in ticks], fontsize=7)
        ax.minorticks_off()
        ax.set_xlim(zero_x / 1.5, x.max() * 1.5)
        ax.set_title(f"n = {int(n)}" + (f"\n{labels[int(n)]}" if labels[int(n)] else ""), fontsize=10)
        ax.set_xlabel(f"training {unit}s (log; init at the left edge)")
    axes.flat[0].set_ylabel(metric_label(metric, layer))
    axes.flat[-1].legend(fontsize=7, title="dashed: final", title_fontsize=7, loc="upper left",
                         bbox_to_anchor=(1.02, 1.0))  # beside the panels, never over the curves
    fig.suptitle(f"{table.attrs.get('task', '')}: alignment during training (mean ± member-jackknife SE)")
    fig.tight_layout()
    return fig
