"""Check a suite the way a run would use it, without a model: ``evalkit validate``.

A run trips on four things besides a malformed file (which ``load_suite`` already
refuses): a row that cannot be read, a template that cannot render a row (a field
missing or null, a template that fails), a metric parameter of the wrong type (checked
when metrics are built), and a metric that cannot score a row (a reference field that
no row has, a null gold value). The last is found by *dry scoring*: every metric scores
every row's reference answer (``prompt.target`` rendered), or an empty answer when the
suite has none. A metric that reports an error there would report it for the model's
answers too, after the expensive part of the run. Model-backed (judged) metrics are not
called there; their configuration is checked instead: the judge's settings, and each row
against what the metric needs of it (``check_item``: a source field that exists).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from evalkit.data import Renderer, load_items
from evalkit.errors import DataError, SuiteError
from evalkit.metrics import Metric, build_metric
from evalkit.records import Item
from evalkit.suite import Suite

__all__ = ["MetricProblem", "SuiteCheck", "check_suite", "dry_score", "raise_for_unscorable"]


@dataclass(frozen=True)
class MetricProblem:
    """A metric that could not score some rows of the suite's data."""

    metric: str
    rows: int
    """How many rows it could not score."""
    of: int
    """Rows checked."""
    first_item: str
    error: str
    """The first error, as the metric recorded it."""

    def describe(self, where: str) -> str:
        share = "any row" if self.rows == self.of else f"{self.rows} of {self.of} rows"
        return f"{where}: metrics ({self.metric}): cannot score {share}, e.g. item {self.first_item!r}: {self.error}; fix its params or the data"


@dataclass
class SuiteCheck:
    """What ``check_suite`` found."""

    suite: Suite
    items: list[Item]
    metrics: list[Metric]
    problems: list[MetricProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def dry_score(items: Sequence[Item], metrics: Sequence[Metric], renderer: Renderer, has_target: bool) -> tuple[list[MetricProblem], list[str]]:
    """Score each row's reference answer (or an empty answer) with every metric that needs no model.

    Returns:
        (problems, warnings): metrics that recorded errors, and pass/fail metrics that fail the
        suite's own reference answer on most rows (their params likely do not fit the data).
    """
    problems: list[MetricProblem] = []
    warnings: list[str] = []
    targets = {it.id: _reference_answer(renderer, it) if has_target else None for it in items}
    with_target = sum(t is not None for t in targets.values())
    for m in metrics:
        if getattr(m, "needs_model", False):  # judged metrics call a model: check the rows against their params only
            missing = [(it.id, problem) for it in items if (problem := m.check_item(it)) is not None]
            if missing:
                problems.append(MetricProblem(m.name, len(missing), len(items), missing[0][0], missing[0][1]))
            continue
        errors: list[tuple[str, str]] = []
        zeros = 0
        for it in items:
            s = m.score(targets[it.id] or "", it)
            if s.error is not None:
                errors.append((it.id, s.error))
            elif m.binary and s.value == 0.0 and targets[it.id] is not None:
                zeros += 1
        if errors:
            problems.append(MetricProblem(m.name, len(errors), len(items), errors[0][0], errors[0][1]))
        elif with_target and m.binary and zeros > with_target / 2:
            # only rows whose prompt.target rendered count: a row without one says nothing about the params
            warnings.append(f"metric {m.name!r} fails the suite's own prompt.target on {zeros} of {with_target} rows; check its params")
    return problems, warnings


def _reference_answer(renderer: Renderer, item: Item) -> str | None:
    try:
        return renderer.target(item)
    except DataError:  # prompt.target is for training rows; an eval row may lack its fields
        return None


def check_suite(suite: Suite, *, allow_network: bool = False) -> SuiteCheck:
    """Read the data, render every prompt, build and dry-score every metric.

    Raises:
        EvalkitError: the first problem that stops a run (unreadable data, a template that cannot
            render a row, a bad metric parameter).
    """
    where = str(suite.path)
    items = load_items(suite.data, where, allow_network=allow_network)
    renderer = Renderer(suite.prompt, where)
    for item in items:
        renderer.messages(item)
    from evalkit.judges.stage import check_judge, make_judge

    judge = make_judge(suite)
    metrics = [build_metric(spec, suite.dir, judge) for spec in suite.metrics]
    judge_warnings: list[str] = []
    check_judge(judge, metrics, warn=judge_warnings.append, note=judge_warnings.append)
    problems, warnings = dry_score(items, metrics, renderer, suite.prompt.target is not None)
    warnings = judge_warnings + warnings
    return SuiteCheck(suite=suite, items=items, metrics=metrics, problems=problems, warnings=warnings)


def raise_for_unscorable(problems: Sequence[MetricProblem], where: str) -> None:
    """A metric that cannot score any row would make the whole run's verdict on it empty: stop now."""
    for p in problems:
        if p.rows == p.of:
            raise SuiteError(p.describe(where))
