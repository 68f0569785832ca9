"""Rule theory_residuals: simulation minus theory for a linear task."""
from alignpipe.cubes import read_netcdf
from alignpipe.figures import save_figure, theory_residuals
from alignpipe.jobs import job

with job(snakemake) as j:
    table = read_netcdf(snakemake.input.alignment)
    with j.clock.numerics():
        save_figure(theory_residuals(table), snakemake.output.png, snakemake.params.pdf)
