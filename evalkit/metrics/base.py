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
file parameters can be given relative to the suite. A factory that declares a
``judge`` parameter receives the run's judge handle (:class:`evalkit.judges.Judge`):
it is a *model-backed* metric. Its scorer keeps the same ``(output, item) -> Score``
call, and may also offer ``score_batch(requests) -> list[Score]``, which the runner
prefers, so the judge sees many prompts at once. Model-backed metrics are skipped by
dry scoring (no model runs there); a scorer's optional ``check_item(item)`` returns
what is wrong with a row for it (a missing source field), checked without a model.
They also accept ``sample: N`` (and ``sample_seed``): only a seeded sample of N items
is judged, the same items in every arm.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from evalkit._util import sha256_text

from evalkit import registry
from evalkit.errors import EvalkitError, MetricError
from evalkit.records import Item, Score

__all__ = ["Metric", "ScoreRequest", "Scorer", "build_metric", "metric", "sample_ids"]


class Scorer(Protocol):
    """Scores one output for one item."""

    def __call__(self, output: str, item: Item) -> Score: ...


@dataclass(frozen=True)
class ScoreRequest:
    """One output to score, with what a batch scorer may need besides ``(output, item)``."""

    output: str
    item: Item
    arm: str
    """The arm that wrote ``output``. For bookkeeping only: a judge is never told it."""
    reference_output: str | None = None
    """The reference arm's (base's) output on the same item, for metrics that compare arms
    (``pairwise``); None for the reference arm itself or when it has no output."""
    messages: tuple[dict[str, str], ...] = ()
    """The chat messages the model answered (a rubric judge shows the task to the judge)."""
    is_reference: bool = False
    """True when ``arm`` is the reference arm (base)."""


def sample_ids(ids: Sequence[str], n: int | None, seed: int = 0) -> set[str]:
    """A seeded sample of ``n`` ids (all of them when ``n`` is None or not smaller).

    Ranked by sha256 of ``seed:id``: the choice depends only on the ids and the seed, so
    every arm, every rerun and every shard (which sees only its own items) agrees on it.
    """
    if n is None or n >= len(ids):
        return set(ids)
    return set(sorted(ids, key=lambda i: sha256_text(f"{seed}:{i}"))[:n])


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
    needs_model: bool = False
    """True for model-backed (judged) metrics: dry scoring does not call them."""
    sample: int | None = None
    """Model-backed metrics: judge only a seeded sample of this many items (``params.sample``)."""
    sample_seed: int = 0

    def score(self, output: str, item: Item) -> Score:
        """Score one output; an exception inside the metric becomes a recorded error, never a 0."""
        assert self.scorer is not None
        try:
            result = self.scorer(output, item)
        except Exception as exc:  # a metric bug is recorded per item and counted in the report
            return Score.failed(f"{type(exc).__name__}: {exc}")
        return self._checked(result)

    def score_many(self, requests: Sequence[ScoreRequest]) -> list[Score]:
        """Score many outputs: through the scorer's ``score_batch`` when it has one, else one by one.

        An exception inside ``score_batch`` becomes a recorded error for every request of the batch.
        """
        assert self.scorer is not None
        batch = getattr(self.scorer, "score_batch", None)
        if batch is None:
            return [self.score(r.output, r.item) for r in requests]
        if not requests:
            return []
        judge = getattr(self.scorer, "judge", None)
        try:
            if judge is not None and hasattr(judge, "labelled"):
                with judge.labelled(self.name):  # the judge's counts and progress are per metric
                    results = list(batch(list(requests)))
            else:
                results = list(batch(list(requests)))
        except EvalkitError:  # a judge that cannot be used at all (unbound, misconfigured) stops the run
            raise
        except Exception as exc:  # a bug in a batch scorer: every item of the batch records it
            return [Score.failed(f"{type(exc).__name__}: {exc}")] * len(requests)
        if len(results) != len(requests):
            return [Score.failed(f"score_batch returned {len(results)} scores for {len(requests)} outputs")] * len(requests)
        return [self._checked(r) for r in results]

    def check_item(self, item: Item) -> str | None:
        """What keeps this metric from scoring ``item`` whatever the answer (checked without a model), or None."""
        check = getattr(self.scorer, "check_item", None)
        if check is None:
            return None
        try:
            return check(item)
        except Exception as exc:  # a bug in a check is reported like the problem it looks for
            return f"{type(exc).__name__}: {exc}"

    def _checked(self, result: Any) -> Score:
        if not isinstance(result, Score):
            return Score.failed(f"metric returned {type(result).__name__}, expected Score")
        if result.value is not None:
            if not math.isfinite(result.value):
                return Score.failed(f"metric returned a non-finite value {result.value}", result.detail)
            if self.binary and result.value not in (0.0, 1.0):
                return Score.failed(f"pass/fail metric returned {result.value}, expected 0 or 1", result.detail)
        return result


def metric(name: str, *, binary: bool = False, description: str = "", needs_model: bool = False) -> Callable[[Callable[..., Scorer]], Callable[..., Scorer]]:
    """Register a metric factory under ``name``.

    Args:
        name: The ``type`` suites use to refer to it.
        binary: True when every value is 0 or 1 (pass/fail).
        description: One line shown by ``evalkit metrics``; defaults to the docstring's first line.
        needs_model: the scorer calls a model (implied when the factory declares ``judge``):
            dry scoring and ``evalkit validate`` check its configuration but do not call it.
    """

    def decorate(factory: Callable[..., Scorer]) -> Callable[..., Scorer]:
        doc = description or (inspect.getdoc(factory) or "").split("\n")[0]
        model = needs_model or "judge" in inspect.signature(factory).parameters
        registry.register("metric", name, factory, binary=binary, description=doc, needs_model=model)
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


_INJECTED = ("base_dir", "judge")
"""Parameters evalkit passes to a factory that declares them; a suite cannot set them."""
_SAMPLING = ("sample", "sample_seed")
"""Parameters every model-backed metric accepts (handled here, not by the factory)."""


def build_metric(spec: Any, base_dir: Path, judge: Any = None) -> Metric:
    """Build the metric a suite's ``MetricSpec`` describes.

    Args:
        judge: the judge handle for model-backed metrics (a factory declaring ``judge``
            gets it); None gives them an unbound handle that refuses to be asked, which is
            enough to check their parameters (``load_suite``, ``evalkit validate``).

    Raises:
        MetricError: unknown metric type (the message lists the known ones) or bad parameters.
    """
    entry = registry.lookup("metric", spec.type)
    factory = entry.obj
    params = dict(spec.params)
    sig = inspect.signature(factory)
    needs_model = bool(entry.info.get("needs_model")) or "judge" in sig.parameters
    sample, sample_seed = _sampling(params, spec.type, needs_model)
    given = dict(params)
    accepted = [p for p in sig.parameters if p not in _INJECTED] + (list(_SAMPLING) if needs_model else [])
    if "base_dir" in given:  # evalkit passes the suite's folder; a user value would silently be replaced
        raise MetricError("params.base_dir: set by evalkit (the suite's folder), not by a suite; remove it from params")
    if "base_dir" in sig.parameters:
        params["base_dir"] = base_dir
    if "judge" in sig.parameters:
        if "judge" in given:
            raise MetricError("params.judge: the judge is set in the suite's judge: section or with --judge, not per metric")
        if judge is None:
            from evalkit.judges import unbound_judge

            judge = unbound_judge()
        params["judge"] = judge
    try:
        sig.bind(**params)
    except TypeError as exc:
        raise MetricError(f"params: {exc}; {spec.type} accepts: {', '.join(accepted) or 'no parameters'}") from None
    _check_types(factory, given, spec.type)
    try:
        scorer = factory(**params)
    except MetricError:
        raise
    except (ValueError, TypeError, OSError) as exc:
        raise MetricError(f"params: {exc}") from exc
    # A factory may decide per instance whether its values are pass/fail (a rubric with pass_at).
    binary = getattr(scorer, "binary", entry.info.get("binary", False))
    return Metric(name=spec.name, type=spec.type, params=dict(spec.params), binary=bool(binary), scorer=scorer,
                  needs_model=needs_model, sample=sample, sample_seed=sample_seed)


def _sampling(params: dict[str, Any], metric_type: str, needs_model: bool) -> tuple[int | None, int]:
    """Pop and check ``sample``/``sample_seed`` (model-backed metrics only)."""
    if not any(k in params for k in _SAMPLING):
        return None, 0
    if not needs_model:
        raise MetricError(f"params.sample: only model-backed (judged) metrics take a sample; {metric_type} scores every item")
    sample, seed = params.pop("sample", None), params.pop("sample_seed", 0)
    if sample is not None and (not isinstance(sample, int) or isinstance(sample, bool) or sample < 1):
        raise MetricError(f"params.sample: {sample!r} must be a whole number of items, at least 1")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise MetricError(f"params.sample_seed: {seed!r} must be a whole number")
    return sample, seed
