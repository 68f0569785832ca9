# Data draws (a task's data_draws: K > 1; alignpipe.draws): the task's K draws are trained, extracted
# and aligned by the rules above as the internal tasks <task>_draw<k>; these rules merge the draws'
# tables into the task's alignment.nc and alignment_ood.nc, which its claims, figures and OOD summary
# read. A task with K = 1 has neither (its align and align_ood write them).
rule combine_draws:
    wildcard_constraints:
        task=MULTI_DRAW_TASK,
    input:
        draw_tables("alignment.nc"),
    output:
        f"{RESULTS}/{{task}}/alignment.nc",
    params:
        tol=lambda wildcards: config["tasks"][wildcards.task]["interpolation_tol"],
        thresholds=True,  # recomputed on the combined table
        draws=lambda wildcards: draws_of(wildcards.task),
    log:
        f"{RESULTS}/{{task}}/logs/combine_draws.log",
    priority: critical_path("align")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/alignlib.yaml"
    script:
        "../scripts/combine_draws.py"


rule combine_draws_ood:
    wildcard_constraints:
        task=MULTI_DRAW_TASK,
    input:
        draw_tables("alignment_ood.nc"),
    output:
        f"{RESULTS}/{{task}}/alignment_ood.nc",
    params:
        tol=lambda wildcards: config["tasks"][wildcards.task]["interpolation_tol"],
        thresholds=False,
        draws=lambda wildcards: draws_of(wildcards.task),
    log:
        f"{RESULTS}/{{task}}/logs/combine_draws_ood.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/alignlib.yaml"
    script:
        "../scripts/combine_draws.py"
