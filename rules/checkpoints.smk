# Alignment during training (alignpipe.checkpoints): for a task with checkpoints on (the top-level or
# the task's `checkpoints` key), its members at a few n are re-trained from their seeds with their
# weights recorded at the checkpoints, their activations extracted at each, aligned per checkpoint
# for the task's primary metric (and checkpoints.metrics), summarised (first-epoch fraction) and drawn.
from alignpipe.checkpoints import all_checkpoint_settings, checkpoint_metrics, checkpoint_targets, settings_of

CHECKPOINTS = all_checkpoint_settings(config)  # checked with the rest of the config (alignpipe.config)
# what rule all asks for (Snakefile): per task with checkpoints, its figure and summary
CHECKPOINT_TARGETS = checkpoint_targets(CHECKPOINTS, RESULTS)


rule training_checkpoints:
    input:
        data=f"{RESULTS}/{{task}}/data/data.nc",
    output:
        f"{RESULTS}/{{task}}/checkpoints/activations.nc",
    params:
        task_cfg=task_config,
        settings=lambda wildcards: settings_of(CHECKPOINTS, wildcards.task),
        activation_dtype=config["activation_dtype"],
    log:
        f"{RESULTS}/{{task}}/logs/training_checkpoints.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=GPUS_PER_JOB,
        cpus_per_gpu=GPUS_PER_JOB,
    conda:
        "../envs/alignlib.yaml"
    script:
        "../scripts/training_checkpoints.py"


rule align_training:
    input:
        cube=f"{RESULTS}/{{task}}/checkpoints/activations.nc",
        data=f"{RESULTS}/{{task}}/data/data.nc",
    output:
        f"{RESULTS}/{{task}}/alignment_training.nc",
    params:
        metrics=lambda wildcards: checkpoint_metrics(config["tasks"][wildcards.task],
                                                     settings_of(CHECKPOINTS, wildcards.task)),
        metric_options=config.get("metric_options") or {},
    log:
        f"{RESULTS}/{{task}}/logs/align_training.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=GPUS_PER_JOB,
    conda:
        "../envs/alignlib.yaml"
    script:
        "../scripts/align_training.py"


# The figure labels each n against the interpolation thresholds of the task's main alignment.nc.
rule training_figure:
    input:
        table=f"{RESULTS}/{{task}}/alignment_training.nc",
        alignment=f"{RESULTS}/{{task}}/alignment.nc",
    output:
        png=report(
            f"{RESULTS}/figures/{{task}}_alignment_training.png",
            caption="../report/alignment_training.rst",
            category="{task}",
        ),
        summary=f"{RESULTS}/{{task}}/training_summary.csv",
        pdfs=pdfs("alignment_training"),
    params:
        pdf=FIGURE_PDF,
    log:
        f"{RESULTS}/{{task}}/logs/training_figure.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/alignlib.yaml"
    script:
        "../scripts/training_figure.py"
