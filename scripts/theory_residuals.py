"""Rule theory_residuals: simulation minus theory for a linear task."""
from alignpipe.cubes import read_netcdf
from alignpipe.figures import save_figure, theory_residuals
from alignpipe.runlog import log_to
from alignpipe.timing import fast_exit, job_clock

with log_to(snakemake.log[0]) as log, job_clock(log, snakemake.threads) as clock:
    table = read_netcdf(snakemake.input.alignment)
    with clock.numerics():
        save_figure(theory_residuals(table), snakemake.output.png, snakemake.params.pdf)
fast_exit()  # outputs written and closed: skip the interpreter's teardown
