"""The two entry points, :func:`pairwise` and :func:`compare`."""

from __future__ import annotations

import numpy as np
import torch

from ._common import Tensor, as_activations, as_vectors, split_members
from ._registry import MetricInfo, get_metric, resolve_options


def prepare(reps, info: MetricInfo) -> list[Tensor]:
    """Validated float64 members for ``info``'s kind of input."""
    members = split_members(reps)
    return as_vectors(members) if info.needs == "end_to_end" else as_activations(members)


def evaluate(members: list[Tensor], info: MetricInfo, options: dict, pair: bool) -> Tensor:
    """Run a metric on prepared members (``options`` already resolved)."""
    with torch.no_grad():
        return info.impl(members, options, pair)


def pairwise(reps, metric: str, **options) -> np.ndarray:
    """The (S, S) matrix ``M[i, j] = metric(reps[i], reps[j])`` for all members at once.

    ``reps``: an array or tensor of shape (S, n, d) (S members, n probes, d units), or a
    list of (n, d_i) arrays of different widths; for end-to-end metrics (S, d_in, d_out)
    or (S, d). NumPy input is computed on the CPU, torch input on its device; all
    arithmetic is float64. ``options`` are the metric's options (see ``METRICS[metric].options``).
    Returns a float64 NumPy array; for asymmetric metrics row i is the first argument.
    """
    info = get_metric(metric)
    opts = resolve_options(info, options)
    members = prepare(reps, info)
    if len(members) == 1:
        evaluate(members + members, info, opts, pair=True)   # validates the member
        return np.ones((1, 1))
    return evaluate(members, info, opts, pair=False).detach().cpu().numpy().astype(np.float64, copy=True)


def compare(a, b, metric: str, **options) -> float:
    """``metric(a, b)`` for one pair: a and b are (n, d_a), (n, d_b) arrays/tensors (or maps of one
    shape for end-to-end metrics). Same conventions as :func:`pairwise`."""
    info = get_metric(metric)
    opts = resolve_options(info, options)
    members = prepare([a, b], info)
    return float(evaluate(members, info, opts, pair=True))
