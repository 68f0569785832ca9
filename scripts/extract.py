"""Rule extract: every member's activations on the shared probes, as a NetCDF cube."""
import torch

from alignlib.cubes import read_netcdf, write_netcdf
from alignlib.device import job_device
from alignlib.experiment import extract_activations
from alignlib.runlog import log_to

with log_to(snakemake.log[0]), job_device(snakemake.params.device) as device:
    torch.set_num_threads(snakemake.threads)
    data = read_netcdf(snakemake.input.data)
    models = read_netcdf(snakemake.input.models)
    cube = extract_activations(snakemake.params.task_cfg, data, models, device,
                               storage_dtype=snakemake.params.activation_dtype)
    print(cube)
    write_netcdf(cube, snakemake.output[0])
