"""alignlib: representational alignment of network ensembles (numerics only, no Snakemake).

>>> import alignlib
>>> alignlib.compare(X, Y, "cka_linear")         # one pair: (n probes, d_x units), (n, d_y) -> float
>>> alignlib.pairwise(reps, "procrustes")        # all pairs: (S, n, d) or a list of (n, d_i) -> (S, S)
>>> alignlib.metric_names()                      # the 14 metrics
>>> print(alignlib.describe("cca"))              # range, invariances, preconditions, options

``compare``, ``pairwise``, ``metric_names``, ``describe`` and ``METRICS`` come from
:mod:`alignlib.metrics`, imported on first use (so that ``import alignlib`` alone does not load
torch: the pipeline checks its configuration with :mod:`alignlib.names` only). Chance
levels and intervals: :mod:`alignlib.stats`. The subpackages :mod:`alignlib.ensembles` and
:mod:`alignlib.claims` (training ensembles, the paper's claims) and :mod:`alignlib.theory` need the
``pipeline`` extra (xarray, pandas, scikit-learn...): ``pip install "alignlib[pipeline]"``; the
metric ``soft_matching`` needs the ``soft-matching`` extra (POT). User guide: ``docs/library.md``.
"""

from __future__ import annotations

import importlib as _importlib

#: The package's version: the one place it is written (pyproject.toml reads it from here).
__version__ = "0.2.0"

#: Names served from alignlib.metrics on first access.
_FROM_METRICS = ("compare", "pairwise", "metric_names", "describe", "METRICS")
#: Submodules imported on first attribute access (``alignlib.stats.bootstrap_members``): those that
#: need only the core dependencies. (``alignlib.ensembles`` and ``alignlib.claims`` need the pipeline
#: extra; import them by name.)
_SUBMODULES = ("metrics", "stats", "theory", "seeding")

__all__ = ["METRICS", "__version__", "compare", "describe", "metric_names", "metrics", "pairwise", "seeding",
           "stats", "theory"]


def __getattr__(name: str):
    if name in _FROM_METRICS:
        value = getattr(_importlib.import_module("alignlib.metrics"), name)
    elif name in _SUBMODULES:
        value = _importlib.import_module(f"alignlib.{name}")
    else:
        raise AttributeError(f"module 'alignlib' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_FROM_METRICS) | set(_SUBMODULES))
