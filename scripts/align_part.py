"""Rule align_part: one group of metrics for all member pairs at every grid point of the task."""
from alignlib.ensembles.alignment import compute_alignment
from alignpipe.cubes import open_activations, read_netcdf, undeclared_cubes, write_netcdf
from alignpipe.jobs import job

with job(snakemake, device=True) as j:
    cfg, params, cubes = snakemake.params.task_cfg, snakemake.params, list(snakemake.input.cubes)
    for stale in undeclared_cubes(cubes):  # an earlier grid's cube: never read
        print(f"not read (not in the current grid): {stale}; remove it with rm {stale}", file=j.log)
    cube = open_activations(cubes, expected_n=cfg["n"], key=f"tasks.{j.task}.n")
    probe_x = read_netcdf(snakemake.input.data)["probe_x"].values
    with j.clock.numerics():
        part = compute_alignment(cube, params.metrics, device=j.device, log=j.log, probe_x=probe_x,
                                 chance_draws=params.chance, metric_options=params.metric_options,
                                 base_seed=cfg["base_seed"], task=j.task)
    write_netcdf(part, snakemake.output[0])
