# Alignment during training (alignlib.checkpoints): for a task with checkpoints on (the top-level or
# the task's `checkpoints` key), its members at a few n are re-trained from their seeds with their
# weights recorded at the checkpoints, their activations extracted at each, aligned per checkpoint
# for the task's primary metric (and checkpoints.metrics), summarised (first-epoch fraction) and drawn.
from alignlib.checkpoints import checkpoint_metrics, checkpoint_settings
from alignlib.config import KNOWN_METRICS

try:  # a bad value fails before any job, naming the key
    CHECKPOINTS = {task: checkpoint_settings(config, task) for task in config["tasks"]}
except ValueError as error:
    raise WorkflowError(str(error)) from None
for _task, _settings in CHECKPOINTS.items():
    _unknown = [m for m in (_settings or {}).get("metrics", []) if m not in KNOWN_METRICS]
    if _unknown:
        raise WorkflowError(f"invalid config key 'checkpoints.metrics' (task {_task}): unknown metric(s) "
                            f"{_unknown}; known: {list(KNOWN_METRICS)}")


def checkpoint_outputs():
    """What rule all asks for: per task with checkpoints, its training figure and summary."""
    outputs = []
    for task, settings in CHECKPOINTS.items():
        if settings:
            outputs += [f"{RESULTS}/figures/{task}_alignment_training.png",
                        f"{RESULTS}/{task}/training_summary.csv"]
    return outputs


def checkpoint_settings_of(wildcards):
    settings = CHECKPOINTS.get(wildcards.task)
    if not settings:
        raise WorkflowError(f"task {wildcards.task} has no checkpoints (set the config key checkpoints)")
    return settings


rule training_checkpoints:
    input:
        data=f"{RESULTS}/{{task}}/data/data.nc",
    output:
        f"{RESULTS}/{{task}}/checkpoints/activations.nc",
    params:
        task_cfg=task_config,
        settings=checkpoint_settings_of,
        device=config["device"],
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
                                                     checkpoint_settings_of(wildcards)),
        device=config["device"],
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
