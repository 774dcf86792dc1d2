"""What a suite's ``forgetting:`` section (or ``evalkit run --forgetting-only``) asks for.

    forgetting:
      seed: 0                                   # the subsample seed
      panels:
        - {name: arc_easy, n: 100, max_drop: 0.05}   # n: items (seeded, stratified); "all": the whole split
        - hellaswag                                  # a bare name: 200 items, no budget
      kl: {passages: 20, max_tokens: 128, max_kl: 0.1}

``max_drop`` is a budget on the panel's primary metric (or ``metric``): the gate requires
the 95% CI lower bound of Δ (adapter − base) to stay above −max_drop. ``max_kl`` bounds
the mean per-token KL(base ‖ adapter). Budgets become gate rules (:meth:`ForgettingSpec.rules`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from evalkit.errors import ForgettingError
from evalkit.forgetting.panels import get_panel

__all__ = ["DriftSpec", "ForgettingSpec", "PanelSpec", "parse_forgetting"]


@dataclass(frozen=True)
class PanelSpec:
    """One panel of a forgetting section."""

    name: str
    n: int | None = 200
    """Items in the seeded, stratified subsample; None: the whole validation split."""
    max_drop: float | None = None
    """Budget: the CI lower bound of Δ on ``metric`` must stay above −max_drop."""
    metric: str | None = None
    """The metric the budget applies to (default: the panel's primary metric)."""


@dataclass(frozen=True)
class DriftSpec:
    """KL drift on reference passages (built from HellaSwag's validation text; see ``drift.py``)."""

    passages: int = 32
    max_tokens: int = 128
    """Tokens of each passage that are compared."""
    max_kl: float | None = None
    """Budget: mean per-token KL(base ‖ adapter) at most this (nats)."""


@dataclass(frozen=True)
class ForgettingSpec:
    """A validated forgetting section."""

    panels: tuple[PanelSpec, ...] = ()
    kl: DriftSpec | None = None
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """As recorded in the manifest (``extra["forgetting"]["config"]``)."""
        return asdict(self)

    def rules(self) -> list[dict[str, Any]]:
        """The section's budgets as gate rules."""
        rules: list[dict[str, Any]] = []
        for p in self.panels:
            if p.max_drop is not None:
                rules.append({"panel": p.name, "max_drop": p.max_drop, **({"metric": p.metric} if p.metric else {})})
        if self.kl is not None and self.kl.max_kl is not None:
            rules.append({"max_kl": self.kl.max_kl})
        return rules


def parse_forgetting(doc: dict[str, Any], where: str) -> ForgettingSpec:
    """Build a spec from a schema-valid ``forgetting:`` mapping; checks panel and metric names.

    Raises:
        ForgettingError: an unknown panel, a panel named twice, or a metric the panel does not report.
    """
    panels = []
    for i, raw in enumerate(doc.get("panels", [])):
        raw = {"name": raw} if isinstance(raw, str) else raw
        try:
            panel = get_panel(raw["name"])
        except ForgettingError as exc:
            raise ForgettingError(f"{where}: forgetting.panels[{i}]: {exc}") from None
        if any(p.name == panel.name for p in panels):
            raise ForgettingError(f"{where}: forgetting.panels[{i}]: {panel.name!r} is listed twice; list each panel once")
        metric = raw.get("metric")
        if metric is not None and metric not in panel.metrics:
            raise ForgettingError(f"{where}: forgetting.panels[{i}].metric: {panel.name} reports {', '.join(panel.metrics)}, not {metric!r}")
        n = raw.get("n", panel.default_n)
        panels.append(PanelSpec(name=panel.name, n=None if n == "all" else int(n), max_drop=raw.get("max_drop"), metric=metric))
    kl_raw = doc.get("kl", False)
    kl = None
    if kl_raw is True:
        kl = DriftSpec()
    elif isinstance(kl_raw, dict):
        kl = DriftSpec(**kl_raw)
    if not panels and kl is None:
        raise ForgettingError(f"{where}: forgetting: names no panel and no kl drift; add panels: [arc_easy] or kl: true, or remove the section")
    return ForgettingSpec(panels=tuple(panels), kl=kl, seed=int(doc.get("seed", 0)))
