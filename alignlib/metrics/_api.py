"""The two entry points, :func:`pairwise` and :func:`compare`."""

from __future__ import annotations

import numpy as np
import torch

from ._common import Tensor, as_activations, as_vectors, input_eps, split_members, unit_scaled
from ._preconditions import warn_if_uninformative
from ._registry import METRICS, MetricInfo, get_metric, resolve_options
from .names import METRIC_LABELS


def prepare(reps, info: MetricInfo) -> list[Tensor]:
    """Validated, contiguous float64 members for ``info``'s kind of input, each scaled by a power of
    two to ``max|x|`` in [0.5, 1) (exact; every metric is invariant to isotropic scaling)."""
    members = [unit_scaled(x) for x in split_members(reps)]
    return as_vectors(members) if info.needs == "end_to_end" else as_activations(members)


def input_options(info: MetricInfo, options: dict, eps: float | None) -> dict:
    """``options`` with the input dtype's tolerance filled in: a ``rank_eps`` left at None becomes
    the inputs' storage eps (float32 input: ``finfo(float32).eps``); float64 input leaves it None."""
    if eps is not None and "rank_eps" in info.options and options.get("rank_eps") is None:
        return {**options, "rank_eps": eps}
    return options


def setup(reps, metric: str, options: dict):
    """(info, resolved options, prepared members, input eps) for one call."""
    info = get_metric(metric)
    eps = input_eps(reps)
    opts = input_options(info, resolve_options(info, options), eps)
    return info, opts, prepare(reps, info), eps


def evaluate(members: list[Tensor], info: MetricInfo, options: dict, pair: bool) -> Tensor:
    """Run a metric on prepared members (``options`` already resolved)."""
    with torch.no_grad():
        return info.impl(members, options, pair)


def _check_stacked(reps, info: MetricInfo) -> None:
    """``pairwise`` of activation metrics: an array must be (members, probes, units)."""
    if info.needs == "activations" and isinstance(reps, (np.ndarray, torch.Tensor)) and reps.ndim != 3:
        hint = (" A single (n, d) matrix is one member: pass reps[None] for it alone, or use "
                "compare(a, b, metric) for a pair." if reps.ndim == 2 else "")
        raise ValueError(f"pairwise({info.name!r}) expected (members, probes, units), i.e. S members of "
                         f"(n probes, d units) each, or a list of (n, d_i) arrays; got an array of shape "
                         f"{tuple(reps.shape)}.{hint}")


def pairwise(reps, metric: str, **options) -> np.ndarray:
    """The (S, S) matrix ``M[i, j] = metric(reps[i], reps[j])`` for all members at once.

    ``reps``: an array or tensor of shape (S, n, d) (S members, n probes, d units), or a
    list of (n, d_i) arrays of different widths; for end-to-end metrics (S, d_in, d_out)
    or (S, d). A 2-D array is refused for activation metrics (it would be read as n members
    of one unit each). NumPy input is computed on the CPU, torch input on its device; all
    arithmetic is float64, and rank tolerances come from the input's dtype (float32 input:
    ``finfo(float32).eps``). Any strides, memory order or read-only arrays are accepted.
    ``options`` are the metric's options (see ``METRICS[metric].options``).
    Returns a float64 NumPy array; for asymmetric metrics row i is the first argument.
    Emits one :class:`UninformativeWarning` when the registry's preconditions say the values
    are fixed by construction (e.g. CKA with fewer probes than a member's rank).
    """
    info = get_metric(metric)
    _check_stacked(reps, info)
    info, opts, members, eps = setup(reps, metric, options)
    if len(members) == 1:
        evaluate(members + members, info, opts, pair=True)   # validates the member
        return np.ones((1, 1))
    out = evaluate(members, info, opts, pair=False).detach().cpu().numpy().astype(np.float64, copy=True)
    warn_if_uninformative(members, info, opts, eps)
    return out


def compare(a, b, metric: str, **options) -> float:
    """``metric(a, b)`` for one pair: a and b are (n, d_a), (n, d_b) arrays/tensors (or maps of one
    shape for end-to-end metrics). Same conventions as :func:`pairwise`, including the
    :class:`UninformativeWarning`."""
    info, opts, members, eps = setup([a, b], metric, options)
    value = float(evaluate(members, info, opts, pair=True))
    warn_if_uninformative(members, info, opts, eps)
    return value


def list_metrics_in_docstrings(*functions) -> None:
    """Append the registered metrics (name and label) to each function's docstring, so that
    ``help(compare)`` and the API reference list them. Called once all metrics are registered."""
    lines = "\n".join(f"    - ``{name}``: {METRIC_LABELS[name]}" for name in METRICS)
    text = ("\n\n    Metrics (the ``metric`` argument; ``alignlib.describe(name)`` gives each one's range, "
            "invariances,\n    preconditions and options):\n\n" + lines + "\n")
    for function in functions:
        if function.__doc__ and "Metrics (the ``metric`` argument" not in function.__doc__:
            function.__doc__ = function.__doc__.rstrip() + text
