"""Rule align_training: alignment per training checkpoint (alignpipe.checkpoints.alignment_during_training)."""
from alignlib.ensembles.checkpoints import alignment_during_training
from alignpipe.cubes import read_netcdf, write_netcdf
from alignpipe.jobs import job

with job(snakemake, device=True) as j:
    cube = read_netcdf(snakemake.input.cube)
    probe_x = read_netcdf(snakemake.input.data)["probe_x"].values
    with j.clock.numerics():
        table = alignment_during_training(cube, snakemake.params.metrics, device=j.device, log=j.log, probe_x=probe_x,
                                          metric_options=snakemake.params.metric_options)
    print(table, file=j.log)
    write_netcdf(table, snakemake.output[0])
