"""Rule train: every (snr, seed) member at each n of this job; members already in the task's member
store (alignpipe.store) are taken from it, so a grown grid trains only its new members. The missing
members of all the job's n are trained together: one batch per n on the CPU, buckets of several n in
one batch on a GPU (alignlib.ensembles.builder.n_buckets)."""
from alignlib.ensembles.builder import model_attrs
from alignlib.ensembles.divergence import check_divergence
from alignpipe.cubes import read_netcdf, write_netcdf
from alignpipe.jobs import job
from alignpipe.runlog import warn
from alignpipe.store import MemberStore, models_for_ns

with job(snakemake, device=True) as j:
    cfg = snakemake.params.task_cfg
    data = read_netcdf(snakemake.input.data)
    store = MemberStore(snakemake.params.store)
    with j.clock.numerics():
        models = models_for_ns(j.task, cfg, data, snakemake.params.ns, j.device, store, log=j.log)
        models.attrs.update(model_attrs(j.task, cfg, data))
        note = check_divergence(models, j.task, cfg, snakemake.params.on_divergence)  # fails by default
    if note:
        models.attrs["diverged_note"] = note
        warn(note, j.log)
    write_netcdf(models, snakemake.output[0])
