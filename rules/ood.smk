# Out-of-distribution probes (a task's `ood` section; alignpipe.ood): the members' activations on the
# task's OOD probes (data/ood.nc's ood_x), one cube per in-distribution cube; their alignment for the OOD
# metrics in alignment_ood.nc; the per-layer comparison with alignment.nc in ood_summary.csv and a figure.
# (the config's OOD checks ran with the rest of its validation: alignpipe.config.checked_config)


# The OOD probe set (data/ood.nc) has a job of its own, so that changing the task's `ood` settings
# reruns only the OOD steps (for kind extrapolate, whose patients come out of the split, data.nc too).
rule ood_data:
    input:
        data=f"{RESULTS}/{{task}}/data/data.nc",
    output:
        f"{RESULTS}/{{task}}/data/ood.nc",
    params:
        task_cfg=ood_settings,
    log:
        f"{RESULTS}/{{task}}/logs/ood_data.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/alignlib.yaml"
    script:
        "../scripts/make_data.py"


rule extract_ood:
    input:
        data=f"{RESULTS}/{{task}}/data/data.nc",
        probes=f"{RESULTS}/{{task}}/data/ood.nc",
        models=cube_models,
    output:
        f"{RESULTS}/{{task}}/activations_ood/n{{ns}}.nc",
    params:
        task_cfg=network_settings,
        probe_var="ood_x",
        activation_dtype=config["activation_dtype"],
    log:
        f"{RESULTS}/{{task}}/logs/extract_ood_n{{ns}}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=GPUS_PER_JOB,
    conda:
        "../envs/alignlib.yaml"
    script:
        "../scripts/extract.py"


rule align_ood:
    wildcard_constraints:
        task=TRAINED_TASK,  # a task with data draws: its draws' tables are combined (rules/draws.smk)
    input:
        cubes=ood_cubes,
        probes=f"{RESULTS}/{{task}}/data/ood.nc",
        refine=refinement_input,  # a task with `refine`: its grid (params) needs the checkpoint
    output:
        f"{RESULTS}/{{task}}/alignment_ood.nc",
    params:
        task_cfg=align_settings,
        metrics=ood_task_metrics,
        metric_options=lambda wildcards: options_of(ood_task_metrics(wildcards)),
        chance=config["chance"]["draws"],  # the chance band on the OOD figure (alignlib.stats.chance)
    log:
        f"{RESULTS}/{{task}}/logs/align_ood.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=GPUS_PER_JOB,
    conda:
        "../envs/alignlib.yaml"
    script:
        "../scripts/align_ood.py"


rule ood_summary:
    input:
        alignment=f"{RESULTS}/{{task}}/alignment.nc",
        alignment_ood=f"{RESULTS}/{{task}}/alignment_ood.nc",
    output:
        csv=f"{RESULTS}/{{task}}/ood_summary.csv",
        png=f"{RESULTS}/figures/{{task}}_ood_by_layer.png",
        pdfs=pdfs("ood_by_layer"),  # figure_pdf: true; drawn once, saved as PNG and PDF
    params:
        figure_pdf=FIGURE_PDF,
    log:
        f"{RESULTS}/{{task}}/logs/ood_summary.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/alignlib.yaml"
    script:
        "../scripts/ood_summary.py"
