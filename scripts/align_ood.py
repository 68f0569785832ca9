"""Rule align_ood: the task's alignment_ood.nc: the OOD metrics for all member pairs at every grid point,
computed on the activations on the OOD probes (the layout of alignment.nc)."""
import torch  # noqa: F401  (imported before job_clock, which sets its threads)

from alignlib.ensembles.alignment import compute_alignment
from alignpipe.cubes import open_activations, read_netcdf, write_netcdf
from alignpipe.jobs import job_device
from alignlib.ensembles.divergence import require_finite_alignment
from alignpipe.runlog import log_to
from alignpipe.timing import fast_exit, job_clock

with log_to(snakemake.log[0]) as log, job_clock(log, snakemake.threads) as clock:
    task, cfg = snakemake.wildcards.task, snakemake.params.task_cfg
    data = read_netcdf(snakemake.input.data)
    cube = open_activations(list(snakemake.input.cubes), expected_n=cfg["n"], key=f"tasks.{task}.n")
    with job_device(snakemake.params.device) as device, clock.numerics():
        table = compute_alignment(cube, snakemake.params.metrics, device=device, log=log,
                                  probe_x=data["ood_x"].values, metric_options=snakemake.params.metric_options,
                                  chance_draws=snakemake.params.chance, base_seed=cfg["base_seed"], task=task)
    require_finite_alignment(table, task)
    table.attrs.update({k: v for k, v in data.attrs.items() if k.startswith("ood_")})
    table.attrs["probe_set"] = "ood_x"
    print(table)
    write_netcdf(table, snakemake.output[0])
fast_exit()  # outputs written and closed: skip the interpreter's teardown
