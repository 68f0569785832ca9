# Input functions and path helpers shared by the rules.
from alignlib.config import has_linear_theory, n_groups

RESULTS = config["results"]
# Jobs that compute with torch ask for one GPU exactly when the config asks for CUDA
# (SLURM: sbatch --gpus=1; locally counted against --resources gpu=K).
GPUS_PER_JOB = 1 if config["device"] == "cuda" else 0
FIGURE_KINDS = [
    "alignment_vs_n",
    "alignment_vs_snr",
    "alignment_vs_test_error",
    "alignment_per_layer_vs_n",
]


wildcard_constraints:
    task="[A-Za-z][A-Za-z0-9_]*",
    ns="[0-9]+(-[0-9]+)*",


def task_config(wildcards):
    return config["tasks"][wildcards.task]


def n_chunks(task):
    """Wildcard values of the task's training jobs: their sample sizes joined by '-'."""
    groups = n_groups(config["tasks"][task], config["n_per_job"])
    return ["-".join(str(n) for n in group) for group in groups]


def chunk_ns(wildcards):
    return [int(n) for n in wildcards.ns.split("-")]


def activation_cubes(wildcards):
    return expand(
        f"{RESULTS}/{{task}}/activations/n{{ns}}.nc",
        task=wildcards.task,
        ns=n_chunks(wildcards.task),
    )


def task_figures(task):
    return [f"{RESULTS}/figures/{task}_{kind}.png" for kind in FIGURE_KINDS]


def all_outputs():
    outputs = [f"{RESULTS}/summary.csv", f"{RESULTS}/verdicts.csv"]
    for task in config["tasks"]:
        outputs.append(f"{RESULTS}/{task}/alignment.nc")  # a missing one is rebuilt, never "Nothing to be done"
        outputs += task_figures(task)
        if has_linear_theory(config["tasks"][task]):
            outputs.append(f"{RESULTS}/figures/{task}_theory_residuals.png")
    return outputs
