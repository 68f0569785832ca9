"""Rule ood_summary: in-distribution vs OOD alignment per layer (alignpipe.ood): ood_summary.csv and the
figure <task>_ood_by_layer.png."""
from alignpipe.cubes import read_netcdf
from alignlib.claims.ood import ood_summary
from alignpipe.figures import plot_ood_by_layer
from alignpipe.jobs import job
from alignlib.claims.verdicts import write_csv

with job(snakemake) as j:
    task = snakemake.wildcards.task
    id_table, ood_table = read_netcdf(snakemake.input.alignment), read_netcdf(snakemake.input.alignment_ood)
    with j.clock.numerics():
        summary = ood_summary(id_table, ood_table)
    print(summary.to_string(), file=j.log)
    write_csv(summary, snakemake.output.csv)
    kind = ood_table.attrs.get("ood_kind", "?")
    shift = kind if kind == "extrapolate" else f"{kind}, factor {ood_table.attrs.get('ood_factor', float('nan')):g}"
    plot_ood_by_layer(summary, [str(x) for x in ood_table["layer"].values], snakemake.output.png,
                      title=f"{task}: in-distribution (solid) vs OOD probes (dashed; {shift})",
                      pdf=snakemake.params.figure_pdf)
