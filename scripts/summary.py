"""Rule summary: the paper's claims tested on every task, one row per check."""
import pandas as pd

from alignlib.claims import equal_error_different_alignment, increases_with_snr, minimum_over_n
from alignlib.cubes import read_netcdf
from alignlib.runlog import log_to

with log_to(snakemake.log[0]):
    rows = []
    for path in snakemake.input:
        table = read_netcdf(path)
        task = table.attrs["task"]
        if table.attrs.get("network") == "linear":  # threshold n = d, claimed to within 15 %
            checks = minimum_over_n(table, float(table.attrs["widths"][0]), bounds=(0.85, 1.15))
        else:  # the detected threshold, to within a factor 2
            checks = minimum_over_n(table, table["interpolation_threshold"], bounds=(0.5, 2.0))
        checks = increases_with_snr(table) + checks
        checks += equal_error_different_alignment(table)[0]
        rows += [{"task": task, **row} for row in checks]
    frame = pd.DataFrame(rows)
    print(frame.to_string())
    tmp = snakemake.output[0] + ".tmp"
    frame.to_csv(tmp, index=False)
    __import__("os").replace(tmp, snakemake.output[0])
