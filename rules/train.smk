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
        # One GPU exactly when the config asks for CUDA: on SLURM `sbatch --gpus=1
        # --cpus-per-gpu=N`; locally counted against `--resources gpu=K` (profiles/default),
        # the device index is chosen by alignlib.gpu.acquire_gpu.
        gpu=1 if config["device"] == "cuda" else 0,
        cpus_per_gpu=1 if config["device"] == "cuda" else 0,
    conda:
        "../envs/alignlib.yaml"
    script:
        "../scripts/train.py"
