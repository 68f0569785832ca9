"""Rule figures: the task's alignment figures (each drawn once; PNG, and PDF when figure_pdf is set)."""
from alignlib.ensembles.alignment import dense_linear_theory, linear_input_dim
from alignpipe.cubes import read_netcdf
from alignpipe.figures import (
    alignment_per_layer_vs_n,
    alignment_vs_n,
    alignment_vs_snr,
    alignment_vs_test_error,
    noise_floor_vs_n,
    save_figure,
)
from alignpipe.jobs import job
from alignlib.claims.verdicts import decoupled_highlights

with job(snakemake) as j:
    table = read_netcdf(snakemake.input.alignment)
    pdf = snakemake.params.pdf
    with j.clock.numerics():
        d = linear_input_dim(table)
        has_theory = "theory" in table  # written by the align rule where a closed form exists
        dense = dense_linear_theory(table) if has_theory else None
        save_figure(alignment_vs_n(table, threshold=d, theory=dense), snakemake.output.n, pdf)
        save_figure(alignment_vs_snr(table, theory=table["theory"] if has_theory else None), snakemake.output.snr,
                    pdf)
        highlight = decoupled_highlights(table)
        save_figure(alignment_vs_test_error(table, highlight=highlight), snakemake.output.error, pdf)
        save_figure(alignment_per_layer_vs_n(table, threshold=d), snakemake.output.layers, pdf)
        save_figure(noise_floor_vs_n(table, snakemake.params.tol), snakemake.output.fit, pdf)
