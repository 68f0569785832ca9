"""The optional dependencies ("extras") and the ImportError that names the one to install.

Core (``pip install alignlib``): numpy, scipy, torch -- enough for :mod:`alignlib.metrics` (all
metrics but ``soft_matching``), :mod:`alignlib.stats` (but :mod:`alignlib.stats.threshold`),
:mod:`alignlib.theory` and :mod:`alignlib.seeding`. Extras (see pyproject.toml):

* ``soft-matching``: POT, for the ``soft_matching`` metric (imported on its first call);
* ``pipeline``: xarray, netCDF4, pandas, matplotlib, scikit-learn, threadpoolctl and Snakemake
  with its plugins -- for :mod:`alignlib.ensembles` (but :mod:`~alignlib.ensembles.networks`,
  :mod:`~alignlib.ensembles.training`, :mod:`~alignlib.ensembles.noise`), :mod:`alignlib.claims`,
  :mod:`alignlib.stats.threshold` and ``alignpipe``.
"""

from __future__ import annotations

import importlib

#: extra -> what it holds, for the message.
EXTRAS = {
    "pipeline": "xarray, netCDF4, pandas, matplotlib, scikit-learn, threadpoolctl, snakemake",
    "soft-matching": "POT",
}


def install_hint(extra: str) -> str:
    """The command that installs ``extra``."""
    return f'pip install "alignlib[{extra}]"'


def missing_extra(extra: str, module: str, err: ImportError) -> ImportError:
    """The ImportError to raise (``from err``) when ``module`` cannot import a package of ``extra``."""
    return ImportError(f"{module} needs the optional '{extra}' dependencies ({EXTRAS[extra]}), not all "
                       f"installed ({err}): {install_hint(extra)}")


def pipeline_import(package: str, module: str):
    """``package`` imported for ``module``; without it, the ImportError that names the pipeline extra."""
    try:
        return importlib.import_module(package)
    except ImportError as err:
        raise missing_extra("pipeline", module, err) from err
