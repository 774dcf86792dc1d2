"""Typed records that flow between the layers and into the run directory.

    Item, Generation, Score, ScoreRow      one example; one output; one metric's verdict; its row in scores.csv
    MetricDelta, Flip, Summary             the paired comparison (summary.json)
    ForgettingSummary (PanelInfo, DriftStats)  its forgetting section: benchmark panels and KL drift
    Manifest (SuiteInfo, BaseInfo, ...)    what ran, and how (manifest.json)

Records are frozen dataclasses, documented field by field. Files read back from
disk are checked with :func:`parse_record` (pydantic validates the dataclass), so
a damaged ``manifest.json`` or ``summary.json`` is one error naming the field.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

__all__ = [
    "MANIFEST_VERSION",
    "SUMMARY_VERSION",
    "SUMMARY_VERSIONS_READ",
    "AdapterInfo",
    "BaseInfo",
    "DriftStats",
    "Flip",
    "ForgettingSummary",
    "Generation",
    "Item",
    "Manifest",
    "MetricDelta",
    "MetricInfo",
    "PanelInfo",
    "RecordError",
    "Score",
    "ScoreRow",
    "ShardInfo",
    "SuiteInfo",
    "Summary",
    "parse_record",
    "to_json_dict",
]

MANIFEST_VERSION = 2
"""manifest.json format (2: the backend's identity replaced ``load``/``device``; shards; typed)."""
SUMMARY_VERSION = 3
"""summary.json format (2: per-arm errors and scored counts for every metric; unscored metrics named;
3: a ``forgetting`` section). Version 2 files are still read: they have no forgetting section."""
SUMMARY_VERSIONS_READ = (2, 3)


@dataclass(frozen=True)
class Item:
    """One evaluation example: a data row with a stable id."""

    id: str
    """Stable identifier: the suite's ``id_field`` or a hash of the row."""
    row: dict[str, Any]
    """The row's fields, as read from the data file."""
    cluster: str | None = None
    """Items sharing a source share a cluster (for clustered standard errors)."""


@dataclass(frozen=True)
class Generation:
    """One model output for one item in one arm."""

    item_id: str
    """The item this answers."""
    arm: str
    """``"base"`` or the adapter's name."""
    text: str
    """The decoded completion, special tokens removed."""
    prompt_tokens: int
    """Tokens in the rendered prompt."""
    completion_tokens: int
    """Tokens generated (up to and including the end-of-turn token)."""
    latency_s: float
    """Wall time of the batch that produced it, divided by the batch size."""
    cached: bool = False
    """True when it came from the generation cache rather than the model."""
    error: str | None = None
    """Set when the backend could not produce an output (e.g. an endpoint failing after every retry);
    every metric then records an error for this item and arm, never a score."""


@dataclass(frozen=True)
class Score:
    """What a metric says about one output.

    A metric that cannot score an item returns ``Score.failed(reason)``: the error
    is recorded, counted in the report, and excluded from means; it is never a 0.
    """

    value: float | None
    """The score; pass/fail metrics use 1.0 and 0.0. None when ``error`` is set."""
    detail: str = ""
    """Why: the first schema error's JSON path, the compared values, and so on."""
    error: str | None = None
    """Set when the metric could not score this item."""

    @classmethod
    def failed(cls, error: str, detail: str = "") -> Score:
        """A score that records why the metric could not score the item."""
        return cls(value=None, detail=detail, error=error)


@dataclass(frozen=True)
class ScoreRow:
    """One row of ``scores.csv``: a score placed in the long table."""

    item_id: str
    arm: str
    metric: str
    value: float | None
    error: str | None = None
    detail: str = ""


# --------------------------------------------------------------------------- the paired comparison


@dataclass(frozen=True)
class MetricDelta:
    """One metric, one adapter arm against the reference arm (base), paired by item."""

    metric: str
    arm: str
    """The adapter arm."""
    reference: str
    """The arm it is compared against (``base``, or run A in ``evalkit compare``)."""
    binary: bool
    n: int
    """Items scored without error in both arms."""
    reference_mean: float
    arm_mean: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    p_adjusted: float
    """Holm-adjusted across the metrics of this arm."""
    test: str
    fail_to_pass: int | None
    pass_to_fail: int | None
    mde: float
    """Smallest |Δ| this n detects at 80% power (α = 0.05)."""
    underpowered: bool
    clustered: bool
    reference_errors: int
    arm_errors: int

    @property
    def significant(self) -> bool:
        return self.p_adjusted < 0.05


@dataclass(frozen=True)
class Flip:
    """An item whose pass/fail changed between the reference and an adapter arm."""

    metric: str
    arm: str
    item_id: str
    direction: str
    """``fail→pass`` or ``pass→fail``."""


@dataclass(frozen=True)
class PanelInfo:
    """A forgetting panel as it ran."""

    name: str
    n: int
    """Items evaluated (the seeded, stratified subsample)."""
    total: int
    """Items in the panel's validation split."""
    metrics: list[str]
    """What was scored (acc, acc_norm)."""
    primary: str
    """The metric a panel budget (``max_drop``) applies to unless the rule names another."""
    licence: str = ""


NO_EFFECT_KL = 1e-6
"""Mean per-token KL (nats) below which an adapter is reported as having had no effect."""


@dataclass(frozen=True)
class DriftStats:
    """KL drift of one adapter arm from base on the reference passages (teacher-forced)."""

    arm: str
    passages: int
    tokens: int
    """Token positions compared, over all passages."""
    mean_kl: float
    """Mean per-token KL(base ‖ adapter) in nats, weighted by tokens."""
    top1_agreement: float
    """Share of positions where base and adapter rank the same token first."""
    p50: float
    """Median over passages of the passage's mean per-token KL."""
    p90: float
    """90th percentile of the same."""
    max: float
    """The largest passage mean."""
    max_token_kl: float
    """The largest KL at any single position."""

    @property
    def no_effect(self) -> bool:
        """KL ~ 0: the adapter does not change the next-token distribution at all (not loaded, or B = 0)."""
        return self.mean_kl < NO_EFFECT_KL


@dataclass(frozen=True)
class ForgettingSummary:
    """The forgetting section of a summary: benchmark panels per arm, paired by item, and KL drift."""

    panels: list[PanelInfo]
    means: dict[str, dict[str, float]]
    """arm → ``panel/metric`` → mean over the panel's items."""
    deltas: list[MetricDelta]
    """One per adapter arm × panel × metric; ``metric`` is ``panel/metric`` (e.g. ``arc_easy/acc_norm``).
    Holm-adjusted across the forgetting rows of each arm."""
    drift: list[DriftStats] = field(default_factory=list)
    seed: int = 0
    """The subsample seed."""

    def panel(self, name: str) -> PanelInfo | None:
        return next((p for p in self.panels if p.name == name), None)

    def delta(self, panel: str, metric: str, arm: str) -> MetricDelta | None:
        return next((d for d in self.deltas if d.metric == f"{panel}/{metric}" and d.arm == arm), None)

    def drift_of(self, arm: str) -> DriftStats | None:
        return next((d for d in self.drift if d.arm == arm), None)


@dataclass(frozen=True)
class Summary:
    """The comparison of a run (``summary.json``)."""

    version: int
    suite: str
    reference: str
    arms: list[str]
    """All arms, reference first."""
    metrics: list[str]
    n_items: int
    means: dict[str, dict[str, float]]
    """arm → metric → mean over items scored without error."""
    errors: dict[str, dict[str, int]]
    """arm → metric → items the metric could not score."""
    deltas: list[MetricDelta]
    flips: list[Flip]
    identical_outputs: dict[str, float]
    """adapter arm → share of items whose output equals the reference arm's."""
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    forgetting: ForgettingSummary | None = None
    """Benchmark panels and KL drift, when the suite has a ``forgetting:`` section."""

    def delta(self, metric: str, arm: str) -> MetricDelta | None:
        return next((d for d in self.deltas if d.metric == metric and d.arm == arm), None)

    def unscored(self, arm: str | None = None) -> list[str]:
        """Metrics that scored no item in some arm (in ``arm`` or the reference, when ``arm`` is given).

        Such a metric has no mean and no Δ: reports name it as unscored, never as unchanged.
        """
        arms = [self.reference, arm] if arm else self.arms
        return [m for m in self.metrics if any(math.isnan(self.means.get(a, {}).get(m, math.nan)) for a in arms)]

    def to_dict(self) -> dict[str, Any]:
        return _finite(asdict(self))


def _finite(obj: Any) -> Any:
    """NaN and inf become None so summary.json is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def summary_from_dict(doc: dict[str, Any]) -> Summary:
    """Rebuild a ``Summary`` from ``summary.json`` (null → NaN) and check that its parts agree.

    Raises:
        RecordError: a field is missing or of the wrong type, naming it (``means.base.format``), or the
            parts disagree (an arm without means, a metric without a delta, a negative count).
    """
    floats = ("reference_mean", "arm_mean", "delta", "ci_low", "ci_high", "p_value", "p_adjusted", "mde")

    def number(v: Any, where: str) -> float:
        if v is None:
            return float("nan")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise RecordError(f"{where}: {v!r} is not a number")
        return float(v)

    def mapping(v: Any, where: str) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise RecordError(f"{where}: should be an object, not {type(v).__name__}")
        return v

    for key in ("deltas", "means", "identical_outputs", "arms", "metrics", "errors"):
        if key not in doc:
            raise RecordError(f"{key}: field required")
    if not isinstance(doc["deltas"], list):
        raise RecordError(f"deltas: should be a list, not {type(doc['deltas']).__name__}")
    deltas = [{k: (number(v, f"deltas.{i}.{k}") if k in floats else v) for k, v in mapping(d, f"deltas.{i}").items()}
              for i, d in enumerate(doc["deltas"])]
    means = {a: {m: number(v, f"means.{a}.{m}") for m, v in mapping(ms, f"means.{a}").items()} for a, ms in mapping(doc["means"], "means").items()}
    identical = {a: number(v, f"identical_outputs.{a}") for a, v in mapping(doc["identical_outputs"], "identical_outputs").items()}
    forgetting = doc.get("forgetting")
    if forgetting is not None:
        drift_floats = ("mean_kl", "top1_agreement", "p50", "p90", "max", "max_token_kl")
        forgetting = mapping(forgetting, "forgetting")
        for key in ("deltas", "means"):
            if key not in forgetting:
                raise RecordError(f"forgetting.{key}: field required")
        forgetting = {
            **forgetting,
            "deltas": [{k: (number(v, f"forgetting.deltas.{i}.{k}") if k in floats else v) for k, v in mapping(d, f"forgetting.deltas.{i}").items()}
                       for i, d in enumerate(forgetting["deltas"])],
            "means": {a: {m: number(v, f"forgetting.means.{a}.{m}") for m, v in mapping(ms, f"forgetting.means.{a}").items()}
                      for a, ms in mapping(forgetting["means"], "forgetting.means").items()},
            "drift": [{k: (number(v, f"forgetting.drift.{i}.{k}") if k in drift_floats else v) for k, v in mapping(d, f"forgetting.drift.{i}").items()}
                      for i, d in enumerate(forgetting.get("drift", []))],
        }
    summary = parse_record(Summary, {**doc, "deltas": deltas, "means": means, "identical_outputs": identical, "forgetting": forgetting})
    _check_summary(summary)
    return summary


def _check_summary(s: Summary) -> None:
    """What readers rely on: the reference is an arm, every arm has a mean and an error count per metric,
    every adapter arm has a delta per metric, and counts are not negative."""
    if not s.arms or s.reference not in s.arms:
        raise RecordError(f"arms: {s.arms} must include the reference arm {s.reference!r}")
    if len(set(s.arms)) != len(s.arms) or len(set(s.metrics)) != len(s.metrics):
        raise RecordError("arms and metrics must not repeat a name")
    for arm in s.arms:
        for m in s.metrics:
            if m not in s.means.get(arm, {}):
                raise RecordError(f"means.{arm}.{m}: field required")
            if m not in s.errors.get(arm, {}):
                raise RecordError(f"errors.{arm}.{m}: field required")
            if s.errors[arm][m] < 0:
                raise RecordError(f"errors.{arm}.{m}: {s.errors[arm][m]} is negative")
            if arm != s.reference and s.delta(m, arm) is None:
                raise RecordError(f"deltas: no entry for metric {m!r} and arm {arm!r}")
    for i, d in enumerate(s.deltas):
        if d.n < 0 or d.reference_errors < 0 or d.arm_errors < 0:
            raise RecordError(f"deltas.{i}: n and error counts must not be negative")


# --------------------------------------------------------------------------- the manifest


@dataclass(frozen=True)
class SuiteInfo:
    name: str
    path: str
    """The suite file, as resolved when the run started."""
    sha256: str
    """Hash of the suite file's bytes."""
    description: str = ""


@dataclass(frozen=True)
class BaseInfo:
    spec: str
    """What ``--base`` said (alias, folder, hub id, or served model name)."""
    path: str | None
    """The local model folder; None for a served model."""
    fingerprint: str
    source: str
    """embedded, local, hub, served (or fake in tests)."""
    config: dict[str, Any] = field(default_factory=dict)
    """The model's config.json, when local."""


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    """The arm name."""
    path: str | None
    """The adapter folder; None for an adapter served by an endpoint."""
    fingerprint: str
    config: dict[str, Any] = field(default_factory=dict)
    """The LoRA settings that matter when reading results (r, alpha, targets, ...)."""
    trained_chat_template_sha256: str | None = None


@dataclass(frozen=True)
class MetricInfo:
    name: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)
    binary: bool = False


@dataclass(frozen=True)
class ShardInfo:
    index: int
    """0-based shard number."""
    count: int
    """How many shards the items were split into."""
    item_ids: list[str] = field(default_factory=list)
    """The ids this shard evaluated, in run order."""
    positions: list[int] = field(default_factory=list)
    """Each id's position among all the suite's items: ``evalkit merge`` restores the unsharded order."""
    total: int = 0
    """Items in the whole suite (after ``--limit``): the shards together must hold exactly these."""


@dataclass(frozen=True)
class Manifest:
    """What ran and how: everything needed to trace and reproduce a run (``manifest.json``)."""

    version: int
    suite: SuiteInfo
    base: BaseInfo
    adapters: list[AdapterInfo]
    backend: dict[str, Any]
    """The backend's identity (name, engine version or endpoint, load options, device), as in every cache key."""
    chat_template_sha256: str
    decoding: dict[str, Any]
    batch_size: int
    metrics: list[MetricInfo]
    n_items: int
    generated: int
    """Generations computed by a model in this run."""
    cached: int
    """Generations taken from the cache."""
    started: str
    """UTC start time, ISO 8601."""
    wall_s: float
    versions: dict[str, str]
    limit: int | None = None
    git_commit: str | None = None
    warnings: list[str] = field(default_factory=list)
    gate: dict[str, Any] | None = None
    """The suite's gate policy, if it has one."""
    shard: ShardInfo | None = None
    """Set when the run evaluated one shard of the items (``--shard i/n``)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Sections added by optional stages (judges, forgetting), each under its own key."""

    def arms(self) -> list[str]:
        return ["base", *(a.name for a in self.adapters)]


# --------------------------------------------------------------------------- reading records back


class RecordError(ValueError):
    """A record read from disk is missing a field or has one of the wrong type."""


R = TypeVar("R")


def parse_record(cls: type[R], doc: Any) -> R:
    """Validate ``doc`` (parsed JSON) as a ``cls`` record and build it.

    Raises:
        RecordError: naming the first bad field as a dotted path, e.g. ``adapters.0.fingerprint: Field required``.
    """
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(cls).validate_python(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise RecordError(f"{where}: {first['msg']}") from None


def to_json_dict(record: Any) -> dict[str, Any]:
    """A record as a JSON-ready dict; NaN and infinities become null (strict JSON)."""
    return _finite(asdict(record))
