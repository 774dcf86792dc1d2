"""The run's judging step: make the judge when the run is planned, bind it to the run, record it.

    plan_run       make_judge(suite, overrides)  → a Judge (nothing opened); metrics are built with it
                   check_judge(judge, metrics)   → config errors now, before any model loads
    run_suite      with judging(judge, metrics, backend, cache): → the judge's backend is constructed
                       generate ...                  (a dead endpoint fails before generation);
                       score_all(...)                judged metrics ask it in batches
                   judge_manifest(...)           → manifest.extra["judge"]: identity, params, templates, counts

When the judge is the run's own base model on the run's own backend (``hf`` with the
same weights and options), the run's loaded base answers as the judge, through its
``base`` arm: the base is loaded once per run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from evalkit.judges.agreement import labels_manifest, read_labels
from evalkit.judges.config import DEFAULT_JUDGE_MODEL, JudgeConfig
from evalkit.judges.judge import Judge

__all__ = ["JudgeOverrides", "check_judge", "judge_manifest", "judging", "make_judge"]


@dataclass(frozen=True)
class JudgeOverrides:
    """The judge as the command line sets it, over the suite's ``judge:`` section."""

    spec: str | None = None
    """``--judge BACKEND:MODEL``."""
    endpoint: str | None = None
    """``--judge-endpoint URL``."""
    api_key_env: str | None = None
    """``--judge-api-key-env VAR``."""

    def given(self) -> bool:
        return any(v is not None for v in (self.spec, self.endpoint, self.api_key_env))


def make_judge(suite: Any, overrides: JudgeOverrides | None = None) -> Judge:
    """The suite's judge with the command line's settings on top; nothing is checked or opened yet."""
    config = JudgeConfig.from_suite(getattr(suite, "judge", None), suite.dir, f"{suite.path}: judge")
    if overrides is not None:
        config = config.with_overrides(overrides.spec, overrides.endpoint, overrides.api_key_env)
    return Judge(config)


def check_judge(judge: Judge, metrics: Sequence[Any], overrides: JudgeOverrides | None = None,
                warn: Callable[[str], None] | None = None, note: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Check the judge's configuration when a metric needs it, and read its labels; returns the label rows.

    Args:
        warn: called with problems worth recording in the run (ignored ``--judge`` options).
        note: called with advice for the person at the terminal (the default judge is smoke-level;
            the report says so in its judged-metrics section).

    Raises:
        JudgeError: unknown backend, missing endpoint, API key variable not set, unreadable labels.
    """
    judged = [m for m in metrics if m.needs_model]
    if not judged:
        if overrides is not None and overrides.given() and warn:
            warn("--judge options were given but the suite has no judged metric; they are ignored")
        return []
    judge.config.check()
    if note and judge.config.backend == "hf" and judge.config.model == DEFAULT_JUDGE_MODEL:
        note(f"the judge is the embedded {DEFAULT_JUDGE_MODEL} (135M parameters): its verdicts are a smoke test of the "
             f"judging, not evidence; point judge: (or --judge) at a stronger model for results you can trust")
    if judge.config.labels is None:
        return []
    return read_labels(judge.config.labels, {m.name for m in metrics})


@contextmanager
def judging(judge: Judge | None, metrics: Sequence[Any], run_backend: Any, cache: Any,
            progress: Callable[[str, int, int], None] | None = None, allow_network: bool = False) -> Iterator[None]:
    """Bind the judge for the block when a metric needs it; close what the judge opened at the end."""
    if judge is None or not any(m.needs_model for m in metrics):
        yield
        return
    judge.bind(run_backend=run_backend, cache=cache, progress=progress, allow_network=allow_network)
    try:
        yield
    finally:
        judge.close()


def judge_manifest(judge: Judge | None, metrics: Sequence[Any], population: int, labels: list[dict[str, Any]]) -> dict[str, Any]:
    """``manifest.extra`` entries of the judging step (empty when no metric is judged)."""
    judged = [m for m in metrics if m.needs_model]
    if judge is None or not judged:
        return {}
    section = judge.describe()
    section["metrics"] = {
        m.name: {
            "type": m.type,
            "templates": dict(getattr(m.scorer, "templates", {})),
            "sample": {"n": min(m.sample, population), "of": population, "seed": m.sample_seed} if m.sample else None,
            "calibration": calibration_kind(m),
        }
        for m in judged
    }
    if labels:
        section["labels"] = labels_manifest(judge.config.labels, labels)
    return {"judge": section}


def calibration_kind(metric: Any) -> dict[str, Any] | None:
    """How a metric's values compare with human labels: pass/fail, an ordinal scale, or not at all."""
    kind = getattr(metric.scorer, "calibration", "pass_fail" if metric.binary else None)
    if kind is None:
        return None
    out: dict[str, Any] = {"kind": kind}
    scale = getattr(metric.scorer, "scale", None)
    if kind == "ordinal" and scale:
        out["scale"] = list(scale)
    return out
