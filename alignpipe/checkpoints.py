"""Alignment during training: members' weights at training checkpoints, their activations, alignment
per checkpoint, the first-epoch fraction (issue 13, item 3).

The members of a task are reproducible from their seeds (alignlib.ensembles.builder.member_init and
member_training_set), so the checkpoint pass re-trains the members at a few sample sizes with
``train_ensemble(checkpoints=...)`` instead of storing weights during the main run; their final
weights are the main run's.

Config (``checkpoints:`` at the top level, for every task, or per task, which wins; null = off):
``at`` sorted distinct counts >= 0, ``unit`` (auto | epoch | step: auto = epoch with minibatch
training, step with full batches, where one epoch is one step), ``n`` (a list of the task's grid
n, or auto: see :func:`auto_n`), ``metrics`` (recorded besides the task's primary metric).

Files: ``results/{task}/checkpoints/activations.nc`` (a cube with a ``step`` axis, plus the
final weights' activations) and ``results/{task}/alignment_training.nc`` with
``alignment(metric, layer, step, snr, n, pair)`` and ``final_alignment(metric, layer, snr, n, pair)``.
The ``step`` coordinate holds the checkpoints in the config's unit (attribute ``step_unit``);
``steps_taken(step, n)`` the optimizer steps they are, ``epoch_steps(n)`` the steps of one epoch.

Here: the settings (the Snakefile reads them) and the files asked for; the figure is
alignpipe.figures.alignment_training_figure and the numerics (re-training, alignment per checkpoint, the first-epoch fraction) are
alignlib.ensembles.checkpoints'.
"""

from __future__ import annotations

import numpy as np

from alignlib.names import METRIC_NAMES as KNOWN_METRICS

DEFAULT_AT = [0, 1, 3, 10, 30, 100, 300, 1000]
UNITS = ("auto", "epoch", "step")


def _key(task: str, scope: str, name: str) -> str:
    return f"{scope}.{name}" if scope == "checkpoints" else f"tasks.{task}.checkpoints.{name}"


def auto_n(grid) -> list[int]:
    """Three n of a grid: those at the middle of its lower, middle and upper thirds (positions
    (len - 1) x 1/6, 1/2, 5/6 of the sorted grid, rounded); fewer when the grid is shorter."""
    ns = sorted(int(n) for n in grid)
    picks = [ns[int(np.floor((len(ns) - 1) * q + 0.5))] for q in (1 / 6, 1 / 2, 5 / 6)]  # halves round up
    return sorted(set(picks))


def checkpoint_settings(config: dict, task: str) -> dict | None:
    """The resolved checkpoint settings of a task, or None when checkpoints are off.

    A task's own ``checkpoints`` key wins over the top-level one (a task may set null to opt
    out). Returns {at, unit, n, metrics}; raises ValueError naming the key for a bad value.
    """
    task_cfg = config["tasks"][task]
    scope = f"tasks.{task}.checkpoints" if "checkpoints" in task_cfg else "checkpoints"
    spec = task_cfg["checkpoints"] if "checkpoints" in task_cfg else config.get("checkpoints")
    if not spec:
        return None
    at = list(spec.get("at", DEFAULT_AT))
    if not at or any(int(a) != a or a < 0 for a in at) or any(b <= a for a, b in zip(at, at[1:])):
        raise ValueError(f"invalid config key '{_key(task, scope, 'at')}': {at} must be sorted, distinct "
                         "integers >= 0")
    unit = spec.get("unit", "auto")
    if unit not in UNITS:
        raise ValueError(f"invalid config key '{_key(task, scope, 'unit')}': {unit!r}; allowed: {list(UNITS)}")
    n = spec.get("n", "auto")
    if n == "auto":
        n = auto_n(task_cfg["n"])
    else:
        outside = [int(v) for v in n if int(v) not in {int(g) for g in task_cfg["n"]}]
        if outside or not n:
            raise ValueError(f"invalid config key '{_key(task, scope, 'n')}': {list(n)}; every n must be in "
                             f"tasks.{task}.n {list(task_cfg['n'])} (or say auto)")
        n = sorted({int(v) for v in n})
    metrics = list(spec.get("metrics") or [])
    unknown = [m for m in metrics if m not in KNOWN_METRICS]
    if unknown:
        raise ValueError(f"invalid config key '{_key(task, scope, 'metrics')}': unknown metric(s) {unknown}; "
                         f"known: {list(KNOWN_METRICS)}")
    return {"at": [int(a) for a in at], "unit": unit, "n": n, "metrics": metrics}


def all_checkpoint_settings(config: dict) -> dict:
    """Task -> its resolved settings (None where checkpoints are off); raises ValueError naming the key."""
    return {task: checkpoint_settings(config, task) for task in config["tasks"]}


def checkpoint_targets(settings: dict, results: str) -> list[str]:
    """The files rule all asks for: per task with checkpoints, its training figure and summary."""
    return [path for task, s in settings.items() if s
            for path in (f"{results}/figures/{task}_alignment_training.png", f"{results}/{task}/training_summary.csv")]


def settings_of(settings: dict, task: str) -> dict:
    """A task's settings for its checkpoint jobs; ValueError when it has none."""
    if not settings.get(task):
        raise ValueError(f"task {task} has no checkpoints (set the config key checkpoints or "
                         f"tasks.{task}.checkpoints)")
    return settings[task]


def checkpoint_metrics(task_cfg: dict, settings: dict) -> list[str]:
    """The task's primary metric (its ``primary_metric``, else the end-to-end cosine for a linear
    network, else linear CKA; as alignlib.claims.verdicts.primary_metric) and then the settings' metrics."""
    primary = task_cfg.get("primary_metric") or (
        "cosine_end_to_end" if task_cfg["network"]["kind"] == "linear" else "cka_linear")
    return list(dict.fromkeys([primary, *settings["metrics"]]))
