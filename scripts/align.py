"""Rule align: the task's alignment.nc: every metric for all member pairs at every grid point (computed
here, or merged from the task's align_part jobs), the interpolation thresholds, for a linear
network the theory and, for a task with `refine`, the record of the n its refinement added."""
import torch  # noqa: F401  (imported before job_clock, which sets its threads)

from alignlib.ensembles.alignment import compute_alignment, linear_theory, merge_metric_parts
from alignpipe.config import has_linear_theory
from alignpipe.cubes import open_activations, read_netcdf, undeclared_cubes, write_netcdf
from alignpipe.jobs import job_device
from alignlib.ensembles.divergence import exclusion_note, require_finite_alignment
from alignpipe.refine import read_refinement, refinement_attrs
from alignpipe.runlog import log_to, warn
from alignlib.stats.threshold import task_thresholds
from alignpipe.timing import fast_exit, job_clock

with log_to(snakemake.log[0]) as log, job_clock(log, snakemake.threads) as clock:
    task, cfg = snakemake.wildcards.task, snakemake.params.task_cfg
    data = read_netcdf(snakemake.input.data)
    if snakemake.input.parts:  # metric groups computed by the align_part jobs
        parts = [read_netcdf(path) for path in snakemake.input.parts]
        with clock.numerics():
            table = merge_metric_parts(parts, snakemake.params.metrics)
    else:
        cubes = list(snakemake.input.cubes)
        for stale in undeclared_cubes(cubes):  # an earlier grid's cube: never read
            print(f"not read (not in the current grid): {stale}; remove it with rm {stale}", file=log)
        cube = open_activations(cubes, expected_n=cfg["n"], key=f"tasks.{task}.n")
        with job_device(snakemake.params.device) as device, clock.numerics():
            table = compute_alignment(cube, snakemake.params.metrics, device=device, log=log,
                                      probe_x=data["probe_x"].values, chance_draws=snakemake.params.chance,
                                      metric_options=snakemake.params.metric_options,
                                      base_seed=cfg["base_seed"], task=task)
    require_finite_alignment(table, task)
    with clock.numerics():
        table = table.merge(task_thresholds(table, cfg["interpolation_tol"]), combine_attrs="override")
        if has_linear_theory(cfg):
            table = table.merge(linear_theory(table, data))
    for path in snakemake.input.refine:  # a task with `refine`: which n the refinement added, and why
        table.attrs.update(refinement_attrs(read_refinement(path)))
    table.attrs.pop("diverged_note", None)
    note = exclusion_note(table)
    if note:
        table.attrs["diverged_note"] = note
        warn(note, log)
    print(table)
    write_netcdf(table, snakemake.output[0])
fast_exit()  # outputs written and closed: skip the interpreter's teardown
