"""The metric names: one source for the registry, the config checks, the figures and the job
sizing. Outside ``alignlib.metrics`` (whose package imports torch), so that the Snakefile, which the
main Snakemake process and every job's process parse, checks a config without loading torch; the
registry (alignlib.metrics._registry) refuses to register a metric that is not listed here.
``alignlib.metrics.names`` re-exports it."""

from __future__ import annotations

#: Every metric of alignlib.metrics, in the registry's order, with its label for figures.
METRIC_LABELS = {
    "cka_linear": "linear CKA",
    "cka_linear_debiased": "debiased linear CKA",
    "cka_rbf": "RBF CKA",
    "information_imbalance": "1 − information imbalance",
    "neighborhood_overlap": "neighbourhood overlap",
    "mutual_knn": "mutual k-NN",
    "procrustes": "Procrustes similarity",
    "cca": "mean squared CCA",
    "svcca": "SVCCA",
    "pwcca": "PWCCA",
    "rsa": "RSA",
    "cosine_end_to_end": "cosine of end-to-end maps",
    "linear_predictivity": "linear predictivity",
    "soft_matching": "soft matching",
}

METRIC_NAMES = tuple(METRIC_LABELS)

#: Metrics that compare whole end-to-end maps (linear networks only), stored at the last layer.
END_TO_END_METRICS = ("cosine_end_to_end",)
