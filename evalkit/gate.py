"""Gate: a policy over a run's comparison → pass/fail, with the reason for every rule.

    rules:
      - {metric: format, min_delta: 0.10, require_significant: true}
      - {metric: faithfulness, max_drop: 0.05}     # non-inferiority: CI lower bound > −0.05
      - {metric: format, min_value: 0.9}
      - {min_n: 100}                               # every metric
      - {panel: arc_easy, max_drop: 0.05}          # forgetting budget: CI lower bound of the panel's Δ > −0.05
      - {max_kl: 0.1}                              # mean per-token KL(base ‖ adapter) ≤ 0.1 nats

The policy comes from ``--policy FILE`` or the suite's ``gate:`` section; the budgets
of the run's forgetting section (``max_drop`` per panel, ``kl.max_kl``) are added to it
(:func:`run_policy`). Each rule is checked for every adapter arm (or the arms the
policy names).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit._util import load_yaml, package_schema, validate_against
from evalkit.records import MetricDelta, Summary
from evalkit.errors import GateError
from evalkit.report.markdown import fmt_p

__all__ = ["GateResult", "RuleResult", "check_policy", "evaluate_gate", "gate_markdown", "load_policy", "run_policy"]


@dataclass(frozen=True)
class RuleResult:
    """One check of one rule on one adapter arm."""

    rule: str
    """The rule as written, e.g. ``format: min_delta 0.1``."""
    arm: str
    metric: str
    passed: bool
    observed: str
    """What the run shows, e.g. ``Δ +0.040``."""
    required: str
    """What the rule asks for, e.g. ``Δ ≥ +0.100``."""
    shortfall: float | None
    """By how much it failed (in the rule's units); None when it passed."""


@dataclass(frozen=True)
class GateResult:
    passed: bool
    results: list[RuleResult]

    @property
    def failures(self) -> list[RuleResult]:
        return [r for r in self.results if not r.passed]


def load_policy(path: str | Path | None, suite_gate: dict[str, Any] | None = None, where: str = "suite") -> dict[str, Any]:
    """Read and validate a policy file, or the suite's ``gate:`` section.

    Args:
        where: the suite file, named in errors about its ``gate:`` section.

    Raises:
        GateError: no policy anywhere, malformed YAML, a schema violation, or a rule that checks nothing.
    """
    if path is not None:
        doc = load_yaml(Path(path), GateError)
        check_policy(doc, str(path), GateError)
    elif suite_gate is not None:
        doc = suite_gate
        check_policy(doc, where, GateError, prefix="gate")
    else:
        raise GateError("no gate policy: pass --policy gate.yaml or add a gate: section with rules to the suite")
    return doc


def check_policy(doc: Any, where: str, error: type[Exception] = GateError, metrics: list[str] | None = None, prefix: str = "") -> None:
    """Everything about a policy that can be checked without a run (the suite's ``gate:`` is checked when it loads).

    Args:
        metrics: the metric names rules may name, when known (a suite's metrics).
        prefix: ``"gate"`` when the policy is a suite's section (field names become ``gate.rules[0]``).

    Raises:
        error: naming the rule and the fix.
    """
    head = f"{prefix}." if prefix else ""
    if not isinstance(doc, dict):
        raise error(f"{where}: {prefix or '(top level)'}: a gate policy must be a mapping with rules")
    validate_against(doc, package_schema("gate.schema.json"), where, error, prefix=(prefix,) if prefix else ())
    checks = 0
    for i, rule in enumerate(doc["rules"]):
        metric = rule.get("metric")
        if "panel" in rule or "max_kl" in rule:  # forgetting budgets: checked against the run's forgetting section
            checks += 1
            continue
        if metric is None and set(rule) != {"min_n"}:
            raise error(f"{where}: {head}rules[{i}]: give a metric or a panel (only min_n may apply to every metric)")
        if metrics is not None and metric is not None and metric not in metrics:
            raise error(f"{where}: {head}rules[{i}].metric: {metric!r} is not a metric of this suite ({', '.join(sorted(metrics))})")
        checks += sum(k in rule for k in ("min_n", "min_delta", "max_drop", "min_value")) + bool(rule.get("require_significant"))
    if not checks:
        raise error(f"{where}: {head}rules: no rule checks anything (e.g. only require_significant: false); a gate with no checks cannot pass")


def run_policy(path: str | Path | None, manifest: Any, where: str = "suite gate") -> dict[str, Any]:
    """The policy a run is gated by: ``--policy`` (or the suite's gate), plus the run's forgetting budgets.

    Raises:
        GateError: no policy and no budget anywhere, or a malformed policy.
    """
    config = (manifest.extra.get("forgetting") or {}).get("config") or {}
    from evalkit.forgetting.spec import DriftSpec, ForgettingSpec, PanelSpec

    kl = config.get("kl")
    spec = ForgettingSpec(panels=tuple(PanelSpec(**p) for p in config.get("panels", [])), kl=DriftSpec(**kl) if kl else None)
    budgets = spec.rules()
    if path is None and manifest.gate is None and budgets:
        return {"rules": budgets}
    policy = load_policy(path, manifest.gate, where)
    return {**policy, "rules": [*policy["rules"], *budgets]}


def _check_kl(rule: dict[str, Any], summary: Summary, arm: str) -> RuleResult:
    limit = float(rule["max_kl"])
    label = f"kl: max_kl {limit:g}"
    drift = summary.forgetting.drift_of(arm) if summary.forgetting else None
    if drift is None or math.isnan(drift.mean_kl):
        return RuleResult(label, arm, "kl", False, "KL drift not measured", f"mean KL ≤ {limit:g}", None)
    ok = drift.mean_kl <= limit
    return RuleResult(label, arm, "kl", ok, f"mean KL {drift.mean_kl:.4f}", f"mean KL ≤ {limit:g}", None if ok else drift.mean_kl - limit)


def _check(rule: dict[str, Any], d: MetricDelta, alpha: float) -> list[RuleResult]:
    out = []
    label = d.metric

    def add(kind: str, passed: bool, observed: str, required: str, shortfall: float | None) -> None:
        out.append(RuleResult(f"{label}: {kind}", d.arm, d.metric, passed, observed, required, None if passed else shortfall))

    if d.n == 0:  # an unscored metric fails every rule on it: no verdict is not a pass
        kinds = [f"{k} {rule[k]:g}" for k in ("min_n", "min_delta", "max_drop", "min_value") if k in rule]
        kinds += ["require_significant"] if rule.get("require_significant") else []
        observed = f"not scored (errors: {d.reference} {d.reference_errors}, {d.arm} {d.arm_errors})"
        for kind in kinds:
            add(kind, False, observed, "a scored metric", None)
        return out
    if "min_n" in rule:
        add(f"min_n {rule['min_n']}", d.n >= rule["min_n"], f"n = {d.n}", f"n ≥ {rule['min_n']}", float(rule["min_n"] - d.n))
    if "min_delta" in rule:
        ok = not math.isnan(d.delta) and d.delta >= rule["min_delta"]
        add(f"min_delta {rule['min_delta']:g}", ok, f"Δ {d.delta:+.3f}", f"Δ ≥ {rule['min_delta']:+.3f}", rule["min_delta"] - d.delta)
    if "max_drop" in rule:
        bound = -rule["max_drop"]
        ok = not math.isnan(d.ci_low) and d.ci_low > bound
        add(f"max_drop {rule['max_drop']:g}", ok, f"CI lower bound {d.ci_low:+.3f}", f"CI lower bound > {bound:+.3f}", bound - d.ci_low)
    if "min_value" in rule:
        ok = not math.isnan(d.arm_mean) and d.arm_mean >= rule["min_value"]
        add(f"min_value {rule['min_value']:g}", ok, f"mean {d.arm_mean:.3f}", f"mean ≥ {rule['min_value']:.3f}", rule["min_value"] - d.arm_mean)
    if rule.get("require_significant"):
        ok = d.delta > 0 and d.p_adjusted < alpha
        # short of significance by the p distance; a significant change in the wrong direction by its Δ
        short = -d.delta if (d.delta <= 0 and d.p_adjusted < alpha) else d.p_adjusted - alpha
        add("require_significant", ok, f"Δ {d.delta:+.3f}, p {fmt_p(d.p_adjusted)}", f"Δ > 0 and p < {alpha:g}", short)
    return out


def evaluate_gate(summary: Summary, policy: dict[str, Any]) -> GateResult:
    """Apply every rule to every adapter arm of the run.

    Raises:
        GateError: a rule names a metric or arm the run does not have.
    """
    adapters = [a for a in summary.arms if a != summary.reference]
    arms = policy.get("arms") or adapters
    for arm in arms:
        if arm not in adapters:
            raise GateError(f"gate policy: arms: {arm!r} is not an adapter arm of this run ({', '.join(adapters) or 'none'})")
    if not arms:
        raise GateError("gate: the run has no adapter arm to gate; run with --adapter")
    alpha = float(policy.get("alpha", 0.05))
    results: list[RuleResult] = []
    forgetting = summary.forgetting
    panels = [p.name for p in forgetting.panels] if forgetting else []
    for i, rule in enumerate(policy["rules"]):
        if "max_kl" in rule:
            if forgetting is None or not forgetting.drift:
                raise GateError(f"gate policy: rules[{i}].max_kl: this run measured no KL drift; add forgetting: {{kl: true}} to the suite and run again")
            results.extend(_check_kl(rule, summary, arm) for arm in arms)
            if set(rule) <= {"max_kl"}:
                continue
        if "panel" in rule:
            panel = forgetting.panel(rule["panel"]) if forgetting else None
            if panel is None:
                raise GateError(f"gate policy: rules[{i}].panel: {rule['panel']!r} is not a forgetting panel of this run ({', '.join(panels) or 'none'})")
            metric = rule.get("metric", panel.primary)
            if metric not in panel.metrics:
                raise GateError(f"gate policy: rules[{i}].metric: panel {panel.name} reports {', '.join(panel.metrics)}, not {metric!r}")
            for arm in arms:
                d = forgetting.delta(panel.name, metric, arm)  # type: ignore[union-attr]
                assert d is not None
                results.extend(_check({k: v for k, v in rule.items() if k not in ("panel", "metric", "max_kl")}, d, alpha))
            continue
        metric = rule.get("metric")
        if metric is None and set(rule) != {"min_n"}:
            raise GateError(f"gate policy: rules[{i}]: give a metric (only min_n may apply to every metric)")
        if metric is not None and metric not in summary.metrics:
            raise GateError(f"gate policy: rules[{i}].metric: {metric!r} is not a metric of this run ({', '.join(summary.metrics)})")
        for arm in arms:
            for m in [metric] if metric else summary.metrics:
                d = summary.delta(m, arm)
                assert d is not None
                results.extend(_check(rule, d, alpha))
    if not results:
        raise GateError("gate policy: no rule checks anything (e.g. only require_significant: false); a gate with no checks cannot pass")
    return GateResult(passed=all(r.passed for r in results), results=results)


def gate_markdown(result: GateResult, summary: Summary, run_dir: Path | None = None) -> str:
    """A gate summary ready to post as a PR comment."""
    icon = "✅" if result.passed else "❌"
    n_fail = len(result.failures)
    head = f"## {icon} evalkit gate: {'passed' if result.passed else f'failed ({n_fail} of {len(result.results)} checks)'}"
    what = f"{summary.n_items} items" if summary.metrics or not summary.forgetting else \
        "forgetting panels " + ", ".join(f"{p.name} ({p.n} items)" for p in summary.forgetting.panels)
    lines = [head, "", f"Suite **{summary.suite}**, {what}" + (f", run `{run_dir.name}`" if run_dir else "") + ".", ""]
    lines += ["| | Arm | Rule | Observed | Required |", "|---|---|---|---|---|"]
    for r in result.results:
        lines.append(f"| {'✅' if r.passed else '❌'} | {r.arm} | {r.rule} | {r.observed} | {r.required} |")
    if result.failures:
        lines += ["", "**Failed:**"]
        for r in result.failures:
            by = f" (short by {abs(r.shortfall):.3f})" if r.shortfall is not None and not math.isnan(r.shortfall) else ""
            lines.append(f"- {r.arm} · {r.rule}: {r.observed}, needs {r.required}{by}")
    return "\n".join(lines) + "\n"
