"""Metrics: one registry shared by built-ins and plugins.

Built-in metrics: ``json_valid``, ``json_schema``, ``field_match``, ``exact_match``,
``regex``. Plugins register with ``@metric`` in a module named by an entry point in
the ``evalkit.metrics`` group.
"""

from evalkit.metrics import structured, text  # noqa: F401  (registers the built-ins)
from evalkit.metrics.base import Metric, Scorer, build_metric, metric
from evalkit.metrics.extract import NoJSON, extract_json

__all__ = ["Metric", "NoJSON", "Scorer", "build_metric", "extract_json", "metric"]
