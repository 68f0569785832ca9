# Input functions and path helpers shared by the rules.
from alignpipe.config import has_linear_theory
from functools import lru_cache

from alignpipe.draws import draw_tasks, excluding_pattern, multi_draw_tasks, parent_task, task_pattern, trained_tasks
from alignpipe.jobsize import (align_threads, chunk_seconds, claims_runtime_minutes, cube_groups, metric_groups,
                               n_groups, part_name, run_target, task_priorities, train_threads, workflow_cores)
from alignpipe.ood import ood_metrics
from alignpipe.refine import grid_n, read_refinement

RESULTS = config["results"]
FIGURE_PDF = config["figure_pdf"]
# Jobs that compute with torch ask for one GPU exactly when the config asks for CUDA
# (SLURM: sbatch --gpus=1; locally counted against --resources gpu=K).
GPUS_PER_JOB = 1 if config["device"] == "cuda" else 0
FIGURE_KINDS = [
    "alignment_vs_n",
    "alignment_vs_snr",
    "alignment_vs_test_error",
    "alignment_per_layer_vs_n",
    "noise_floor_vs_n",
]


wildcard_constraints:
    task="[A-Za-z][A-Za-z0-9_]*",
    ns="[0-9]+(-[0-9]+)*",
    metrics="[A-Za-z0-9_]+([+][A-Za-z0-9_]+)*",


# Data draws (a task's data_draws: K; alignpipe.draws): a task with K > 1 is trained, extracted and
# aligned as K internal tasks <task>_draw<k> by the rules below (wildcard task = the internal name),
# and rules/draws.smk combines their tables into the task's alignment.nc. TASKS holds every task
# that has its own data, models, cubes and table, with its settings (a K = 1 task: its own).
TASKS = trained_tasks(config)
TASK_CONFIG = dict(config, tasks=TASKS)  # the config as the per-draw jobs see it

# Job sizes follow the cores a run is given (alignpipe.jobsize.target_seconds): JOB_SECONDS is
# job_seconds on up to 2 cores and on a cluster (CORES None), less on more cores (about a sixth of
# the run's ideal wall time, at least 10 s), infinite with device: cuda (a task's grid in one job).
CORES = workflow_cores(workflow)
JOB_SECONDS = run_target(config, CORES)
MULTI_DRAW = multi_draw_tasks(config)
# align and align_ood do not write the alignment tables of a task with K > 1 (combine_draws does)
TRAINED_TASK = excluding_pattern(MULTI_DRAW)
MULTI_DRAW_TASK = task_pattern(MULTI_DRAW)


def settings(task):
    """A task's settings: a trained task's (TASKS), else (a task with K > 1: its refine job) the configured ones."""
    return TASKS[task] if task in TASKS else config["tasks"][task]


def draws_of(task):
    """The trained tasks whose members make up a configured task: itself, or its K draws."""
    return draw_tasks(config, task)


def task_config(wildcards):
    return settings(wildcards.task)


# A rule's params are only what changes its output (Snakemake reruns a job when its params change):
# so growing a grid trains only the new members (the train jobs rerun, take their finished members
# from the member store, alignpipe.store, and train the rest), changing OOD settings reruns only
# the OOD steps, and changing the metric list reruns only the alignment and what follows it.
MEMBER_KEYS = ("dataset", "network", "noise", "training", "base_seed")  # what makes a member (with its data)


def options_of(metrics):
    """The config's metric_options of these metrics only (another metric's options change nothing here)."""
    return {m: o for m, o in config["metric_options"].items() if m in metrics}


METRIC_OPTIONS = options_of(config["metrics"])


def ood_task_metrics(wildcards):
    """The metrics of a task's OOD alignment (alignpipe.ood); a draw: its task's."""
    return ood_metrics(TASK_CONFIG, wildcards.task)


def _subset(cfg, keys):
    return {key: cfg[key] for key in keys if key in cfg}


def data_settings(wildcards):
    """The task_data job's params: the data set, its split (probes, test set, training pool up to the
    largest n) and base_seed; OOD settings only where they move the split (kind extrapolate)."""
    cfg = settings(wildcards.task)
    out = dict(_subset(cfg, ("dataset", "base_seed", "probes", "test_size")), n=[max(cfg["n"])])
    if (cfg.get("ood") or {}).get("kind") == "extrapolate":
        out["ood"] = cfg["ood"]
    return out


def train_settings(wildcards):
    """A train job's params: what makes its members, and which SNRs and seeds it trains."""
    return _subset(settings(wildcards.task), MEMBER_KEYS + ("snr", "seeds"))


def network_settings(wildcards):
    """What extract needs to run the members' networks."""
    return _subset(settings(wildcards.task), MEMBER_KEYS)


def ood_settings(wildcards):
    """The OOD probe set's settings (rules/ood.smk)."""
    return dict(_subset(settings(wildcards.task), ("dataset", "base_seed", "probes", "ood")))


# A task with `refine` (alignpipe.refine) grows its grid after the coarse pass: the checkpoint rule
# refine reads the coarse members' thresholds and writes the n it adds to refine.json. Everything
# that needs the whole grid (the refined n's training and extract jobs, align) asks for it here;
# without `refine` nothing below touches the checkpoint and the grid is the config's n.
# The draws of a task with K > 1 share one grid: one refine job reads the coarse members of every draw
# and writes the task's refine.json, which each draw follows.
def refines(task):
    return bool(settings(task).get("refine"))


def refinement_file(task):
    return f"{RESULTS}/{parent_task(config, task)}/refine.json"


def refined_n(task):
    """The n the refinement adds to the task (none without `refine`); raises Snakemake's
    IncompleteCheckpointException until the checkpoint has run, so callers wait for it."""
    if not refines(task):
        return []
    return read_refinement(checkpoints.refine.get(task=parent_task(config, task)).output[0])["added_n"]


def grid_config(wildcards):
    """The task's config with n = its whole grid: the coarse n and the refined ones."""
    cfg = settings(wildcards.task)
    added = refined_n(wildcards.task)
    return dict(cfg, n=grid_n(cfg["n"], added)) if added else cfg


def align_settings(wildcards):
    """An align job's params besides its metrics: the grid it expects in the cubes, the seeds of its
    chance draws, the threshold's tolerance and whether a closed form applies."""
    cfg = grid_config(wildcards)
    return dict(_subset(cfg, ("n", "base_seed", "interpolation_tol")), theory=has_linear_theory(cfg))


def refine_settings(wildcards):
    """The refine job's params: the coarse grid, the refinement and the threshold's tolerance."""
    return _subset(settings(wildcards.task), ("n", "refine", "interpolation_tol"))


def refinement_input(wildcards):
    """The checkpoint's output as an input of the rules whose params need the whole grid."""
    return [refinement_file(wildcards.task)] if refines(wildcards.task) else []


# Job sizes (alignpipe.jobsize): training jobs of about job_seconds each (n_per_job), their
# activations in one cube per task (several only past 2 GB), metrics in align jobs of about
# job_seconds each (align_metrics_per_job); a task with one metric group is aligned by one job.
# The refined n get training jobs and cubes of their own, so the coarse files keep their names.
def coarse_chunks(task):
    return n_groups(settings(task), config["n_per_job"], JOB_SECONDS, CORES)


def refined_chunks(task):
    added = refined_n(task)
    if not added:
        return []
    return n_groups(dict(settings(task), n=added), config["n_per_job"], JOB_SECONDS, CORES)


def training_chunks(task):
    return coarse_chunks(task) + refined_chunks(task)


def _cubes(chunks, task):
    bytes_per_value = 2 if config["activation_dtype"] == "float16" else 4
    return cube_groups(chunks, settings(task), bytes_per_value)


def cube_chunks(task):
    return _cubes(coarse_chunks(task), task) + _cubes(refined_chunks(task), task)


def joined(ns):
    return "-".join(str(n) for n in ns)


def n_chunks(task):
    """Wildcard values of the task's training jobs: their sample sizes joined by '-'."""
    return [joined(group) for group in training_chunks(task)]


def chunk_ns(wildcards):
    return [int(n) for n in wildcards.ns.split("-")]


def _chunks_of(ns, chunks):
    chunks = [c for c in chunks if set(c) <= ns]
    return chunks if sorted(n for c in chunks for n in c) == sorted(ns) else None


def cube_models(wildcards):
    """The model files of the training chunks that make up the cube n{ns} (a coarse cube without
    waiting for the refinement)."""
    ns = set(chunk_ns(wildcards))
    chunks = _chunks_of(ns, coarse_chunks(wildcards.task)) or _chunks_of(ns, training_chunks(wildcards.task))
    if chunks is None:
        raise WorkflowError(f"activations/n{wildcards.ns}.nc of task {wildcards.task} is not a cube of the "
                            "current grid and job sizes")
    return [f"{RESULTS}/{wildcards.task}/models/n{joined(c)}.nc" for c in chunks]


def coarse_models(wildcards):
    """The model files of the coarse grid (the refinement's input): of every draw of a task with K > 1."""
    return [f"{RESULTS}/{task}/models/n{joined(c)}.nc" for task in draws_of(wildcards.task)
            for c in coarse_chunks(task)]


def draw_data(wildcards):
    """The data sets of the task's draws (the refinement's input: their training pools)."""
    return [f"{RESULTS}/{task}/data/data.nc" for task in draws_of(wildcards.task)]


def draw_tables(name):
    """Input function: the draws' tables ``name`` (alignment.nc, alignment_ood.nc) of a task with K > 1."""

    def of(wildcards):
        return [f"{RESULTS}/{task}/{name}" for task in draws_of(wildcards.task)]

    return of


def activation_cubes(wildcards):
    return expand(
        f"{RESULTS}/{{task}}/activations/n{{ns}}.nc",
        task=wildcards.task,
        ns=[joined(c) for c in cube_chunks(wildcards.task)],
    )


def align_groups(task):
    """The metric groups of the task's align jobs (sized on the whole grid)."""
    cfg = settings(task)
    added = refined_n(task)
    cfg = dict(cfg, n=grid_n(cfg["n"], added)) if added else cfg
    return metric_groups(cfg, config["metrics"], config["align_metrics_per_job"], JOB_SECONDS)


def align_part_files(wildcards):
    """The align_part outputs merged by the task's align job; none when one job computes every metric."""
    groups = align_groups(wildcards.task)
    if len(groups) < 2:
        return []
    return [f"{RESULTS}/{wildcards.task}/align_parts/{part_name(g)}.nc" for g in groups]


def align_cubes(wildcards):
    """The cubes the align job reads: all of the task's when it computes the metrics itself, else none."""
    return [] if align_part_files(wildcards) else activation_cubes(wildcards)


def part_metrics(wildcards):
    return wildcards.metrics.split("+")


def pdfs(*names):
    """The PDF siblings of figures (figures/<task>_<name>.pdf) when the config asks for them (figure_pdf)."""
    return [f"{RESULTS}/figures/{{task}}_{name}.pdf" for name in names] if FIGURE_PDF else []


@lru_cache(maxsize=None)
def priorities(task):
    # a task with K > 1 (its refine, combine, claims and figures jobs): as its first draw's
    return task_priorities(dict(TASK_CONFIG, job_seconds=JOB_SECONDS), task if task in TASKS else draws_of(task)[0],
                           CORES)


def critical_path(rule):
    """A job's priority: its expected seconds plus those of the longest chain waiting for it
    (alignpipe.jobsize.task_priorities), so that what holds up the end of the run starts first."""

    def of(wildcards):
        p = priorities(wildcards.task)
        value = p[rule]
        train = rule == "train"
        if isinstance(value, dict):
            key = wildcards.ns if train else wildcards.metrics
            if key in value:
                value = value[key]
            elif train:  # a refined chunk: its training, then the extract chain
                value = chunk_seconds(settings(wildcards.task), chunk_ns(wildcards), CORES, JOB_SECONDS) + p["extract"]
            else:  # a metric group of a refined grid
                value = max(value.values(), default=0)
        return int(round(value))

    return of


# Threads of the training and align jobs (alignpipe.jobsize.job_threads): 1 on up to 2 cores and on a
# cluster (profiles/slurm sets them per rule there); on more cores, a job expected to take more than
# twice JOB_SECONDS on one thread gets the fewest threads that bring it within that (at most 8).
def train_job_threads(wildcards):
    return train_threads(settings(wildcards.task), chunk_ns(wildcards), CORES, JOB_SECONDS)


def _sized_grid(task):
    """The task's settings on its whole grid when the refinement is known, else on the coarse grid
    (threads only: an estimate that must not wait for the checkpoint)."""
    from snakemake.exceptions import IncompleteCheckpointException

    cfg = settings(task)
    try:
        added = refined_n(task)
    except IncompleteCheckpointException:
        added = []
    return dict(cfg, n=grid_n(cfg["n"], added)) if added else cfg


def align_part_threads(wildcards):
    return align_threads(_sized_grid(wildcards.task), part_metrics(wildcards), CORES, JOB_SECONDS)


def align_job_threads(wildcards):
    """An align job that computes every metric itself (one metric group): as that group's; a merge: 1."""
    cfg = _sized_grid(wildcards.task)
    groups = metric_groups(cfg, config["metrics"], config["align_metrics_per_job"], JOB_SECONDS)
    return align_threads(cfg, groups[0], CORES, JOB_SECONDS) if len(groups) == 1 else 1


def task_figures(task):
    extensions = ["png", "pdf"] if FIGURE_PDF else ["png"]
    return [f"{RESULTS}/figures/{task}_{kind}.{ext}" for kind in FIGURE_KINDS for ext in extensions]


# Tasks with `ood` (rules/ood.smk): their OOD cubes, one per in-distribution cube, and their outputs.
def ood_cubes(wildcards):
    return expand(
        f"{RESULTS}/{{task}}/activations_ood/n{{ns}}.nc",
        task=wildcards.task,
        ns=[joined(c) for c in cube_chunks(wildcards.task)],
    )


def ood_outputs():
    """The OOD outputs of the run (every task with `ood`): its OOD alignment, summary and figure."""
    extensions = ["png", "pdf"] if FIGURE_PDF else ["png"]
    outputs = []
    for task, cfg in config["tasks"].items():
        if cfg.get("ood"):
            outputs += [f"{RESULTS}/{task}/alignment_ood.nc", f"{RESULTS}/{task}/ood_summary.csv"]
            outputs += [f"{RESULTS}/figures/{task}_ood_by_layer.{ext}" for ext in extensions]
    return outputs


def all_outputs():
    outputs = [f"{RESULTS}/summary.csv", f"{RESULTS}/verdicts.csv"]
    for task in config["tasks"]:
        outputs.append(f"{RESULTS}/{task}/alignment.nc")  # a missing one is rebuilt, never "Nothing to be done"
        outputs += task_figures(task)
        if has_linear_theory(config["tasks"][task]):
            outputs.append(f"{RESULTS}/figures/{task}_theory_residuals.png")
            outputs += [f"{RESULTS}/figures/{task}_theory_residuals.pdf"] if FIGURE_PDF else []
    outputs += ood_outputs()  # tasks with `ood` (rules/ood.smk)
    return outputs
