"""Load and validate suites: YAML files that say what to evaluate and how to score it.

A suite is validated against ``schemas/suite.schema.json`` when loaded, then its
metric names are checked against the registry and its metrics are built, so a bad
parameter is reported before any model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit._util import load_yaml, package_schema, sha256_bytes, validate_against
from evalkit.errors import MetricError, SuiteError

if TYPE_CHECKING:
    from evalkit.forgetting.spec import ForgettingSpec

__all__ = ["DataSpec", "GenerationSpec", "MetricSpec", "PromptSpec", "Suite", "load_suite"]


@dataclass(frozen=True)
class DataSpec:
    """Where a suite's rows come from."""

    path: Path | None = None
    """A JSONL or CSV file (absolute; resolved against the suite's folder)."""
    hf: dict[str, Any] | None = None
    """A Hugging Face ``datasets`` spec: ``path`` and optional ``name``, ``split``, ``revision``."""
    id_field: str | None = None
    """Row field holding a stable id; None means a hash of the row."""
    cluster_field: str | None = None
    """Row field grouping items from one source."""
    limit: int | None = None
    """Use only the first N rows."""


@dataclass(frozen=True)
class PromptSpec:
    """Jinja2 templates over row fields, rendered in a sandbox with strict undefined."""

    user: str
    system: str | None = None
    target: str | None = None
    """The reference answer, used to build training examples."""


@dataclass(frozen=True)
class GenerationSpec:
    """Decoding parameters, identical for every arm. Greedy unless temperature > 0."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    batch_size: int | None = None
    """Not part of decoding (outputs do not depend on it); None picks the device default."""

    def decoding(self) -> dict[str, Any]:
        """The parameters that change outputs, as recorded in the cache key and manifest."""
        d: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": self.temperature > 0}
        if self.temperature > 0:
            d.update(temperature=self.temperature, top_p=self.top_p, seed=self.seed)
        return d


@dataclass(frozen=True)
class MetricSpec:
    """One metric of a suite: a registered metric type and its parameters, under a report name."""

    name: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    """A validated suite."""

    name: str
    path: Path
    """The suite file."""
    sha256: str
    """Hash of the suite file's bytes (in the manifest)."""
    data: DataSpec
    prompt: PromptSpec
    generation: GenerationSpec
    metrics: tuple[MetricSpec, ...]
    description: str = ""
    train_data: DataSpec | None = None
    gate: dict[str, Any] | None = None
    judge: dict[str, Any] | None = None
    """The ``judge:`` section (checked against judge.schema.json when loaded); None: the default judge."""
    forgetting: ForgettingSpec | None = None
    """Benchmark panels and KL drift run for every arm after the task (``forgetting:``)."""

    @property
    def dir(self) -> Path:
        return self.path.parent


def _data_spec(raw: dict[str, Any], base: Path) -> DataSpec:
    return DataSpec(
        path=(base / raw["path"]).resolve() if "path" in raw else None,
        hf=raw.get("hf"),
        id_field=raw.get("id_field"),
        cluster_field=raw.get("cluster_field"),
        limit=raw.get("limit"),
    )


def load_suite(path: str | Path) -> Suite:
    """Read, validate and build a suite.

    Raises:
        SuiteError: malformed YAML, a schema violation, an unknown metric or bad metric parameters;
            the message names the file and the field.
    """
    from evalkit.metrics import build_metric  # metrics import suite types; avoid a cycle

    path = Path(path)
    doc = load_yaml(path, SuiteError)
    if not isinstance(doc, dict):
        raise SuiteError(f"{path}: a suite must be a YAML mapping with name, data, prompt and metrics")
    validate_against(doc, package_schema("suite.schema.json"), str(path), SuiteError)

    base = path.parent.resolve()
    metrics = tuple(MetricSpec(name=m["name"], type=m["type"], params=m.get("params", {})) for m in doc["metrics"])
    seen: set[str] = set()
    for i, spec in enumerate(metrics):
        if spec.name in seen:
            raise SuiteError(f"{path}: metrics[{i}].name: {spec.name!r} is used twice; metric names must be unique")
        seen.add(spec.name)
        try:
            build_metric(spec, base)
        except MetricError as exc:
            raise SuiteError(f"{path}: metrics[{i}] ({spec.name}): {exc}") from exc

    forgetting = None
    if "forgetting" in doc:
        from evalkit.forgetting.spec import parse_forgetting

        forgetting = parse_forgetting(doc["forgetting"], str(path))
    if "gate" in doc:  # checked now, not after a whole run in CI
        from evalkit.gate import check_policy

        check_policy(doc["gate"], str(path), SuiteError, metrics=sorted(seen), prefix="gate")
        panels = [p.name for p in forgetting.panels] if forgetting else []
        for i, rule in enumerate(doc["gate"]["rules"]):
            if "panel" in rule:
                if rule["panel"] not in panels:
                    raise SuiteError(f"{path}: gate.rules[{i}].panel: {rule['panel']!r} is not a panel of this suite's forgetting section ({', '.join(panels) or 'none'})")
            if "max_kl" in rule and (forgetting is None or forgetting.kl is None):
                raise SuiteError(f"{path}: gate.rules[{i}].max_kl: the suite measures no KL drift; add forgetting: {{kl: true}}")

    if "judge" in doc:  # its fields are checked now; whether the judge can be reached, when a run is planned
        from evalkit.judges import JudgeConfig

        JudgeConfig.from_suite(doc["judge"], base, f"{path}: judge")

    gen = doc.get("generation", {})
    return Suite(
        name=doc["name"],
        path=path.resolve(),
        sha256=sha256_bytes(path.read_bytes()),
        description=doc.get("description", ""),
        data=_data_spec(doc["data"], base),
        train_data=_data_spec(doc["train_data"], base) if "train_data" in doc else None,
        prompt=PromptSpec(**doc["prompt"]),
        generation=GenerationSpec(**gen),
        metrics=metrics,
        gate=doc.get("gate"),
        judge=doc.get("judge"),
        forgetting=forgetting,
    )
