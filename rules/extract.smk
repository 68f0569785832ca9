rule extract:
    input:
        data=f"{RESULTS}/{{task}}/data/data.nc",
        models=f"{RESULTS}/{{task}}/models/n{{ns}}.nc",
    output:
        f"{RESULTS}/{{task}}/activations/n{{ns}}.nc",
    params:
        task_cfg=task_config,
        device=config["device"],
        activation_dtype=config["activation_dtype"],
    log:
        f"{RESULTS}/{{task}}/logs/extract_n{{ns}}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=GPUS_PER_JOB,
    conda:
        "../envs/alignlib.yaml"
    script:
        "../scripts/extract.py"
