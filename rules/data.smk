rule task_data:
    output:
        f"{RESULTS}/{{task}}/data/data.nc",
    params:
        task_cfg=data_settings,
    log:
        f"{RESULTS}/{{task}}/logs/data.log",
    priority: critical_path("task_data")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/alignlib.yaml"
    script:
        "../scripts/make_data.py"
