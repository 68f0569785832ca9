"""Rules task_data, ood_data: the task's shared inputs, probes, test set and teacher (data.nc), or its
OOD probe set (ood.nc, from data.nc and the task's `ood` settings)."""
from alignlib.ensembles.data import make_task_data, ood_probe_set
from alignpipe.cubes import read_netcdf, write_netcdf
from alignpipe.jobs import job

with job(snakemake) as j:
    with j.clock.numerics():
        if snakemake.input:  # the OOD probes of a task's data set
            data = ood_probe_set(j.task, snakemake.params.task_cfg, read_netcdf(snakemake.input.data))
        else:
            data = make_task_data(j.task, snakemake.params.task_cfg)
    print(data)
    write_netcdf(data, snakemake.output[0])
