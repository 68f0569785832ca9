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
        threshold = table.attrs["widths"][0] if table.attrs.get("network") == "linear" else None
        checks = increases_with_snr(table) + minimum_over_n(table, threshold)
        checks += equal_error_different_alignment(table)[0]
        rows += [{"task": task, **row} for row in checks]
    frame = pd.DataFrame(rows)
    print(frame.to_string())
    tmp = snakemake.output[0] + ".tmp"
    frame.to_csv(tmp, index=False)
    __import__("os").replace(tmp, snakemake.output[0])
