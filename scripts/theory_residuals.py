"""Rule theory_residuals: simulation minus theory for a linear task."""
from alignlib.cubes import read_netcdf
from alignlib.figures import save_figure, theory_residuals
from alignlib.runlog import log_to

with log_to(snakemake.log[0]):
    save_figure(theory_residuals(read_netcdf(snakemake.input.alignment)), snakemake.output.png)
