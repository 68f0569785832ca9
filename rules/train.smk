rule train:
    input:
        data=f"{RESULTS}/{{task}}/data/data.nc",
    output:
        f"{RESULTS}/{{task}}/models/n{{ns}}.nc",
    params:
        task_cfg=task_config,
        ns=chunk_ns,
        device=config["device"],
    log:
        f"{RESULTS}/{{task}}/logs/train_n{{ns}}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../envs/alignlib.yaml"
    script:
        "../scripts/train.py"
