"""Rule train: every (snr, seed) member at each n of this job, batched per n."""
import torch  # noqa: F401  (imported before job_clock, which sets its threads)
import xarray as xr

from alignpipe.cubes import read_netcdf, write_netcdf
from alignpipe.jobs import job_device
from alignlib.ensembles.divergence import check_divergence
from alignlib.ensembles.builder import model_attrs, train_grid_n
from alignpipe.runlog import log_to, warn
from alignpipe.timing import fast_exit, job_clock

with (log_to(snakemake.log[0]) as log, job_clock(log, snakemake.threads) as clock,
      job_device(snakemake.params.device) as device):
    task, cfg = snakemake.wildcards.task, snakemake.params.task_cfg
    print(f"device: {device}", file=log)
    data = read_netcdf(snakemake.input.data)
    with clock.numerics():
        parts = [train_grid_n(task, cfg, data, n, device, log=log) for n in snakemake.params.ns]
        models = xr.concat(parts, dim="n")
        models.attrs.update(model_attrs(task, cfg, data))
        note = check_divergence(models, task, cfg, snakemake.params.on_divergence)  # fails by default
    if note:
        models.attrs["diverged_note"] = note
        warn(note, log)
    write_netcdf(models, snakemake.output[0])
fast_exit()  # outputs written and closed: skip the interpreter's teardown
