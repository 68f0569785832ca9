"""Rule align: all metrics for all member pairs at every grid point of the task."""
import torch

from alignlib.alignment import compute_alignment
from alignlib.cubes import open_activations, write_netcdf
from alignlib.runlog import log_to
from alignlib.threshold import task_interpolation_threshold

with log_to(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    cube = open_activations(snakemake.params.task_dir)
    table = compute_alignment(cube, snakemake.params.metrics, log=log)
    tol = snakemake.params.task_cfg["interpolation_tol"]
    table["interpolation_threshold"] = task_interpolation_threshold(table, tol)
    print(table)
    write_netcdf(table, snakemake.output[0])
