"""Metrics: one registry shared by built-ins and plugins.

Built-in metrics: ``json_valid``, ``json_schema``, ``field_match``, ``exact_match``,
``regex``, ``grounded_fields``, and the judged (model-backed) ``faithfulness``, ``judge``
and ``pairwise``. Plugins register with ``@metric`` in a module named by an entry point
in the ``evalkit.metrics`` group.
"""

from evalkit.metrics import grounded, judged, structured, text  # noqa: F401  (registers the built-ins)
from evalkit.metrics.base import Metric, Scorer, ScoreRequest, build_metric, metric, sample_ids
from evalkit.metrics.extract import NoJSON, extract_json

__all__ = ["Metric", "NoJSON", "ScoreRequest", "Scorer", "build_metric", "extract_json", "metric", "sample_ids"]
