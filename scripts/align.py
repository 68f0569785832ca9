"""Rule align: all metrics for all member pairs at every grid point of the task."""
import torch

from alignlib.alignment import compute_alignment, linear_theory
from alignlib.config import has_linear_theory
from alignlib.cubes import open_activations, read_netcdf, write_netcdf
from alignlib.device import job_device
from alignlib.runlog import log_to
from alignlib.threshold import task_thresholds

with log_to(snakemake.log[0]) as log, job_device(snakemake.params.device) as device:
    torch.set_num_threads(snakemake.threads)
    cube = open_activations(snakemake.params.task_dir)
    table = compute_alignment(cube, snakemake.params.metrics, device=device, log=log)
    tol = snakemake.params.task_cfg["interpolation_tol"]
    table = table.merge(task_thresholds(table, tol), combine_attrs="override")
    if has_linear_theory(snakemake.params.task_cfg):
        table = table.merge(linear_theory(table, read_netcdf(snakemake.input.data)))
    print(table)
    write_netcdf(table, snakemake.output[0])
