"""Rule extract_ood: every member's activations on the task's OOD probes (data.nc's ood_x), one cube
per activation cube of the in-distribution grid."""
import torch  # noqa: F401  (imported before job_clock, which sets its threads)
import xarray as xr

from alignpipe.cubes import read_netcdf, write_netcdf
from alignpipe.jobs import job_device
from alignlib.ensembles.builder import extract_activations
from alignpipe.runlog import log_to
from alignpipe.timing import fast_exit, job_clock

with (log_to(snakemake.log[0]) as log, job_clock(log, snakemake.threads) as clock,
      job_device(snakemake.params.device) as device):
    data = read_netcdf(snakemake.input.data)
    models = xr.concat([read_netcdf(path) for path in snakemake.input.models], dim="n")  # the chunks, by n
    with clock.numerics():
        cube = extract_activations(snakemake.params.task_cfg, data, models, device,
                                   storage_dtype=snakemake.params.activation_dtype, probe_var="ood_x")
    print(cube)
    write_netcdf(cube, snakemake.output[0])
fast_exit()  # outputs written and closed: skip the interpreter's teardown
