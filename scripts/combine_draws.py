"""Rules combine_draws, combine_draws_ood: a task's alignment.nc (or alignment_ood.nc) from the tables of its
data draws (alignpipe.draws.combine_draws); alignment.nc also gets the interpolation thresholds and test-error
peaks of the combined table, as the align rule computes them for a single draw."""
from alignpipe.cubes import read_netcdf
from alignlib.ensembles.divergence import require_finite_alignment
from alignpipe.draws import combine_draws
from alignlib.stats.threshold import task_thresholds
from alignpipe.jobs import job

with job(snakemake) as j:
    task = snakemake.wildcards.task
    tables = [read_netcdf(path) for path in snakemake.input]
    with j.clock.numerics():
        table = combine_draws(tables, task, names=list(snakemake.params.draws))
        require_finite_alignment(table, task)
        if snakemake.params.thresholds:
            table = table.merge(task_thresholds(table, snakemake.params.tol), combine_attrs="override")
    j.write_alignment_table(table, snakemake.output[0])
