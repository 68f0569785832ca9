"""Rule claims: the paper's claims tested on one task (its share of verdicts.csv and summary.csv)."""
import pandas as pd

from alignlib.cubes import read_netcdf
from alignlib.runlog import log_to
from alignlib.timing import fast_exit, job_clock
from alignlib.verdicts import task_result

with log_to(snakemake.log[0]) as log, job_clock(log, snakemake.threads) as clock:
    table = read_netcdf(snakemake.input[0])
    with clock.numerics():
        result = task_result(snakemake.wildcards.task, table, snakemake.params.primary_metric)
    print(result["verdicts"][result["verdicts"].level == "headline"].to_string())
    pd.to_pickle(result, snakemake.output[0])
fast_exit()  # outputs written and closed: skip the interpreter's teardown
