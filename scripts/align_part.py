"""Rule align_part: one group of metrics for all member pairs at every grid point of the task."""
import torch  # noqa: F401  (imported before job_clock, which sets its threads)

from alignlib.ensembles.alignment import compute_alignment
from alignpipe.cubes import open_activations, read_netcdf, undeclared_cubes, write_netcdf
from alignpipe.jobs import job_device
from alignpipe.runlog import log_to
from alignpipe.timing import fast_exit, job_clock

with (log_to(snakemake.log[0]) as log, job_clock(log, snakemake.threads) as clock,
      job_device(snakemake.params.device) as device):
    task, cubes = snakemake.wildcards.task, list(snakemake.input.cubes)
    for stale in undeclared_cubes(cubes):  # an earlier grid's cube: never read
        print(f"not read (not in the current grid): {stale}; remove it with rm {stale}", file=log)
    cube = open_activations(cubes, expected_n=snakemake.params.task_cfg["n"], key=f"tasks.{task}.n")
    probe_x = read_netcdf(snakemake.input.data)["probe_x"].values
    with clock.numerics():
        part = compute_alignment(cube, snakemake.params.metrics, device=device, log=log, probe_x=probe_x,
                                 chance_draws=snakemake.params.chance, metric_options=snakemake.params.metric_options,
                                 base_seed=snakemake.params.task_cfg["base_seed"], task=task)
    write_netcdf(part, snakemake.output[0])
fast_exit()  # outputs written and closed: skip the interpreter's teardown
