"""Rule align: all metrics for all member pairs at every grid point of the task."""
import torch

from alignlib.alignment import compute_alignment, linear_theory
from alignlib.config import has_linear_theory
from alignlib.cubes import open_activations, read_netcdf, undeclared_cubes, write_netcdf
from alignlib.device import job_device
from alignlib.divergence import exclusion_note, require_finite_alignment
from alignlib.runlog import log_to, warn
from alignlib.threshold import task_thresholds

with log_to(snakemake.log[0]) as log, job_device(snakemake.params.device) as device:
    torch.set_num_threads(snakemake.threads)
    task, cubes = snakemake.wildcards.task, list(snakemake.input.cubes)
    for stale in undeclared_cubes(cubes):  # an earlier grid's cube: never read
        print(f"not read (not in the current grid): {stale}; remove it with rm {stale}", file=log)
    cube = open_activations(cubes, expected_n=snakemake.params.task_cfg["n"], key=f"tasks.{task}.n")
    table = compute_alignment(cube, snakemake.params.metrics, device=device, log=log,
                              probe_x=read_netcdf(snakemake.input.data)["probe_x"].values)
    require_finite_alignment(table, task)
    tol = snakemake.params.task_cfg["interpolation_tol"]
    table = table.merge(task_thresholds(table, tol), combine_attrs="override")
    if has_linear_theory(snakemake.params.task_cfg):
        table = table.merge(linear_theory(table, read_netcdf(snakemake.input.data)))
    table.attrs.pop("diverged_note", None)
    note = exclusion_note(table)
    if note:
        table.attrs["diverged_note"] = note
        warn(note, log)
    print(table)
    write_netcdf(table, snakemake.output[0])
