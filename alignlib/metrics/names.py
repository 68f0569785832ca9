"""The metric names (re-exported from :mod:`alignlib.names`, which imports no torch)."""

from alignlib.names import END_TO_END_METRICS, METRIC_LABELS, METRIC_NAMES

__all__ = ["END_TO_END_METRICS", "METRIC_LABELS", "METRIC_NAMES"]
