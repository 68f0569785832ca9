"""Rule summary: the paper's claims tested on every task, one row per check."""
import os

import pandas as pd

from alignlib.claims import task_claims
from alignlib.cubes import read_netcdf
from alignlib.runlog import log_to

with log_to(snakemake.log[0]):
    frame = pd.DataFrame([row for path in snakemake.input for row in task_claims(read_netcdf(path))])
    print(frame.to_string())
    tmp = snakemake.output[0] + ".tmp"
    frame.to_csv(tmp, index=False)
    os.replace(tmp, snakemake.output[0])  # atomic: a killed job leaves no complete-looking CSV
