"""Out-of-distribution probes, the pipeline's side: the config checks a schema cannot express and the
metrics a task's OOD alignment computes (:func:`check_ood_config`, :func:`ood_metrics`: light, the
Snakefile imports this module); the figure is alignpipe.figures.plot_ood_by_layer. A task with an ``ood`` section has a second probe set ``ood_x`` in
data/ood.nc (alignlib.ensembles.data.ood_probe_set), the members' activations on it
(``activations_ood/``) and their alignment ``alignment_ood.nc`` (the layout of alignment.nc); the
statistic comparing layers is alignlib.claims.ood's."""

from __future__ import annotations

import numpy as np

from alignlib.names import METRIC_NAMES as KNOWN_METRICS
from alignpipe.errors import ConfigError
from alignpipe.taskspec import END_TO_END_METRICS, IMAGE_DATASETS, OOD_KINDS

DIABETES_SIZE = 442
DIABETES_FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")  # sklearn's feature_names


def ood_metrics(config: dict, task: str) -> list[str]:
    """The metrics of a task's OOD alignment: ``ood.metrics``, else its primary metric (cka_linear where
    that is an end-to-end metric or unset) and procrustes, those of them in the top-level ``metrics``."""
    ood = config["tasks"][task].get("ood") or {}
    if ood.get("metrics"):
        return list(ood["metrics"])
    primary = config["tasks"][task].get("primary_metric")
    if not primary or primary in END_TO_END_METRICS:
        primary = "cka_linear"
    wanted = [primary] + (["procrustes"] if primary != "procrustes" else [])
    return [m for m in wanted if m in config["metrics"]]


def check_ood_config(config: dict) -> None:
    """Raise ConfigError, naming the key, for an ``ood`` section the schema lets through but the
    pipeline cannot run: a kind the data set does not support, OOD metrics outside ``metrics``
    (their in-distribution values come from alignment.nc) or end-to-end ones (no layers), more
    transformed probes than there are probes, or an extrapolation split that does not fit."""
    for name, task in config["tasks"].items():
        ood = task.get("ood")
        if not ood:
            continue
        key = f"tasks.{name}.ood"
        kind, dataset = ood["kind"], task["dataset"]["kind"]
        if kind not in OOD_KINDS[dataset]:
            raise ConfigError(f"invalid config key '{key}.kind': {kind!r} is not available for data set "
                              f"{dataset!r}; available: {list(OOD_KINDS[dataset])}")
        metrics = ood_metrics(config, name)
        if not metrics:
            raise ConfigError(f"invalid config key '{key}.metrics': none of the default OOD metrics (the primary "
                              f"metric, procrustes) is in 'metrics' {config['metrics']}; list them in {key}.metrics")
        bad = [m for m in metrics if m not in config["metrics"] or m not in KNOWN_METRICS]
        if bad:
            raise ConfigError(f"invalid config key '{key}.metrics': {bad} not in the top-level 'metrics' "
                              f"{config['metrics']} (the in-distribution values come from alignment.nc)")
        e2e = [m for m in metrics if m in END_TO_END_METRICS]
        if e2e:
            raise ConfigError(f"invalid config key '{key}.metrics': {e2e} compare end-to-end maps, which do not "
                              "depend on the probes; the OOD comparison is per layer")
        probes = ood.get("probes")
        transforms = dataset not in ("gaussian_linear", "teacher_mlp") and kind != "extrapolate"
        if transforms and probes is not None and probes > task["probes"]:
            raise ConfigError(f"invalid config key '{key}.probes': {probes} exceeds the task's {task['probes']} "
                              f"probes, which kind {kind!r} transforms")
        if kind == "extrapolate":
            feature = ood.get("feature", "bmi")
            if feature not in DIABETES_FEATURES and not (isinstance(feature, int) and 0 <= feature < len(DIABETES_FEATURES)):
                raise ConfigError(f"invalid config key '{key}.feature': {feature!r} is neither one of "
                                  f"{list(DIABETES_FEATURES)} nor a column index in [0, {len(DIABETES_FEATURES)})")
            k = probes or task["probes"]
            used = k + task["probes"] + task["test_size"] + (task["dataset"].get("pool") or max(task["n"]))
            if used > DIABETES_SIZE:
                raise ConfigError(
                    f"invalid config key '{key}.probes': extrapolate takes {k} OOD patients out before the split, and "
                    f"{k} + probes ({task['probes']}) + test_size ({task['test_size']}) + the pool (max(n) or "
                    f"dataset.pool) = {used} exceed the {DIABETES_SIZE} patients; lower one of them")
        if dataset in IMAGE_DATASETS and kind != "noise":  # pragma: no cover - guarded by OOD_KINDS
            raise ConfigError(f"invalid config key '{key}.kind': image data sets take noise")
