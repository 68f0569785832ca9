"""Checkpoint rule refine: the sample sizes a task's grid adds around the coarse pass's interpolation thresholds
(a task with several data draws: from the coarse members of all of them, one grid for every draw)."""
import json

from alignpipe.cubes import read_netcdf
from alignpipe.draws import coarse_noise_fit
from alignpipe.refine import refinement, write_refinement
from alignpipe.jobs import job

with job(snakemake) as j:
    task, cfg = snakemake.wildcards.task, snakemake.params.task_cfg
    # the largest n the data sets allow (one per draw)
    pool = min(read_netcdf(path).sizes["sample"] for path in snakemake.input.data)
    noise_fit = coarse_noise_fit([read_netcdf(path) for path in snakemake.input.models])
    with j.clock.numerics():
        record = refinement(task, cfg, noise_fit, pool)
    print(json.dumps(record, indent=1))
    write_refinement(record, snakemake.output[0])
