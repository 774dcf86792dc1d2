"""The metric contract and the ``@metric`` decorator.

A metric is a *factory*: a function that takes the metric's parameters (from the
suite's ``params``) and returns a scorer, a function ``(output, item) -> Score``.
Building the scorer once per run lets a metric compile its schema or regex up
front and reject a bad parameter before any model is loaded.

Example:
    >>> from evalkit.metrics import metric
    >>> from evalkit.records import Item, Score
    >>> @metric("shorter_than", binary=True)
    ... def shorter_than(limit: int = 200):
    ...     def score(output: str, item: Item) -> Score:
    ...         return Score(float(len(output) < limit), detail=f"{len(output)} chars")
    ...     return score

A factory that declares a ``base_dir`` parameter receives the suite's folder, so
file parameters can be given relative to the suite.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from evalkit import registry
from evalkit.errors import MetricError
from evalkit.records import Item, Score

__all__ = ["Metric", "Scorer", "build_metric", "metric"]


class Scorer(Protocol):
    """Scores one output for one item."""

    def __call__(self, output: str, item: Item) -> Score: ...


@dataclass(frozen=True)
class Metric:
    """A built metric: a suite's metric entry bound to its scorer."""

    name: str
    """The name in the suite (report rows and gate rules use it)."""
    type: str
    """The registered metric it was built from."""
    params: dict[str, Any] = field(default_factory=dict)
    """The parameters it was built with, as written in the suite."""
    binary: bool = False
    """True for pass/fail metrics (values 0 or 1): statistics use McNemar's test."""
    scorer: Scorer | None = None

    def score(self, output: str, item: Item) -> Score:
        """Score one output; an exception inside the metric becomes a recorded error, never a 0."""
        assert self.scorer is not None
        try:
            result = self.scorer(output, item)
        except Exception as exc:  # a metric bug is recorded per item and counted in the report
            return Score.failed(f"{type(exc).__name__}: {exc}")
        if not isinstance(result, Score):
            return Score.failed(f"metric returned {type(result).__name__}, expected Score")
        if result.value is not None:
            if not math.isfinite(result.value):
                return Score.failed(f"metric returned a non-finite value {result.value}", result.detail)
            if self.binary and result.value not in (0.0, 1.0):
                return Score.failed(f"pass/fail metric returned {result.value}, expected 0 or 1", result.detail)
        return result


def metric(name: str, *, binary: bool = False, description: str = "") -> Callable[[Callable[..., Scorer]], Callable[..., Scorer]]:
    """Register a metric factory under ``name``.

    Args:
        name: The ``type`` suites use to refer to it.
        binary: True when every value is 0 or 1 (pass/fail).
        description: One line shown by ``evalkit metrics``; defaults to the docstring's first line.
    """

    def decorate(factory: Callable[..., Scorer]) -> Callable[..., Scorer]:
        doc = description or (inspect.getdoc(factory) or "").split("\n")[0]
        registry.register("metric", name, factory, binary=binary, description=doc)
        return factory

    return decorate


def _check_types(factory: Callable[..., Any], params: dict[str, Any], metric_type: str) -> None:
    """Check each given parameter against the factory's annotation (strictly: "false" is not a bool).

    The annotations are what a metric declares about its parameters, for built-ins and plugins
    alike; a factory without annotations is not checked.
    """
    from pydantic import ConfigDict, TypeAdapter, ValidationError

    try:
        hints = typing.get_type_hints(factory)
    except Exception:  # a plugin's annotation that cannot be resolved: nothing to check against
        return
    for name, value in params.items():
        if name not in hints:
            continue
        try:
            TypeAdapter(hints[name], config=ConfigDict(strict=True)).validate_python(value)
        except ValidationError:
            wanted = getattr(hints[name], "__name__", None) or str(hints[name]).replace("typing.", "")
            raise MetricError(f"params.{name}: {value!r} ({type(value).__name__}) is not a {wanted}, which {metric_type} expects") from None
        except Exception:  # pydantic cannot build a validator for an exotic annotation: do not guess
            continue


def build_metric(spec: Any, base_dir: Path) -> Metric:
    """Build the metric a suite's ``MetricSpec`` describes.

    Raises:
        MetricError: unknown metric type (the message lists the known ones) or bad parameters.
    """
    entry = registry.lookup("metric", spec.type)
    factory = entry.obj
    params = dict(spec.params)
    sig = inspect.signature(factory)
    accepted = [p for p in sig.parameters if p != "base_dir"]
    if "base_dir" in params:  # evalkit passes the suite's folder; a user value would silently be replaced
        raise MetricError("params.base_dir: set by evalkit (the suite's folder), not by a suite; remove it from params")
    if "base_dir" in sig.parameters:
        params["base_dir"] = base_dir
    try:
        sig.bind(**params)
    except TypeError as exc:
        raise MetricError(f"params: {exc}; {spec.type} accepts: {', '.join(accepted) or 'no parameters'}") from None
    _check_types(factory, spec.params, spec.type)
    try:
        scorer = factory(**params)
    except MetricError:
        raise
    except (ValueError, TypeError, OSError) as exc:
        raise MetricError(f"params: {exc}") from exc
    return Metric(name=spec.name, type=spec.type, params=dict(spec.params), binary=entry.info.get("binary", False), scorer=scorer)
