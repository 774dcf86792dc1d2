"""The forgetting stage of a run: panels and KL drift for every arm, on the run's backend.

    prepare(spec)                 data checked and subsampled; before any model loads
    check_backend(backend, ...)   the backend can do what the section asks (one line if not)
    run_forgetting(...)           log-likelihoods per arm (cached), drift per adapter arm (cached)
                                  → ForgettingResult: per-choice rows, per-passage drift, the summary section
    write_rows(run_dir, result)   forgetting.csv and drift.csv

Panels are paired by item: every arm scores the same items, and each adapter arm's
acc/acc_norm is compared with base's by ``stats.compare_paired`` (exact McNemar with
a Newcombe CI: pass/fail metrics), Holm-adjusted across the forgetting rows of the arm.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evalkit._util import atomic_write
from evalkit.cache import GenerationCache
from evalkit.forgetting.drift import drift_stats, measure_drift, reference_passages
from evalkit.forgetting.panels import MCItem, data_version, get_panel, load_panel, subsample
from evalkit.forgetting.scoring import ItemResult, score_items
from evalkit.forgetting.spec import ForgettingSpec
from evalkit.models.base import Backend, PassageDrift, require
from evalkit.records import ForgettingSummary, MetricDelta, PanelInfo

__all__ = ["ForgettingResult", "Prepared", "check_backend", "paired_panels", "prepare", "run_forgetting", "write_rows"]

Progress = Callable[[str, int, int], None]

FORGETTING_COLUMNS = ("panel", "item_id", "arm", "choice", "is_gold", "logprob", "tokens", "chars", "is_greedy",
                      "pred", "pred_norm", "acc", "acc_norm")
DRIFT_COLUMNS = ("arm", "passage_id", "tokens", "mean_kl", "max_kl", "top1_agreement")


@dataclass(frozen=True)
class Prepared:
    """A forgetting section with its data loaded: what runs, known before any weights load."""

    spec: ForgettingSpec
    items: dict[str, list[MCItem]]
    """panel → the subsampled items, in split order."""
    totals: dict[str, int]
    """panel → items in the whole split."""
    passages: list[tuple[str, str]]
    """(id, text) reference passages for KL drift; empty without ``kl``."""


@dataclass
class ForgettingResult:
    """What the stage produced: the summary section and the rows behind it."""

    spec: ForgettingSpec
    summary: ForgettingSummary
    results: list[ItemResult]
    """One per panel × item × arm."""
    drifts: dict[str, list[tuple[str, PassageDrift]]] = field(default_factory=dict)
    """adapter arm → (passage id, drift) per passage."""
    computed: int = 0
    """Log-likelihood requests and drift passages computed by the model in this run."""
    cached: int = 0
    """Log-likelihood requests and drift passages taken from the cache."""

    def record(self) -> dict[str, Any]:
        """What the manifest records under ``extra["forgetting"]``: the config, the data version, the counts."""
        return {"config": self.spec.to_dict(), "data_package": data_version(), "computed": self.computed, "cached": self.cached}


def prepare(spec: ForgettingSpec, limit: int | None = None) -> Prepared:
    """Load and subsample every panel and the reference passages.

    Args:
        limit: at most this many items per panel and passages (``evalkit run --limit``, for quick checks).

    Raises:
        ForgettingError: an unknown panel or the data package missing (one line, before any model loads).
    """
    items, totals = {}, {}
    for p in spec.panels:
        every = load_panel(p.name)
        totals[p.name] = len(every)
        n = p.n if limit is None else min(p.n or len(every), limit)
        items[p.name] = subsample(every, n, spec.seed)
    passages = reference_passages(min(spec.kl.passages, limit or spec.kl.passages)) if spec.kl else []
    return Prepared(spec=spec, items=items, totals=totals, passages=passages)


def check_backend(backend: Backend, prepared: Prepared) -> None:
    """Refuse, before weights load, a backend that cannot score what the section asks for."""
    if prepared.items:
        require(backend, "loglikelihood", f"forgetting panel {next(iter(prepared.items))}")
    if prepared.passages and backend.adapters:
        require(backend, "kl_drift", "forgetting kl")


def run_forgetting(
    prepared: Prepared,
    backend: Backend,
    cache: GenerationCache,
    arms: Sequence[tuple[str, str | None]],
    identity: dict[str, Any],
    *,
    seed: int = 0,
    n_resamples: int = 10_000,
    progress: Progress | None = None,
) -> ForgettingResult:
    """Score every panel in every arm and measure each adapter arm's drift; summarize paired by item.

    Args:
        arms: (arm, adapter fingerprint) with base first (fingerprint None).
        identity: the backend identity part of every cache key (as for generations).
        seed: seeds the statistics.
    """
    results: list[ItemResult] = []
    computed = cached = 0
    for panel, items in prepared.items.items():
        for arm, adapter_fp in arms:
            report = (lambda d, t, label=f"{panel} · {arm}": progress(label, d, t)) if progress else None
            res, n_new = score_items(backend, cache, items, arm, adapter_fp, identity, report)
            results.extend(res)
            computed += n_new
            cached += sum(len(r.choices) for r in res) - n_new
    drifts: dict[str, list[tuple[str, PassageDrift]]] = {}
    if prepared.passages and prepared.spec.kl:
        for arm, adapter_fp in arms[1:]:
            report = (lambda d, t, label=f"kl · {arm}": progress(label, d, t)) if progress else None
            assert adapter_fp is not None
            out, n_new = measure_drift(backend, cache, prepared.passages, arm, adapter_fp, identity, prepared.spec.kl.max_tokens, report)
            drifts[arm] = [(pid, d) for (pid, _), d in zip(prepared.passages, out)]
            computed += n_new
            cached += len(out) - n_new
    summary = summarize_forgetting(prepared, results, drifts, [a for a, _ in arms], seed=seed, n_resamples=n_resamples)
    return ForgettingResult(spec=prepared.spec, summary=summary, results=results, drifts=drifts, computed=computed, cached=cached)


def summarize_forgetting(
    prepared: Prepared,
    results: Sequence[ItemResult],
    drifts: dict[str, list[tuple[str, PassageDrift]]],
    arms: Sequence[str],
    *,
    reference: str = "base",
    seed: int = 0,
    n_resamples: int = 10_000,
) -> ForgettingSummary:
    """Means per arm, paired comparisons per adapter arm × panel × metric, and drift statistics."""
    values: dict[tuple[str, str, str], np.ndarray] = {}  # (panel, arm, metric) → per-item values in item order
    index = {(panel, it.id): i for panel, items in prepared.items.items() for i, it in enumerate(items)}
    for panel, items in prepared.items.items():
        for arm in arms:
            for metric in get_panel(panel).metrics:
                values[(panel, arm, metric)] = np.full(len(items), np.nan)
    for r in results:
        for metric, value in r.metrics.items():
            if (r.item.panel, r.arm, metric) in values:
                values[(r.item.panel, r.arm, metric)][index[(r.item.panel, r.item.id)]] = value
    rows = [(panel, metric) for panel in prepared.items for metric in get_panel(panel).metrics]
    means, deltas = paired_panels(values, rows, arms, reference=reference, seed=seed, n_resamples=n_resamples)
    panels = [PanelInfo(name=p, n=len(items), total=prepared.totals[p], metrics=list(get_panel(p).metrics),
                        primary=get_panel(p).primary, licence=get_panel(p).licence) for p, items in prepared.items.items()]
    drift = [drift_stats(arm, [d for _, d in drifts[arm]]) for arm in arms if arm in drifts]
    return ForgettingSummary(panels=panels, means=means, deltas=deltas, drift=drift, seed=prepared.spec.seed)


def paired_panels(
    values: dict[tuple[str, str, str], np.ndarray],
    rows: Sequence[tuple[str, str]],
    arms: Sequence[str],
    *,
    reference: str,
    seed: int = 0,
    n_resamples: int = 10_000,
) -> tuple[dict[str, dict[str, float]], list[MetricDelta]]:
    """Means per arm and ``panel/metric``, and every other arm's paired comparison with ``reference``.

    ``values[(panel, arm, metric)]`` holds per-item 0/1 values (NaN: not scored), items in the
    same order in every arm; ``rows`` lists the (panel, metric) pairs, Holm-adjusted together per arm.
    """
    from evalkit.stats import compare_paired, holm  # scipy: imported once the panels are scored, not at start-up

    means = {arm: {f"{p}/{m}": _mean(values[(p, arm, m)]) for p, m in rows} for arm in arms}
    deltas: list[MetricDelta] = []
    for arm in arms:
        if arm == reference:
            continue
        stats = [(p, m, compare_paired(values[(p, reference, m)], values[(p, arm, m)], binary=True, seed=seed, n_resamples=n_resamples)) for p, m in rows]
        for (p, m, st), p_adj in zip(stats, holm([st.p_value for _, _, st in stats])):
            deltas.append(MetricDelta(
                metric=f"{p}/{m}", arm=arm, reference=reference, binary=True, n=st.n,
                reference_mean=st.base_mean, arm_mean=st.adapter_mean, delta=st.delta, ci_low=st.ci_low, ci_high=st.ci_high,
                p_value=st.p_value, p_adjusted=float(p_adj), test=st.test, fail_to_pass=st.fail_to_pass, pass_to_fail=st.pass_to_fail,
                mde=st.mde, underpowered=st.underpowered, clustered=st.clustered, reference_errors=0, arm_errors=0,
            ))
    return means, deltas


def _mean(v: np.ndarray) -> float:
    kept = v[~np.isnan(v)]
    return float(kept.mean()) if kept.size else float("nan")


def write_rows(run_dir: Path, result: ForgettingResult) -> None:
    """``forgetting.csv`` (one row per panel × item × arm × choice) and ``drift.csv`` (one per adapter arm × passage)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(FORGETTING_COLUMNS)
    for r in result.results:
        m = r.metrics
        reported = get_panel(r.item.panel).metrics  # winogrande: acc only (its "choices" are contexts)
        cells = [int(m[k]) if k in reported else "" for k in ("acc", "acc_norm")]
        for k, (choice, s) in enumerate(zip(r.item.choices, r.choices)):
            w.writerow([r.item.panel, r.item.id, r.arm, k, int(k == r.item.gold), repr(s.logprob), s.tokens, len(choice),
                        int(s.is_greedy), r.pred, r.pred_norm if "acc_norm" in reported else "", *cells])
    atomic_write(run_dir / "forgetting.csv", buf.getvalue())
    if result.drifts:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(DRIFT_COLUMNS)
        for arm, rows in result.drifts.items():
            for pid, d in rows:
                mean = d.kl_sum / d.tokens if d.tokens else float("nan")
                agree = d.top1_agree / d.tokens if d.tokens else float("nan")
                w.writerow([arm, pid, d.tokens, repr(mean), repr(d.kl_max), repr(agree)])
        atomic_write(run_dir / "drift.csv", buf.getvalue())
