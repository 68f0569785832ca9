"""alignlib: representational alignment of network ensembles (numerics only, no Snakemake)."""

__version__ = "0.1.0"
