"""Alignment during training, the numerics: the members re-trained from their seeds with their weights
recorded at training checkpoints (``train_ensemble(checkpoints=...)``), their activations at every
checkpoint, alignment per checkpoint, and the first-epoch fraction with its member-jackknife error.
The settings, file names and the figure are the pipeline's (alignpipe.checkpoints)."""

from __future__ import annotations

import sys

import numpy as np

from alignlib._extras import pipeline_import  # noqa: E402

pd = pipeline_import("pandas", __name__)
xr = pipeline_import("xarray", __name__)

from alignlib.ensembles.alignment import compute_alignment, primary_layer
from alignlib.ensembles.builder import extract_activations, model_attrs, train_members
from alignlib.ensembles.training import steps_per_epoch
from alignlib.stats.members import pair_index

def resolved_unit(unit: str, batch_size) -> str:
    """auto -> epoch with minibatch training, else step (one full-batch step is one epoch)."""
    if unit != "auto":
        return unit
    return "epoch" if batch_size is not None else "step"


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
    first = primary_layer(table, metric)
    finite = [str(l) for l in table["layer"].values
              if bool(np.isfinite(table["final_alignment"].sel(metric=metric, layer=l)).any())]
    return [first] + [l for l in finite if l != first]


def first_epoch_summary(table: xr.Dataset, metric: str | None = None, task: str = "") -> pd.DataFrame:
    """One row per (layer, snr, n): the alignment at init, after the first epoch and final (pair means),
    and the first-epoch fraction (after first epoch - at init) / (final - at init) with its member
    jackknife SE; the metric's primary layer first, then its other layers (:func:`summary_layers`).
    "After the first epoch" is the checkpoint whose ``steps_taken`` is one epoch's steps (n //
    batch_size with minibatches; one step = one pass in full-batch training); NaN when step 0 or
    that checkpoint was not recorded."""

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
