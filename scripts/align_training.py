"""Rule align_training: alignment per training checkpoint (alignpipe.checkpoints.alignment_during_training)."""
import torch  # noqa: F401  (imported before job_clock, which sets its threads)

from alignpipe.checkpoints import alignment_during_training
from alignpipe.cubes import read_netcdf, write_netcdf
from alignpipe.jobs import job_device
from alignpipe.runlog import log_to
from alignpipe.timing import fast_exit, job_clock

with (log_to(snakemake.log[0]) as log, job_clock(log, snakemake.threads) as clock,
      job_device(snakemake.params.device) as device):
    cube = read_netcdf(snakemake.input.cube)
    probe_x = read_netcdf(snakemake.input.data)["probe_x"].values
    with clock.numerics():
        table = alignment_during_training(cube, snakemake.params.metrics, device=device, log=log, probe_x=probe_x,
                                          metric_options=snakemake.params.metric_options)
    print(table, file=log)
    write_netcdf(table, snakemake.output[0])
fast_exit()  # outputs written and closed: skip the interpreter's teardown
