"""Representational alignment metrics, batched over all pairs of ensemble members.

>>> from alignlib.metrics import pairwise, compare, METRICS
>>> M = pairwise(reps, "cka_linear")          # reps: (S, n, d) or list of (n, d_i)
>>> v = compare(reps[0], reps[1], "information_imbalance", k=1, direction="a_to_b")

Every metric is oriented so that larger means more aligned and identical members
give 1. ``METRICS`` maps each name to a :class:`MetricInfo` (range, symmetry,
invariances, default options). NumPy input runs on the CPU; torch input stays on
its device; everything is accumulated in float64. Bad input (NaN/inf, mismatched
probe counts, constant members, k >= n, too few probes, unknown names) raises a
ValueError that says what is wrong.

Also here: :func:`distance` / :func:`pairwise_distance` (angular distances for the metrics whose
value is a cosine: CKA, Procrustes as in netrep, RSA), :func:`cross_validated` (held-out scores
for the fitted metrics: Procrustes, predictivity, CCA), :class:`UninformativeWarning` (a value
fixed by construction) and :func:`set_memory_limit` / :func:`memory_limit` (the size check
before soft_matching and linear_predictivity allocate).
"""

# Registration order (= import order) is the registry's order.
from . import cka as _cka  # noqa: F401, I001
from . import knn as _knn  # noqa: F401
from . import procrustes as _procrustes  # noqa: F401
from . import cca as _cca  # noqa: F401
from . import rsa as _rsa  # noqa: F401
from . import cosine as _cosine  # noqa: F401
from . import predictivity as _predictivity  # noqa: F401
from . import soft_matching as _soft_matching  # noqa: F401
from ._api import compare, list_metrics_in_docstrings, pairwise
from ._forms import HeldOutScore, cross_validated, distance, pairwise_distance
from ._memory import memory_limit, set_memory_limit
from ._preconditions import UninformativeWarning
from ._registry import METRICS, TRANSFORMATIONS, MetricInfo, describe, metric_names

__all__ = ["METRICS", "TRANSFORMATIONS", "HeldOutScore", "MetricInfo", "UninformativeWarning", "compare",
           "cross_validated", "describe", "distance", "memory_limit", "metric_names", "pairwise", "pairwise_distance",
           "set_memory_limit"]

list_metrics_in_docstrings(compare, pairwise)
del list_metrics_in_docstrings
