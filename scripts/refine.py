"""Checkpoint rule refine: the sample sizes a task's grid adds around the coarse pass's interpolation thresholds
(a task with several data draws: from the coarse members of all of them, one grid for every draw)."""
import json

from alignpipe.cubes import read_netcdf
from alignpipe.draws import coarse_noise_fit
from alignpipe.refine import refinement, write_refinement
from alignpipe.runlog import log_to
from alignpipe.timing import fast_exit, job_clock

with log_to(snakemake.log[0]) as log, job_clock(log, snakemake.threads) as clock:
    task, cfg = snakemake.wildcards.task, snakemake.params.task_cfg
    # the largest n the data sets allow (one per draw)
    pool = min(read_netcdf(path).sizes["sample"] for path in snakemake.input.data)
    noise_fit = coarse_noise_fit([read_netcdf(path) for path in snakemake.input.models])
    with clock.numerics():
        record = refinement(task, cfg, noise_fit, pool)
    print(json.dumps(record, indent=1))
    write_refinement(record, snakemake.output[0])
fast_exit()  # outputs written and closed: skip the interpreter's teardown
