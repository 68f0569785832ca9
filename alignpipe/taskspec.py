"""What a task's config section says about its network and data, for the config checks and the
job sizing alike (no torch import: the Snakefile loads this)."""

from __future__ import annotations

from alignlib.ensembles.datasets import IMAGE_DATASETS, IMAGE_SHAPES, OOD_KINDS  # noqa: F401  (re-exported)
from alignlib.names import END_TO_END_METRICS  # noqa: F401  (re-exported)


def is_classification_task(task: dict) -> bool:
    dataset = task["dataset"]
    return dataset["kind"] in IMAGE_DATASETS or (
        dataset["kind"] == "teacher_mlp" and dataset["target"] == "classification")


def has_linear_theory(task: dict) -> bool:
    """The closed form applies: a one-hidden-layer linear net on Gaussian inputs with target noise."""
    return (task["network"]["kind"] == "linear" and len(task["network"]["hidden"]) == 1
            and task["dataset"]["kind"] == "gaussian_linear" and task["noise"]["kind"] == "target_gaussian")

def layer_widths(task: dict) -> list[int]:
    """Widths of the recorded layers of a task's network, from its config alone."""
    dataset, net = task["dataset"], task["network"]
    kind = dataset["kind"]
    if kind in IMAGE_DATASETS:
        out = 10
    elif is_classification_task(task):
        out = dataset["classes"]
    else:
        out = 1
    widths = []
    if net["kind"] == "cnn":
        c, h, w = IMAGE_SHAPES.get(kind, (1, 1, 1))
        for channels in net["channels"]:
            h, w = h // 2, w // 2
            widths.append(channels if net["conv_record"] == "channel_mean" else channels * h * w)
    return widths + list(net["hidden"]) + [out]

