rule train:
    input:
        data=f"{RESULTS}/{{task}}/data/data.nc",
    output:
        f"{RESULTS}/{{task}}/models/n{{ns}}.nc",
    params:
        task_cfg=train_settings,
        ns=chunk_ns,
        on_divergence=config["on_divergence"],
        # finished members (alignpipe.store): a grown grid trains only its new ones
        store=lambda wildcards: f"{RESULTS}/{wildcards.task}/store",
    log:
        f"{RESULTS}/{{task}}/logs/train_n{{ns}}.log",
    # torch and BLAS compute with this many threads (alignpipe.timing.set_threads): 1, except on
    # more than 2 cores for an n too costly for one (alignpipe.jobsize.job_threads); a profile's
    # set-threads overrides it
    priority: critical_path("train")
    threads: train_job_threads
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
