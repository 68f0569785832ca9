"""Checkpoint rule refine: the sample sizes a task's grid adds around the coarse pass's interpolation thresholds."""
import json

import xarray as xr

from alignlib.cubes import read_netcdf
from alignlib.refine import refinement, write_refinement
from alignlib.runlog import log_to
from alignlib.timing import fast_exit, job_clock

with log_to(snakemake.log[0]) as log, job_clock(log, snakemake.threads) as clock:
    task, cfg = snakemake.wildcards.task, snakemake.params.task_cfg
    pool = read_netcdf(snakemake.input.data).sizes["sample"]  # the largest n the data set allows
    noise_fit = xr.concat([read_netcdf(path)["noise_fit"] for path in snakemake.input.models], dim="n")
    with clock.numerics():
        record = refinement(task, cfg, noise_fit, pool)
    print(json.dumps(record, indent=1))
    write_refinement(record, snakemake.output[0])
fast_exit()  # outputs written and closed: skip the interpreter's teardown
