"""Rule align_ood: the task's alignment_ood.nc: the OOD metrics for all member pairs at every grid point,
computed on the activations on the OOD probes (the layout of alignment.nc)."""
from alignlib.ensembles.alignment import compute_alignment
from alignlib.ensembles.divergence import require_finite_alignment
from alignpipe.cubes import open_activations, read_netcdf, write_netcdf
from alignpipe.jobs import job

with job(snakemake, device=True) as j:
    cfg, params = snakemake.params.task_cfg, snakemake.params
    ood = read_netcdf(snakemake.input.probes)
    cube = open_activations(list(snakemake.input.cubes), expected_n=cfg["n"], key=f"tasks.{j.task}.n")
    with j.clock.numerics():
        table = compute_alignment(cube, params.metrics, device=j.device, log=j.log, probe_x=ood["ood_x"].values,
                                  metric_options=params.metric_options, chance_draws=params.chance,
                                  base_seed=cfg["base_seed"], task=j.task)
    require_finite_alignment(table, j.task)
    table.attrs.update({k: v for k, v in ood.attrs.items() if k.startswith("ood_")})
    table.attrs["probe_set"] = "ood_x"
    print(table)
    write_netcdf(table, snakemake.output[0])
