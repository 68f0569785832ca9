rule train:
    input:
        data=f"{RESULTS}/{{task}}/data/data.nc",
    output:
        f"{RESULTS}/{{task}}/models/n{{ns}}.nc",
    params:
        task_cfg=task_config,
        ns=chunk_ns,
        device=config["device"],
        on_divergence=config["on_divergence"],
    log:
        f"{RESULTS}/{{task}}/logs/train_n{{ns}}.log",
    # torch and BLAS compute with this many threads (alignpipe.timing.set_threads); profiles set
    # it per rule with set-threads (small batched networks: 1, and more jobs at once)
    priority: critical_path("train")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
        # the device index of a local GPU job is chosen by alignpipe.gpu.acquire_gpu
        gpu=GPUS_PER_JOB,
        cpus_per_gpu=GPUS_PER_JOB,
    conda:
        "../envs/alignlib.yaml"
    script:
        "../scripts/train.py"
