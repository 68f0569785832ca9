rule figures:
    input:
        alignment=f"{RESULTS}/{{task}}/alignment.nc",
    output:
        n=report(
            f"{RESULTS}/figures/{{task}}_alignment_vs_n.png",
            caption="../report/alignment_vs_n.rst",
            category="{task}",
        ),
        snr=report(
            f"{RESULTS}/figures/{{task}}_alignment_vs_snr.png",
            caption="../report/alignment_vs_snr.rst",
            category="{task}",
        ),
        error=report(
            f"{RESULTS}/figures/{{task}}_alignment_vs_test_error.png",
            caption="../report/alignment_vs_test_error.rst",
            category="{task}",
        ),
        layers=report(
            f"{RESULTS}/figures/{{task}}_alignment_per_layer_vs_n.png",
            caption="../report/alignment_per_layer_vs_n.rst",
            category="{task}",
        ),
        pdfs=expand(
            f"{RESULTS}/figures/{{{{task}}}}_{{kind}}.pdf",
            kind=FIGURE_KINDS,
        ),
    log:
        f"{RESULTS}/{{task}}/logs/figures.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/alignlib.yaml"
    script:
        "../scripts/figures.py"


rule theory_residuals:
    input:
        alignment=f"{RESULTS}/{{task}}/alignment.nc",
    output:
        png=report(
            f"{RESULTS}/figures/{{task}}_theory_residuals.png",
            caption="../report/theory_residuals.rst",
            category="{task}",
        ),
        pdf=f"{RESULTS}/figures/{{task}}_theory_residuals.pdf",
    log:
        f"{RESULTS}/{{task}}/logs/theory_residuals.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/alignlib.yaml"
    script:
        "../scripts/theory_residuals.py"


rule summary:
    input:
        expand(f"{RESULTS}/{{task}}/alignment.nc", task=list(config["tasks"])),
    output:
        summary=report(f"{RESULTS}/summary.csv", caption="../report/summary.rst", category="summary"),
        verdicts=report(f"{RESULTS}/verdicts.csv", caption="../report/verdicts.rst", category="summary"),
    params:
        tasks=list(config["tasks"]),
        primary_metrics={name: task["primary_metric"] for name, task in config["tasks"].items()},
    log:
        f"{RESULTS}/logs/summary.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/alignlib.yaml"
    script:
        "../scripts/summary.py"
