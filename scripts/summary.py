"""Rule summary: the paper's claims on every task: verdicts.csv (one verdict per claim and task, then per
metric, and claim 3 across groups of tasks) and summary.csv (every per-cell test behind them), stacked
from the tasks' claims jobs."""
import pandas as pd

from alignpipe.jobs import job
from alignlib.claims.verdicts import combine_task_results, write_csv

with job(snakemake) as j:
    results = {task: pd.read_pickle(path) for task, path in zip(snakemake.params.tasks, snakemake.input)}
    with j.clock.numerics():
        verdicts, summary = combine_task_results(results)
    print(verdicts[verdicts.level == "headline"].to_string())
    write_csv(summary, snakemake.output.summary)
    write_csv(verdicts, snakemake.output.verdicts)
