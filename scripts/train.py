"""Rule train: every (snr, seed) member at each n of this job, batched per n; members already in the
task's member store (alignpipe.store) are taken from it, so a grown grid trains only its new members."""
import xarray as xr

from alignlib.ensembles.builder import model_attrs
from alignlib.ensembles.divergence import check_divergence
from alignpipe.cubes import read_netcdf, write_netcdf
from alignpipe.jobs import job
from alignpipe.runlog import warn
from alignpipe.store import MemberStore, models_at_n

with job(snakemake, device=True) as j:
    cfg = snakemake.params.task_cfg
    data = read_netcdf(snakemake.input.data)
    store = MemberStore(snakemake.params.store)
    with j.clock.numerics():
        parts = [models_at_n(j.task, cfg, data, n, j.device, store, log=j.log) for n in snakemake.params.ns]
        models = xr.concat(parts, dim="n")
        models.attrs.update(model_attrs(j.task, cfg, data))
        note = check_divergence(models, j.task, cfg, snakemake.params.on_divergence)  # fails by default
    if note:
        models.attrs["diverged_note"] = note
        warn(note, j.log)
    write_netcdf(models, snakemake.output[0])
