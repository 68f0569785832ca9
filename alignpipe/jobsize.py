"""How the pipeline cuts a task into jobs: training jobs and align jobs sized by expected work.

A job pays a start-up of a few seconds (Python, torch, reading its inputs) before its
numerics start, so one job per sample size spends much of a small run starting processes,
while one job per task leaves a long serial tail. With ``n_per_job: auto`` the sample sizes of
a task are packed into about ``job_seconds`` of expected training each; the metrics of a task
are packed the same way into align jobs (``align_metrics_per_job: auto``).

The estimates are seconds of one CPU core of a 2-core x86-64 laptop, fitted on the default
config (training: full-batch steps of the batched members; metrics: their cost in probes and
members). They only decide the grouping, never a number the pipeline writes: every member
trains in its own n's batch and every metric is computed on its own, whichever job runs it.

The cores a run is given (``--cores``; :func:`target_seconds`) set the target: ``job_seconds`` is
the target on the 2 cores it was tuned for; with more cores the target shrinks to about a sixth of
the run's ideal wall time (expected work / cores), at least 10 s, so that the longest chain of
dependent jobs (the critical path: data, coarse training, refine, refined training, extract,
align, figures) stays within that wall time; a job that would take more than twice the target
on one thread (one costly n or metric) is given threads (:func:`job_threads`). With ``device: cuda`` a task's grid is one
training job and its metrics one align job: on a GPU they are one batched computation. On a
cluster (no local cores) the target is ``job_seconds``. :func:`plan` lists the jobs a run is
expected to have, with their expected seconds and what each waits for, and
:func:`critical_path` the longest chain of them (``benchmarks/bench_pipeline.py --plan-cores``).
Nothing here imports torch (the Snakefile uses it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from alignlib.ensembles.datasets import IMAGE_SHAPES

from alignpipe.draws import draw_tasks, trained_tasks
from alignpipe.ood import ood_metrics
from alignpipe.refine import grid_n, refined_ns
from alignpipe.taskspec import END_TO_END_METRICS, has_linear_theory, layer_widths

# --------------------------------------------------------------------------- training

STEP_SECONDS = 1.0e-3  # dispatch cost of one optimisation step of a batch of members
MAC_SECONDS = 0.87e-9  # per member, training sample and weight (forward + backward + update)
N_SECONDS = 0.05  # per n: noise draws, initialisation, test error
# preconditioned gradient descent stops after 17-25 steps on the default grid (README);
# counting 100 keeps the estimate an upper bound without assuming its max_steps
PRECONDITIONED_STEPS = 100
_INPUT_DIMS = {"digits": 64, "diabetes": 10, "mnist": 784, "cifar10": 3072}


def input_dim(task: dict) -> int:
    """The input dimension d of a task, from its config alone."""
    kind = task["dataset"]["kind"]
    return _INPUT_DIMS.get(kind, task["dataset"].get("dim", 50))


def weights_per_sample(task: dict) -> int:
    """Multiply-adds of one forward pass of one member on one sample (dense layers; 3x3 convolutions)."""
    net = task["network"]
    macs, fan_in = 0, input_dim(task)
    if net["kind"] == "cnn":
        channels, h, w = IMAGE_SHAPES.get(task["dataset"]["kind"], (1, 1, 1))
        for out in net["channels"]:
            macs += 9 * channels * out * h * w
            channels, h, w = out, h // 2, w // 2
        fan_in = channels * h * w
    for width in [*net["hidden"], layer_widths(task)[-1]]:
        macs += fan_in * width
        fan_in = width
    return macs


def members(task: dict) -> int:
    return len(task["snr"]) * task["seeds"]


def train_seconds(task: dict, n: int, threads: int = 1) -> float:
    """Expected seconds of training all members at sample size n (an upper bound: every member runs to
    max_steps) with ``threads`` threads (:func:`thread_speedup` of the arithmetic; the per-step dispatch
    stays serial)."""
    training = task["training"]
    if training["optimizer"] == "preconditioned_gd":
        steps = min(training["max_steps"], PRECONDITIONED_STEPS)
        samples = input_dim(task)  # the linear network's gradient comes from d x d sufficient statistics
    else:
        steps = training["max_steps"]
        batch = training.get("batch_size")
        samples = min(n, batch) if batch else n
    arithmetic = MAC_SECONDS * members(task) * samples * weights_per_sample(task) / thread_speedup(threads)
    return N_SECONDS + steps * (STEP_SECONDS + arithmetic)


def n_groups(task: dict, n_per_job="auto", job_seconds: float = 60.0, cores: int | None = None) -> list[list[int]]:
    """The task's sample sizes in training jobs, each group sorted, groups by their smallest n.

    ``n_per_job`` an integer: consecutive groups of that many n (the last may be shorter).
    ``"auto"``: ceil(expected total / ``job_seconds``) groups of consecutive n with the largest
    group as small as possible (:func:`train_seconds`); an n expected to take longer than
    ``job_seconds`` ends up a job of its own. On more than 2 ``cores`` (``job_seconds``: the run's
    :func:`target_seconds`): consecutive n cut greedily into runs of at most ``job_seconds`` (an n
    above it alone), so that no run waits for the costliest n's share of the grid.
    """
    ns = sorted(int(n) for n in task["n"])
    if n_per_job != "auto":
        k = int(n_per_job)
        return [ns[i:i + k] for i in range(0, len(ns), k)]
    costs = [train_seconds(task, n) for n in ns]
    if cores is not None and cores > REFERENCE_CORES:
        return _cut(ns, costs, job_seconds)
    return _split_consecutive(ns, costs, _group_count(costs, job_seconds))


# --------------------------------------------------------------------------- extract

CUBE_BYTES = 2e9  # an activation cube file holds at most this much before compression (one extract job each)


def cube_bytes(task: dict, ns, bytes_per_value: int = 4) -> float:
    """Size before compression of the activation cube of the sample sizes ``ns`` (NaN-padded to the widest layer)."""
    widths = layer_widths(task)
    return members(task) * len(ns) * len(widths) * max(widths) * task["probes"] * bytes_per_value


def cube_groups(chunks: list[list[int]], task: dict, bytes_per_value: int = 4,
                limit: float = CUBE_BYTES) -> list[list[int]]:
    """Training chunks joined into activation cubes: consecutive chunks share a cube (one extract job)
    while it stays under ``limit`` bytes; a task of the default config is one cube."""
    cubes, current = [], []
    for chunk in chunks:
        if current and cube_bytes(task, current + chunk, bytes_per_value) > limit:
            cubes.append(current)
            current = []
        current = current + list(chunk)
    return cubes + ([current] if current else [])


# --------------------------------------------------------------------------- align

# Seconds per (grid point x recorded layer x member x probe^2) of each metric's batched
# computation (alignlib.metrics.pairwise, one CPU thread), from the default config's linear task.
METRIC_SECONDS = {
    "cka_linear": 4e-9,
    "cka_linear_debiased": 7e-9,
    "cka_rbf": 8.7e-8,
    "information_imbalance": 8.2e-8,
    "neighborhood_overlap": 8.2e-8,
    "mutual_knn": 5e-8,
    "procrustes": 1.3e-8,
    "cca": 1.9e-8,
    "svcca": 1.9e-8,
    "pwcca": 2.6e-8,
    "rsa": 4.9e-8,
    "cosine_end_to_end": 1e-10,
}
DEFAULT_METRIC_SECONDS = 8.7e-8  # a metric not listed: as costly as the costliest


def task_metrics(task: dict, metrics) -> list[str]:
    """The metrics computed for a task, in the config's order (the end-to-end cosine only for linear networks)."""
    linear = task["network"]["kind"] == "linear"
    return [m for m in metrics if linear or m not in END_TO_END_METRICS]


def metric_layers(task: dict, metric: str) -> int:
    """The layers a metric is computed on: the end-to-end map only, or every recorded layer."""
    return 1 if metric in END_TO_END_METRICS else len(layer_widths(task))


def align_seconds(task: dict, metric: str, threads: int = 1) -> float:
    """Expected seconds of one metric on every grid point and recorded layer of a task (``threads``:
    :func:`thread_speedup`)."""
    grid = len(task["snr"]) * len(task["n"])
    cost = (METRIC_SECONDS.get(metric, DEFAULT_METRIC_SECONDS) * grid * metric_layers(task, metric)
            * task["seeds"] * task["probes"] ** 2)
    return cost / thread_speedup(threads)


# The claims job resamples members B = 1000 times per metric, layer and grid point, and each
# replicate averages an S x S pair matrix: its time grows as panels x grid points x S^2. Measured:
# 765 s for the diabetes paper grid (26 metric-layer panels, 198 grid points, S = 96 members in 3
# draws; one thread, 2-core VM) and 43 s for the held-out mlp_classification (26 panels, 39 grid
# points, S = 48): 1.6e-5 s per panel, grid point and member^2. The rest of the job (start-up, reading
# alignment.nc, the tests themselves) took 6.3-9.4 s in the default run at 6636521 (its claims logs'
# process_s less the resampling part): 7 s.
CLAIMS_SECONDS = 1.6e-5
CLAIMS_BASE_SECONDS = 7.0


def claims_seconds(task: dict, metrics, members: int, n_count: int | None = None) -> float:
    """Expected seconds of the claims job of a task with ``members`` members per grid point (all data
    draws together) on ``n_count`` sample sizes (default: the config's n)."""
    grid = len(task["snr"]) * (len(task["n"]) if n_count is None else n_count)
    panels = sum(metric_layers(task, m) for m in task_metrics(task, metrics))
    return CLAIMS_BASE_SECONDS + CLAIMS_SECONDS * panels * grid * members ** 2


def task_claims_seconds(config: dict, task: str, added) -> float:
    """:func:`claims_seconds` of a configured task: its members in every data draw, its grid with the
    refinement's n ``added``."""
    cfg = config["tasks"][task]
    members = cfg["seeds"] * len(draw_tasks(config, task))
    return claims_seconds(cfg, config["metrics"], members, len(grid_n(cfg["n"], added)))


def claims_runtime_minutes(config: dict, task: str) -> int:
    """The claims job's runtime request (minutes, for a cluster): three times its expected seconds
    (the refinement's n assumed, :func:`assumed_refinement`), at least 10."""
    seconds = task_claims_seconds(config, task, assumed_refinement(config["tasks"][task]))
    return max(10, math.ceil(3 * seconds / 60))


def metric_groups(task: dict, metrics, per_job="auto", job_seconds: float = 60.0) -> list[list[str]]:
    """The task's metrics in align jobs, each group in the config's order, groups by their first metric.

    ``per_job`` an integer: consecutive groups of that many metrics. ``"auto"``: as few groups
    as keep each near ``job_seconds`` of expected computation (:func:`align_seconds`).
    """
    names = task_metrics(task, metrics)
    if per_job != "auto":
        k = int(per_job)
        return [names[i:i + k] for i in range(0, len(names), k)]
    groups = _pack(list(range(len(names))), [align_seconds(task, m) for m in names], job_seconds)
    return [[names[i] for i in group] for group in groups]


def part_name(metrics) -> str:
    """The wildcard value naming an align job: its metrics joined by '+'."""
    return "+".join(metrics)


# --------------------------------------------------------------------------- cores and threads

REFERENCE_CORES = 2  # the machine job_seconds and the constants above were tuned on
MIN_JOB_SECONDS = 10.0  # a sized job's start-up (JOB_START_SECONDS) stays a fifth of it at most
JOBS_PER_CORE = 6  # with more cores: sized jobs of about (expected work / cores) / JOBS_PER_CORE
MAX_JOB_THREADS = 6  # past 6, a thread adds less than 0.15 of a core (thread_speedup with the fraction below)
JOB_START_SECONDS = 2.0  # process start-up, imports and file input/output of a training or align job
# Amdahl's law for the arithmetic of a training step or a metric on k threads: a fraction s stays
# serial (small batched matrices, per-member loops, kernel dispatch). ASSUMED, not measured: on the
# shared 2-core VM these were fitted on, other sessions' jobs kept the cores busy and two threads
# ran slower than one. Threads change no number (a member trained with 1 or 2 threads is
# bit-identical: tests/test_jobsize.py). Measure s with benchmarks/bench_training.py's one-thread and
# all-threads columns on a many-core machine.
THREAD_SERIAL_FRACTION = 0.25
THREAD_BOUND = 2.0  # a job gets threads when one thread would take longer than this x the target


def workflow_cores(workflow) -> int | None:
    """The cores of a Snakemake run (``--cores``) when its jobs run on this machine; None under a
    cluster executor, whose jobs each get a node's CPUs of their own."""
    return workflow.cores if workflow.local_exec else None


def run_target(config: dict, cores: int | None = None) -> float:
    """:func:`target_seconds` of a run of ``config`` (validated; its configured tasks) on ``cores`` cores."""
    work = expected_work(trained_tasks(config), config["metrics"])
    return target_seconds(config["job_seconds"], cores, work, config.get("device", "cpu"))


def thread_speedup(threads: int) -> float:
    """How many times faster the arithmetic runs on ``threads`` threads than on one (Amdahl's law)."""
    k = max(1, int(threads))
    return k / (1 + THREAD_SERIAL_FRACTION * (k - 1))


def expected_work(tasks: dict, metrics) -> float:
    """Expected seconds (one core) of training every n of ``tasks`` ({name: settings}, the trained tasks:
    a task with data draws counts once per draw) and of computing their metrics; the refinement's n,
    unknown before the coarse grid is trained, are not counted."""
    return sum(sum(train_seconds(task, n) for n in task["n"])
               + sum(align_seconds(task, m) for m in task_metrics(task, metrics)) for task in tasks.values())


def target_seconds(job_seconds: float, cores: int | None = None, work: float = 0.0, device: str = "cpu") -> float:
    """Expected seconds of numerics per training and align job (``n_per_job``/``align_metrics_per_job``: auto).

    ``job_seconds`` on a cluster (``cores`` None) and on up to 2 cores (the layout it was tuned for);
    with more cores ``work / (cores x JOBS_PER_CORE)`` (``work``: :func:`expected_work`), at least
    MIN_JOB_SECONDS and at most ``job_seconds``: each core runs about JOBS_PER_CORE sized jobs, so
    the three sized jobs of a task's critical path (coarse training, refined training, a metric
    group) take about half the run's ideal wall time. ``device: cuda``: infinite (one training job
    per task and grid pass, one align job per task: on a GPU each is one batched computation, and
    more jobs only add process start-ups and GPU contexts).
    """
    if device == "cuda":
        return math.inf
    if cores is None or cores <= REFERENCE_CORES:
        return float(job_seconds)
    return min(float(job_seconds), max(MIN_JOB_SECONDS, work / (cores * JOBS_PER_CORE)))


def max_threads(cores: int | None) -> int:
    """The most threads a job gets: 1 on a cluster and on up to 2 cores (two one-thread jobs beat one
    two-thread job there), else up to half the cores and at most MAX_JOB_THREADS."""
    if cores is None or cores <= REFERENCE_CORES:
        return 1
    return max(1, min(MAX_JOB_THREADS, cores // 2))


def job_threads(seconds, cores: int | None, target: float) -> int:
    """Threads of a job of expected ``seconds(k)`` on k threads: 1 when one thread takes at most
    THREAD_BOUND x ``target``, else the fewest k that bring it within that, at most
    :func:`max_threads`. Only a job that would stretch the critical path gets threads: a thread
    beyond the first buys less than a core's worth (:func:`thread_speedup`), and the cores it holds
    would run other jobs."""
    cap = max_threads(cores)
    for k in range(1, cap + 1):
        if seconds(k) <= THREAD_BOUND * target:
            return k
    return cap


def train_threads(task: dict, ns, cores: int | None, target: float) -> int:
    """Threads of the training job of sample sizes ``ns``."""
    return job_threads(lambda k: sum(train_seconds(task, n, k) for n in ns), cores, target)


def align_threads(task: dict, metrics, cores: int | None, target: float) -> int:
    """Threads of an align job computing ``metrics`` on the grid of ``task``."""
    return job_threads(lambda k: sum(align_seconds(task, m, k) for m in metrics), cores, target)


# --------------------------------------------------------------------------- priorities

# Expected seconds of the short per-task jobs, for the priorities only.
SHORT_JOB_SECONDS = {"task_data": 2.0, "refine": 2.0, "extract": 3.0, "align": 3.0, "claims": 10.0, "figures": 10.0, "summary": 2.0}


def task_priorities(config: dict, task: str, cores: int | None = None) -> dict:
    """Scheduling priority of each job of a task: its expected seconds plus those of the longest
    chain of jobs that waits for it (critical path), so that whatever holds up the end of the run
    starts first and the run does not end with one long job while the other cores idle.

    ``config["job_seconds"]``: the target of the run (:func:`target_seconds`); ``cores``: those of the
    run (the jobs' threads, :func:`job_threads`). Returns {"task_data": p, "train": {chunk: p},
    "refine": p, "extract": p, "align_part": {part: p}, "align": p, "claims": p, "figures": p}, chunks
    and parts named as their wildcard values (n joined by '-', metrics by '+'). The data job waits
    for nothing, so without its priority a task's whole chain would start only when no other job is ready.
    """
    cfg = config["tasks"][task]
    short, target = SHORT_JOB_SECONDS, config["job_seconds"]
    chunks = n_groups(cfg, config["n_per_job"], target, cores)
    groups = metric_groups(cfg, config["metrics"], config["align_metrics_per_job"], target)
    after_align = max(short["claims"], short["figures"]) + short["summary"]

    def metric_seconds(group):
        threads = align_threads(cfg, group, cores, target)
        return sum(align_seconds(cfg, m, threads) for m in group)

    if len(groups) > 1:
        align = short["align"] + after_align
        parts = {part_name(g): metric_seconds(g) + align for g in groups}
        after_extract = max(parts.values())
    else:
        align = sum(metric_seconds(g) for g in groups) + after_align
        parts, after_extract = {}, align
    extract = short["extract"] + after_extract
    train = {"-".join(map(str, c)): chunk_seconds(cfg, c, cores, target) + extract for c in chunks}
    # refine (a task with `refine`) waits for the coarse training and holds up the refined n's training,
    # extract and align: about as long a chain as a coarse training job's
    return {"task_data": short["task_data"] + max(train.values()), "train": train,
            "refine": short["refine"] + max(train.values()),
            "extract": extract, "align_part": parts, "align": align,
            "claims": short["claims"] + short["summary"], "figures": short["figures"]}


def chunk_seconds(task: dict, ns, cores: int | None = None, target: float = math.inf) -> float:
    """Expected numerics of the training job of sample sizes ``ns`` on its threads (:func:`train_threads`)."""
    threads = train_threads(task, ns, cores, target)
    return sum(train_seconds(task, n, threads) for n in ns)


# --------------------------------------------------------------------------- the plan of a run

# Expected job seconds (start-up included) of the jobs the priorities leave out.
OTHER_JOB_SECONDS = {"ood_data": 2.0, "extract_ood": 3.0, "ood_summary": 3.0, "theory_residuals": 2.0,
                     "combine_draws": 3.0, "combine_draws_ood": 3.0}


@dataclass(frozen=True)
class PlannedJob:
    """A job a run is expected to have: its name (rule and wildcards, as in the job's log), rule, task,
    expected job seconds (numerics on its threads plus start-up), threads and the jobs it waits for."""

    name: str
    rule: str
    task: str
    seconds: float
    threads: int = 1
    after: tuple[str, ...] = ()


def assumed_refinement(task: dict) -> list[int]:
    """The n a task's refinement is expected to add before its coarse grid is trained: ``points`` n over
    ``span`` x an assumed threshold of one sample per trainable parameter (weights and biases; the
    study's thresholds were 0.5-1.5 times that), within the coarse grid's range. A guess for planning
    only: the pipeline adds the n its refine job finds."""
    refine = task.get("refine")
    if not refine:
        return []
    biases = sum(layer_widths(task)) if task["network"].get("bias") else 0
    threshold = weights_per_sample(task) + biases
    return refined_ns(task["n"], [threshold], refine["points"], refine["span"], max(task["n"]))


def plan(config: dict, cores: int | None = None, refined: dict | None = None) -> list[PlannedJob]:
    """The jobs of a run of ``config`` (validated, with the configured tasks) on ``cores`` cores, each
    after the jobs it waits for, in an order where every job follows those (rules/*.smk: data, OOD
    probes, training, refine, the refined n's training, extract, align parts, align, combined data
    draws, claims, figures, theory residuals, OOD summary, summary; the checkpoint-alignment rules of
    ``checkpoints`` are left out). ``refined``: {task: the n its refinement adds} (from a finished
    run's refine.json), else :func:`assumed_refinement`. The threads and the target are those the
    Snakefile gives on ``cores`` cores (``device: cuda``: one training and one align job per task).
    """
    trained = trained_tasks(config)
    target = run_target(config, cores)
    trained_config = dict(config, tasks=trained)
    short = {**SHORT_JOB_SECONDS, **OTHER_JOB_SECONDS}
    jobs: list[PlannedJob] = []

    def add(name, rule, task, seconds, after=(), threads=1):
        jobs.append(PlannedJob(name, rule, task, seconds, threads, tuple(after)))
        return name

    def train_jobs(task, cfg, ns, after):
        names = {}
        for chunk in n_groups(dict(cfg, n=ns), config["n_per_job"], target, cores):
            threads = train_threads(cfg, chunk, cores, target)
            seconds = sum(train_seconds(cfg, n, threads) for n in chunk) + JOB_START_SECONDS
            names[tuple(chunk)] = add(f"train {task} n{'-'.join(map(str, chunk))}", "train", task, seconds,
                                      after, threads)
        return names

    summary_after = []
    for parent, pcfg in config["tasks"].items():
        draws = draw_tasks(config, parent)
        coarse, data = {}, {}
        for task in draws:
            cfg = trained[task]
            data[task] = add(f"task_data {task}", "task_data", task, short["task_data"])
            if cfg.get("ood"):
                add(f"ood_data {task}", "ood_data", task, short["ood_data"], [data[task]])
            coarse[task] = train_jobs(task, cfg, cfg["n"], [data[task]])
        added = []
        if pcfg.get("refine"):
            refine = add(f"refine {parent}", "refine", parent, short["refine"],
                         [name for task in draws for name in coarse[task].values()])
            added = sorted((refined or {}).get(parent, assumed_refinement(pcfg)))
        aligned, aligned_ood = [], []
        for task in draws:
            cfg = trained[task]
            chunks = dict(coarse[task])
            if added:
                chunks.update(train_jobs(task, cfg, added, [data[task], refine]))
            grid = dict(cfg, n=grid_n(cfg["n"], added)) if added else cfg
            cube_names, ood_cubes = [], []
            bytes_per_value = 2 if config.get("activation_dtype") == "float16" else 4
            for part in (list(coarse[task]), [c for c in chunks if c not in coarse[task]]):
                for cube in cube_groups([list(c) for c in part], cfg, bytes_per_value):
                    models = [chunks[c] for c in part if set(c) <= set(cube)]
                    label = "-".join(map(str, cube))
                    cube_names.append(add(f"extract {task} n{label}", "extract", task, short["extract"],
                                          [data[task], *models]))
                    if cfg.get("ood"):
                        ood_cubes.append(add(f"extract_ood {task} n{label}", "extract_ood", task,
                                             short["extract_ood"], [f"ood_data {task}", *models]))
            groups = metric_groups(grid, config["metrics"], config["align_metrics_per_job"], target)

            def metric_job(name, rule, group, after):
                threads = align_threads(grid, group, cores, target)
                seconds = sum(align_seconds(grid, m, threads) for m in group) + JOB_START_SECONDS
                return add(name, rule, task, seconds, after, threads)

            if len(groups) > 1:
                parts = [metric_job(f"align_part {task} {part_name(g)}", "align_part", g, cube_names) for g in groups]
                aligned.append(add(f"align {task}", "align", task, short["align"], parts))
            else:
                aligned.append(metric_job(f"align {task}", "align", groups[0] if groups else [], cube_names))
            if cfg.get("ood"):
                metrics = ood_metrics(trained_config, task)
                aligned_ood.append(add(f"align_ood {task}", "align_ood", task,
                                       sum(align_seconds(grid, m) for m in metrics) + JOB_START_SECONDS, ood_cubes))
        if len(draws) > 1:
            alignment = add(f"combine_draws {parent}", "combine_draws", parent, short["combine_draws"], aligned)
            if aligned_ood:
                aligned_ood = [add(f"combine_draws_ood {parent}", "combine_draws_ood", parent,
                                   short["combine_draws_ood"], aligned_ood)]
        else:
            alignment = aligned[0]
        summary_after.append(add(f"claims {parent}", "claims", parent, task_claims_seconds(config, parent, added),
                                 [alignment]))
        add(f"figures {parent}", "figures", parent, short["figures"], [alignment])
        if has_linear_theory(pcfg):
            add(f"theory_residuals {parent}", "theory_residuals", parent, short["theory_residuals"], [alignment])
        if aligned_ood:
            add(f"ood_summary {parent}", "ood_summary", parent, short["ood_summary"], [alignment, *aligned_ood])
    add("summary", "summary", "", short["summary"], summary_after)
    return jobs


def critical_path(jobs) -> tuple[float, list]:
    """The longest chain of dependent jobs: (its summed seconds, its jobs from first to last).

    ``jobs``: objects with ``name``, ``seconds`` and ``after`` (the names of the jobs each waits for;
    names of no listed job are ignored), e.g. :func:`plan`'s. Ties go to the chain listed first."""
    by_name = {job.name: job for job in jobs}
    longest: dict[str, tuple[float, str | None]] = {}  # name -> (chain seconds ending with it, predecessor)

    def chain(name):
        if name not in longest:
            job = by_name[name]
            best, before = 0.0, None
            for other in job.after:
                if other in by_name and chain(other)[0] > best:
                    best, before = chain(other)[0], other
            longest[name] = (best + job.seconds, before)
        return longest[name]

    for job in jobs:  # in list order: a dependency-ordered list never recurses deeply
        chain(job.name)
    if not jobs:
        return 0.0, []
    end = max(by_name, key=lambda name: longest[name][0])
    total, path = longest[end][0], []
    while end is not None:
        path.append(by_name[end])
        end = longest[end][1]
    return total, path[::-1]


# --------------------------------------------------------------------------- packing

def _group_count(costs: list[float], target: float) -> int:
    """ceil(total cost / target), at least 1 and at most one group per item."""
    return min(len(costs), max(1, math.ceil(sum(costs) / max(target, 1e-9) - 1e-9)))


def _cut(items: list, costs: list[float], limit: float) -> list[list]:
    """``items`` cut greedily into runs of consecutive items of at most ``limit`` summed cost (an item
    costlier than ``limit``: a run of its own)."""
    runs, run, load = [], [], 0.0
    for item, cost in zip(items, costs):
        if run and load + cost > limit:
            runs.append(run)
            run, load = [], 0.0
        run.append(item)
        load += cost
    return runs + [run] if run else runs


def _split_consecutive(items: list, costs: list[float], k: int) -> list[list]:
    """``items`` cut into at most ``k`` runs of consecutive items, the costliest run as cheap as
    possible (binary search on that cost, greedy cuts). Deterministic."""
    if not items:
        return []
    low, high = max(costs), sum(costs)
    for _ in range(60):
        middle = (low + high) / 2
        if len(_cut(items, costs, middle)) <= k:
            high = middle
        else:
            low = middle
    return _cut(items, costs, high)


def _pack(items: list, costs: list[float], target: float) -> list[list]:
    """``items`` in ceil(total / target) groups of about equal cost (costliest first into the
    lightest group); each group sorted, groups ordered by their first item. Deterministic."""
    if not items:
        return []
    k = _group_count(costs, target)
    loads, groups = [0.0] * k, [[] for _ in range(k)]
    for index in sorted(range(len(items)), key=lambda i: (-costs[i], i)):
        lightest = min(range(k), key=lambda g: (loads[g], g))
        loads[lightest] += costs[index]
        groups[lightest].append(items[index])
    groups = [sorted(g) for g in groups if g]
    return sorted(groups, key=lambda g: g[0])
