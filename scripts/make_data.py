"""Rule task_data: the task's shared inputs, probes, test set and teacher."""
from alignpipe.cubes import write_netcdf
from alignlib.ensembles.data import make_task_data
from alignpipe.runlog import log_to
from alignpipe.timing import fast_exit, job_clock

with log_to(snakemake.log[0]) as log, job_clock(log, snakemake.threads) as clock:
    with clock.numerics():
        data = make_task_data(snakemake.wildcards.task, snakemake.params.task_cfg)
    print(data)
    write_netcdf(data, snakemake.output[0])
fast_exit()  # outputs written and closed: skip the interpreter's teardown
