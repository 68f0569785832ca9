"""Rule training_figure: the alignment-during-training figure and the first-epoch fractions (CSV)."""
import os

from alignlib.ensembles.checkpoints import first_epoch_summary
from alignpipe.cubes import read_netcdf
from alignpipe.figures import alignment_training_figure, save_figure
from alignpipe.jobs import job

with job(snakemake) as j:
    task = snakemake.wildcards.task
    table = read_netcdf(snakemake.input.table)
    main = read_netcdf(snakemake.input.alignment)
    thresholds = main["interpolation_threshold"].values if "interpolation_threshold" in main else None
    with j.clock.numerics():
        summary = first_epoch_summary(table, task=task)
        save_figure(alignment_training_figure(table, thresholds=thresholds), snakemake.output.png,
                    snakemake.params.pdf)
    print(summary.to_string(), file=j.log)
    tmp = f"{snakemake.output.summary}.tmp"
    summary.to_csv(tmp, index=False)
    os.replace(tmp, snakemake.output.summary)
