# A task whose metrics make more than job_seconds of work is split: one align_part job per metric
# group (alignpipe.jobsize.metric_groups), merged by the task's align job into alignment.nc. A task
# with one group is computed by its align job alone (no part files).
rule align_part:
    input:
        cubes=activation_cubes,
        data=f"{RESULTS}/{{task}}/data/data.nc",
        refine=refinement_input,  # a task with `refine`: its grid (params) needs the checkpoint
    output:
        f"{RESULTS}/{{task}}/align_parts/{{metrics}}.nc",
    params:
        task_cfg=align_settings,  # n: the whole grid, coarse and refined
        metrics=part_metrics,
        chance=config["chance"]["draws"],  # K permutation-baseline draws per cell (alignlib.stats.chance)
        metric_options=METRIC_OPTIONS,
    log:
        f"{RESULTS}/{{task}}/logs/align_{{metrics}}.log",
    priority: critical_path("align_part")
    threads: align_part_threads  # 1, except on more than 2 cores for a group too costly for one
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=GPUS_PER_JOB,
    conda:
        "../envs/alignlib.yaml"
    script:
        "../scripts/align_part.py"


rule align:
    wildcard_constraints:
        task=TRAINED_TASK,  # a task with data draws: its draws' tables are combined (rules/draws.smk)
    input:
        cubes=align_cubes,
        parts=align_part_files,
        data=f"{RESULTS}/{{task}}/data/data.nc",
        refine=refinement_input,
    output:
        f"{RESULTS}/{{task}}/alignment.nc",
    params:
        task_cfg=align_settings,
        metrics=config["metrics"],
        chance=config["chance"]["draws"],
        metric_options=METRIC_OPTIONS,
    log:
        f"{RESULTS}/{{task}}/logs/align.log",
    priority: critical_path("align")
    threads: align_job_threads  # a merge of parts: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=GPUS_PER_JOB,
    conda:
        "../envs/alignlib.yaml"
    script:
        "../scripts/align.py"
