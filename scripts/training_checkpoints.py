"""Rule training_checkpoints: re-train the members at the checkpoint n with their weights recorded, and
their activations on the probes at every checkpoint (alignpipe.checkpoints)."""
import torch  # noqa: F401  (imported before job_clock, which sets its threads)

from alignpipe.checkpoints import checkpoint_activations
from alignpipe.cubes import read_netcdf, write_netcdf
from alignpipe.jobs import job_device
from alignpipe.runlog import log_to
from alignpipe.timing import fast_exit, job_clock

with (log_to(snakemake.log[0]) as log, job_clock(log, snakemake.threads) as clock,
      job_device(snakemake.params.device) as device):
    task, settings = snakemake.wildcards.task, snakemake.params.settings
    print(f"device: {device}; checkpoints {settings}", file=log)
    data = read_netcdf(snakemake.input.data)
    with clock.numerics():
        cube = checkpoint_activations(task, snakemake.params.task_cfg, data, settings, device, log=log,
                                      storage_dtype=snakemake.params.activation_dtype)
    write_netcdf(cube, snakemake.output[0])
fast_exit()  # outputs written and closed: skip the interpreter's teardown
