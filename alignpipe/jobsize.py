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
Nothing here imports torch (the Snakefile uses it).
"""

from __future__ import annotations

from alignlib.ensembles.datasets import IMAGE_SHAPES

import math

from alignpipe.taskspec import END_TO_END_METRICS, layer_widths

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


def train_seconds(task: dict, n: int) -> float:
    """Expected seconds of training all members at sample size n (an upper bound: every member runs to max_steps)."""
    training = task["training"]
    if training["optimizer"] == "preconditioned_gd":
        steps = min(training["max_steps"], PRECONDITIONED_STEPS)
        samples = input_dim(task)  # the linear network's gradient comes from d x d sufficient statistics
    else:
        steps = training["max_steps"]
        batch = training.get("batch_size")
        samples = min(n, batch) if batch else n
    return N_SECONDS + steps * (STEP_SECONDS + MAC_SECONDS * members(task) * samples * weights_per_sample(task))


def n_groups(task: dict, n_per_job="auto", job_seconds: float = 60.0) -> list[list[int]]:
    """The task's sample sizes in training jobs, each group sorted, groups by their smallest n.

    ``n_per_job`` an integer: consecutive groups of that many n (the last may be shorter).
    ``"auto"``: ceil(expected total / ``job_seconds``) groups of consecutive n with the largest
    group as small as possible (:func:`train_seconds`); an n expected to take longer than
    ``job_seconds`` ends up a job of its own.
    """
    ns = sorted(int(n) for n in task["n"])
    if n_per_job != "auto":
        k = int(n_per_job)
        return [ns[i:i + k] for i in range(0, len(ns), k)]
    costs = [train_seconds(task, n) for n in ns]
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


def align_seconds(task: dict, metric: str) -> float:
    """Expected seconds of one metric on every grid point and recorded layer of a task."""
    grid = len(task["snr"]) * len(task["n"])
    layers = 1 if metric in END_TO_END_METRICS else len(layer_widths(task))
    return METRIC_SECONDS.get(metric, DEFAULT_METRIC_SECONDS) * grid * layers * task["seeds"] * task["probes"] ** 2


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


# --------------------------------------------------------------------------- priorities

# Expected seconds of the short per-task jobs, for the priorities only.
SHORT_JOB_SECONDS = {"task_data": 2.0, "refine": 2.0, "extract": 3.0, "align": 3.0, "claims": 10.0, "figures": 10.0, "summary": 2.0}


def task_priorities(config: dict, task: str) -> dict:
    """Scheduling priority of each job of a task: its expected seconds plus those of the longest
    chain of jobs that waits for it (critical path), so that whatever holds up the end of the run
    starts first and the run does not end with one long job while the other cores idle.

    Returns {"task_data": p, "train": {chunk: p}, "refine": p, "extract": p, "align_part": {part: p}, "align": p,
    "claims": p, "figures": p}, chunks and parts named as their wildcard values (n joined by '-',
    metrics by '+'). The data job waits for nothing, so without its priority a task's whole chain
    would start only when no other job is ready.
    """
    cfg = config["tasks"][task]
    short = SHORT_JOB_SECONDS
    chunks = n_groups(cfg, config["n_per_job"], config["job_seconds"])
    groups = metric_groups(cfg, config["metrics"], config["align_metrics_per_job"], config["job_seconds"])
    after_align = max(short["claims"], short["figures"]) + short["summary"]
    if len(groups) > 1:
        align = short["align"] + after_align
        parts = {part_name(g): sum(align_seconds(cfg, m) for m in g) + align for g in groups}
        after_extract = max(parts.values())
    else:
        align = sum(align_seconds(cfg, m) for g in groups for m in g) + after_align
        parts, after_extract = {}, align
    extract = short["extract"] + after_extract
    train = {"-".join(map(str, c)): sum(train_seconds(cfg, n) for n in c) + extract for c in chunks}
    # refine (a task with `refine`) waits for the coarse training and holds up the refined n's training,
    # extract and align: about as long a chain as a coarse training job's
    return {"task_data": short["task_data"] + max(train.values()), "train": train,
            "refine": short["refine"] + max(train.values()),
            "extract": extract, "align_part": parts, "align": align,
            "claims": short["claims"] + short["summary"], "figures": short["figures"]}


# --------------------------------------------------------------------------- packing

def _group_count(costs: list[float], target: float) -> int:
    """ceil(total cost / target), at least 1 and at most one group per item."""
    return min(len(costs), max(1, math.ceil(sum(costs) / max(target, 1e-9) - 1e-9)))


def _split_consecutive(items: list, costs: list[float], k: int) -> list[list]:
    """``items`` cut into at most ``k`` runs of consecutive items, the costliest run as cheap as
    possible (binary search on that cost, greedy cuts). Deterministic."""
    if not items:
        return []

    def cut(limit):
        runs, run, load = [], [], 0.0
        for item, cost in zip(items, costs):
            if run and load + cost > limit:
                runs.append(run)
                run, load = [], 0.0
            run.append(item)
            load += cost
        return runs + [run]

    low, high = max(costs), sum(costs)
    for _ in range(60):
        middle = (low + high) / 2
        if len(cut(middle)) <= k:
            high = middle
        else:
            low = middle
    return cut(high)


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
