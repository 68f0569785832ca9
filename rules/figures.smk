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
        fit=report(
            f"{RESULTS}/figures/{{task}}_noise_floor_vs_n.png",
            caption="../report/noise_floor_vs_n.rst",
            category="{task}",
        ),
        pdfs=pdfs(*FIGURE_KINDS),  # figure_pdf: true; drawn once, saved as PNG and PDF
    params:
        pdf=FIGURE_PDF,
        tol=lambda wildcards: config["tasks"][wildcards.task]["interpolation_tol"],
    log:
        f"{RESULTS}/{{task}}/logs/figures.log",
    priority: critical_path("figures")
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
        pdfs=pdfs("theory_residuals"),
    params:
        pdf=FIGURE_PDF,
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


# The claim tests of one task (the costly part: member resampling), run as soon as its
# alignment.nc exists; the summary job only stacks the tasks' tables into the two CSVs.
rule claims:
    input:
        f"{RESULTS}/{{task}}/alignment.nc",
    output:
        f"{RESULTS}/{{task}}/claims.pkl",
    params:
        primary_metric=lambda wildcards: config["tasks"][wildcards.task]["primary_metric"],
        criteria=config["claims"],  # fixed in advance (docs/methods.md)
        tol=lambda wildcards: config["tasks"][wildcards.task]["interpolation_tol"],
    log:
        f"{RESULTS}/{{task}}/logs/claims.log",
    priority: critical_path("claims")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=lambda wildcards: claims_runtime_minutes(config, wildcards.task),  # 13 min at paper scale
    conda:
        "../envs/alignlib.yaml"
    script:
        "../scripts/claims.py"


rule summary:
    input:
        expand(f"{RESULTS}/{{task}}/claims.pkl", task=list(config["tasks"])),
    output:
        summary=report(f"{RESULTS}/summary.csv", caption="../report/summary.rst", category="summary"),
        verdicts=report(f"{RESULTS}/verdicts.csv", caption="../report/verdicts.rst", category="summary"),
    params:
        tasks=list(config["tasks"]),
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
