rule align:
    input:
        cubes=activation_cubes,
        data=f"{RESULTS}/{{task}}/data/data.nc",
    output:
        f"{RESULTS}/{{task}}/alignment.nc",
    params:
        task_cfg=task_config,
        metrics=config["metrics"],
        device=config["device"],
    log:
        f"{RESULTS}/{{task}}/logs/align.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=GPUS_PER_JOB,
    conda:
        "../envs/alignlib.yaml"
    script:
        "../scripts/align.py"
