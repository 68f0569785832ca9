"""Rule claims: the paper's claims tested on one task (its share of verdicts.csv and summary.csv)."""
import os

import pandas as pd

from alignlib.claims.claim_tests import Criteria
from alignpipe.cubes import read_netcdf
from alignpipe.jobs import job
from alignlib.claims.verdicts import task_result

with job(snakemake) as j:
    table = read_netcdf(snakemake.input[0])
    with j.clock.numerics():
        criteria = Criteria.from_config(snakemake.params.criteria, tol=snakemake.params.tol)
        result = task_result(snakemake.wildcards.task, table, snakemake.params.primary_metric, criteria)
    print(result["verdicts"][result["verdicts"].level == "headline"].to_string())
    tmp = snakemake.output[0] + ".tmp"
    pd.to_pickle(result, tmp)
    os.replace(tmp, snakemake.output[0])  # atomic: a killed job leaves no complete-looking file
