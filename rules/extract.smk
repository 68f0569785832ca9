# One job per activation cube: all of a task's training chunks at once (a task of the default
# config is one cube), so the forward passes of milliseconds do not each pay a process start-up.
rule extract:
    input:
        data=f"{RESULTS}/{{task}}/data/data.nc",
        probes=f"{RESULTS}/{{task}}/data/data.nc",  # the probe set's file (extract_ood: data/ood.nc)
        models=cube_models,
    output:
        f"{RESULTS}/{{task}}/activations/n{{ns}}.nc",
    params:
        task_cfg=network_settings,
        probe_var="probe_x",
        activation_dtype=config["activation_dtype"],
    log:
        f"{RESULTS}/{{task}}/logs/extract_n{{ns}}.log",
    priority: critical_path("extract")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=GPUS_PER_JOB,
    conda:
        "../envs/alignlib.yaml"
    script:
        "../scripts/extract.py"
