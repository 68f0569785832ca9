"""Rule align: the task's alignment.nc: every metric for all member pairs at every grid point (computed
here, or merged from the task's align_part jobs), the interpolation thresholds, for a linear
network the theory and, for a task with `refine`, the record of the n its refinement added."""
from alignlib.ensembles.alignment import compute_alignment, linear_theory, merge_metric_parts
from alignlib.ensembles.divergence import require_finite_alignment
from alignlib.stats.threshold import task_thresholds
from alignpipe.cubes import open_activations, read_netcdf, undeclared_cubes
from alignpipe.jobs import job
from alignpipe.refine import read_refinement, refinement_attrs

with job(snakemake, device=not snakemake.input.parts) as j:
    cfg, params = snakemake.params.task_cfg, snakemake.params
    data = read_netcdf(snakemake.input.data)
    if snakemake.input.parts:  # metric groups computed by the align_part jobs
        parts = [read_netcdf(path) for path in snakemake.input.parts]
        with j.clock.numerics():
            table = merge_metric_parts(parts, params.metrics)
    else:
        cubes = list(snakemake.input.cubes)
        for stale in undeclared_cubes(cubes):  # an earlier grid's cube: never read
            print(f"not read (not in the current grid): {stale}; remove it with rm {stale}", file=j.log)
        cube = open_activations(cubes, expected_n=cfg["n"], key=f"tasks.{j.task}.n")
        with j.clock.numerics():
            table = compute_alignment(cube, params.metrics, device=j.device, log=j.log,
                                      probe_x=data["probe_x"].values, chance_draws=params.chance,
                                      metric_options=params.metric_options, base_seed=cfg["base_seed"], task=j.task)
    require_finite_alignment(table, j.task)
    with j.clock.numerics():
        table = table.merge(task_thresholds(table, cfg["interpolation_tol"]), combine_attrs="override")
        if cfg["theory"]:
            table = table.merge(linear_theory(table, data))
    for path in snakemake.input.refine:  # a task with `refine`: which n the refinement added, and why
        table.attrs.update(refinement_attrs(read_refinement(path)))
    j.write_alignment_table(table, snakemake.output[0])
