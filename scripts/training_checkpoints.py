"""Rule training_checkpoints: re-train the members at the checkpoint n with their weights recorded, and
their activations on the probes at every checkpoint (alignpipe.checkpoints)."""
from alignlib.ensembles.checkpoints import checkpoint_activations
from alignpipe.cubes import read_netcdf, write_netcdf
from alignpipe.jobs import job

with job(snakemake, device=True) as j:
    task, settings = snakemake.wildcards.task, snakemake.params.settings
    print(f"checkpoints {settings}", file=j.log)
    data = read_netcdf(snakemake.input.data)
    with j.clock.numerics():
        cube = checkpoint_activations(task, snakemake.params.task_cfg, data, settings, j.device, log=j.log,
                                      storage_dtype=snakemake.params.activation_dtype)
    write_netcdf(cube, snakemake.output[0])
