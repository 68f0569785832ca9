"""Rules extract, extract_ood: every member's activations on one probe set (params.probe_var: the data
set's probes, probe_x, or the OOD probes, ood_x, of data/ood.nc), for all training chunks of one cube."""
import xarray as xr

from alignlib.ensembles.builder import extract_activations
from alignpipe.cubes import read_netcdf, write_netcdf
from alignpipe.jobs import job

with job(snakemake, device=True) as j:
    probe_var = snakemake.params.probe_var
    data = read_netcdf(snakemake.input.data)
    if snakemake.input.probes != snakemake.input.data:  # a probe set of its own file (the OOD probes)
        data = data.assign({probe_var: read_netcdf(snakemake.input.probes)[probe_var]})
    models = xr.concat([read_netcdf(path) for path in snakemake.input.models], dim="n")  # the chunks, by n
    with j.clock.numerics():
        cube = extract_activations(snakemake.params.task_cfg, data, models, j.device,
                                   storage_dtype=snakemake.params.activation_dtype, probe_var=probe_var)
    print(cube)
    write_netcdf(cube, snakemake.output[0])
