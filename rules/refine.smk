# A task with `refine` (alignpipe.refine): once its coarse grid is trained, this checkpoint reads the
# members' noise_fit (no activations, no metrics), finds each SNR's interpolation threshold and
# writes the sample sizes it adds around them; the refined n are then trained, extracted and aligned
# with the coarse ones (rules/common.smk: refined_n). A task with data_draws K > 1: one job for its
# K draws, from the coarse members of all of them; every draw follows its one refine.json.
checkpoint refine:
    input:
        data=draw_data,
        models=coarse_models,
    output:
        f"{RESULTS}/{{task}}/refine.json",
    params:
        task_cfg=refine_settings,
    log:
        f"{RESULTS}/{{task}}/logs/refine.log",
    priority: critical_path("refine")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/alignlib.yaml"
    script:
        "../scripts/refine.py"
