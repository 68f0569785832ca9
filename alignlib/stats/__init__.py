"""Statistics over ensembles: member resampling (:mod:`.members`), chance levels (:mod:`.chance`),
the interpolation threshold and the test-error peak (:mod:`.threshold`), and probe resampling for
any pair of representations (:mod:`.probes`, whose functions are re-exported here).

The probe-resampling names load :mod:`.probes` (and torch) on first use, so that the pipeline's
config checks, which read :mod:`.threshold`, import no torch."""

import importlib as _importlib

__all__ = [
    "Interval",
    "NullDistribution",
    "bootstrap_members",
    "bootstrap_probes",
    "bootstrap_probes_pair",
    "permutation_baseline",
    "permutation_baseline_pair",
]


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module 'alignlib.stats' has no attribute {name!r}")
    value = getattr(_importlib.import_module("alignlib.stats.probes"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
