"""Rule summary: the paper's claims tested on every task: verdicts.csv (one verdict per claim and task,
then per metric) and summary.csv (every per-cell test behind them)."""
from alignlib.cubes import read_netcdf
from alignlib.runlog import log_to
from alignlib.verdicts import all_verdicts, write_csv

with log_to(snakemake.log[0]):
    tables = {task: read_netcdf(path) for task, path in zip(snakemake.params.tasks, snakemake.input)}
    verdicts, summary = all_verdicts(tables, snakemake.params.primary_metrics)
    print(verdicts[verdicts.level == "headline"].to_string())
    write_csv(summary, snakemake.output.summary)
    write_csv(verdicts, snakemake.output.verdicts)
