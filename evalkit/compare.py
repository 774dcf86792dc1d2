"""Scores → comparison: each adapter arm against base, paired by item.

The summary is what ``summary.json`` holds and what reports and gates read. Every
number in it is computed from the long score table, so it can be traced back to
per-item rows in ``scores.csv``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from evalkit.records import SUMMARY_VERSION, Flip, ForgettingSummary, Generation, Item, MetricDelta, PanelInfo, ScoreRow, Summary
from evalkit.stats import compare_paired, holm

__all__ = ["compare_runs", "summarize"]


def summarize(
    suite: str,
    items: Sequence[Item],
    scores: Sequence[ScoreRow],
    metrics: Sequence[tuple[str, bool]],
    arms: Sequence[str],
    generations: Sequence[Generation] = (),
    *,
    reference: str = "base",
    seed: int = 0,
    n_resamples: int = 10_000,
) -> Summary:
    """Pair scores by item and compare every other arm with ``reference``.

    Args:
        metrics: (name, binary) for each metric, in report order.
        arms: every arm, ``reference`` among them.
        generations: used to measure how often an adapter's output equals the reference's.
        seed: seeds the bootstrap, so a summary is reproducible.
    """
    ids = [it.id for it in items]
    index = {item_id: i for i, item_id in enumerate(ids)}
    clusters = [it.cluster for it in items]
    use_clusters = any(c is not None for c in clusters)
    values: dict[tuple[str, str], np.ndarray] = {}
    errors: dict[str, dict[str, int]] = defaultdict(dict)
    for arm in arms:
        for name, _ in metrics:
            values[(arm, name)] = np.full(len(ids), np.nan)
            errors[arm][name] = 0
    for row in scores:
        if row.item_id not in index or (row.arm, row.metric) not in values:
            continue
        if row.error is not None or row.value is None:
            errors[row.arm][row.metric] += 1
        else:
            values[(row.arm, row.metric)][index[row.item_id]] = row.value

    means = {arm: {name: _mean(values[(arm, name)]) for name, _ in metrics} for arm in arms}
    deltas: list[MetricDelta] = []
    flips: list[Flip] = []
    for arm in arms:
        if arm == reference:
            continue
        arm_deltas = []
        for name, binary in metrics:
            ref, got = values[(reference, name)], values[(arm, name)]
            st = compare_paired(
                ref, got, binary=binary, clusters=clusters if use_clusters else None, seed=seed, n_resamples=n_resamples
            )
            arm_deltas.append((name, binary, st))
            if binary:
                for i in np.flatnonzero((ref == 0) & (got == 1)):
                    flips.append(Flip(name, arm, ids[i], "fail→pass"))
                for i in np.flatnonzero((ref == 1) & (got == 0)):
                    flips.append(Flip(name, arm, ids[i], "pass→fail"))
        adjusted = holm([st.p_value for _, _, st in arm_deltas])
        for (name, binary, st), p_adj in zip(arm_deltas, adjusted):
            deltas.append(
                MetricDelta(
                    metric=name, arm=arm, reference=reference, binary=binary, n=st.n,
                    reference_mean=st.base_mean, arm_mean=st.adapter_mean, delta=st.delta,
                    ci_low=st.ci_low, ci_high=st.ci_high, p_value=st.p_value, p_adjusted=float(p_adj),
                    test=st.test, fail_to_pass=st.fail_to_pass, pass_to_fail=st.pass_to_fail,
                    mde=st.mde, underpowered=st.underpowered, clustered=st.clustered,
                    reference_errors=errors[reference][name], arm_errors=errors[arm][name],
                )
            )
    return Summary(
        version=SUMMARY_VERSION, suite=suite, reference=reference, arms=list(arms), metrics=[m for m, _ in metrics],
        n_items=len(ids), means=means, errors=dict(errors), deltas=deltas, flips=flips,
        identical_outputs=_identical(generations, reference, arms), seed=seed,
    )


def _mean(v: np.ndarray) -> float:
    kept = v[~np.isnan(v)]
    return float(kept.mean()) if kept.size else float("nan")


def _identical(generations: Sequence[Generation], reference: str, arms: Sequence[str]) -> dict[str, float]:
    by_arm: dict[str, dict[str, str]] = defaultdict(dict)
    for g in generations:
        by_arm[g.arm][g.item_id] = g.text
    ref = by_arm.get(reference, {})
    out = {}
    for arm in arms:
        if arm == reference or not by_arm.get(arm):
            continue
        shared = [i for i in by_arm[arm] if i in ref]
        out[arm] = sum(by_arm[arm][i] == ref[i] for i in shared) / len(shared) if shared else float("nan")
    return out


def compare_runs(run_a: Any, run_b: Any, arm_a: str | None = None, arm_b: str | None = None, *, seed: int = 0) -> Summary:
    """Paired comparison of one arm of run A (reference) with one arm of run B, matched by item id.

    By default each run's first adapter arm (or base, when a run has none). Items only
    one run has are left out and counted in ``extra["unmatched"]``.

    Raises:
        RunDirError: different suites, unknown arms, or no shared items.
    """
    from evalkit.errors import RunDirError

    sa, sb = run_a.summary, run_b.summary
    if sa.suite != sb.suite:
        raise RunDirError(f"runs are of different suites ({sa.suite!r} vs {sb.suite!r}); compare runs of one suite")

    def pick(run: Any, arm: str | None, label: str) -> str:
        arms = run.summary.arms
        if arm is None:
            return next((a for a in arms if a != run.summary.reference), arms[0])
        if arm not in arms:
            raise RunDirError(f"{run.path}: no arm {arm!r} (arms: {', '.join(arms)}); choose with --arm-{label}")
        return arm

    a, b = pick(run_a, arm_a, "a"), pick(run_b, arm_b, "b")
    ref_name, arm_name = f"A:{a}", f"B:{b}"
    metrics_b = {m.name for m in run_b.manifest.metrics}
    metrics = [(m.name, m.binary) for m in run_a.manifest.metrics if m.name in metrics_b]
    rows_a = [r for r in run_a.scores() if r.arm == a]
    rows_b = [r for r in run_b.scores() if r.arm == b]
    ids_a, ids_b = {r.item_id for r in rows_a}, {r.item_id for r in rows_b}
    shared = sorted(ids_a & ids_b)
    if not shared:
        raise RunDirError("the two runs share no item ids; were they run on the same data?")
    gens_a = [g for g in run_a.generations() if g["arm"] == a]
    gens_b = [g for g in run_b.generations() if g["arm"] == b]
    clusters = {g["item_id"]: g.get("cluster") for g in gens_a}
    items = [Item(id=i, row={}, cluster=clusters.get(i)) for i in shared]
    scores = [ScoreRow(r.item_id, ref_name, r.metric, r.value, r.error, r.detail) for r in rows_a]
    scores += [ScoreRow(r.item_id, arm_name, r.metric, r.value, r.error, r.detail) for r in rows_b]
    gens = [Generation(g["item_id"], ref_name, g["text"], 0, 0, 0.0) for g in gens_a]
    gens += [Generation(g["item_id"], arm_name, g["text"], 0, 0, 0.0) for g in gens_b]
    summary = summarize(sa.suite, items, scores, metrics, [ref_name, arm_name], gens, reference=ref_name, seed=seed)
    summary.extra["unmatched"] = len(ids_a ^ ids_b)
    ma, mb = run_a.manifest, run_b.manifest
    checks = {
        "suite file": (ma.suite.sha256, mb.suite.sha256),
        "base model": (ma.base.fingerprint, mb.base.fingerprint),
        "chat template": (ma.chat_template_sha256, mb.chat_template_sha256),
        "decoding": (ma.decoding, mb.decoding),
        "backend": (ma.backend, mb.backend),
    }
    summary.extra["differences"] = [f"the runs differ in {what}: items with one id may not have seen the same prompt or model"
                                    for what, (x, y) in checks.items() if x != y]
    summary.extra["runs"] = {"A": str(run_a.path), "B": str(run_b.path)}
    if sa.forgetting and sb.forgetting:
        summary = replace(summary, forgetting=_compare_forgetting(run_a, run_b, a, b, ref_name, arm_name, seed))
        if summary.forgetting is None:
            summary.extra["differences"].append("the runs share no forgetting panel items; forgetting is not compared")
        elif (ma.extra.get("forgetting") or {}).get("config") != (mb.extra.get("forgetting") or {}).get("config"):
            summary.extra["differences"].append("the runs' forgetting sections differ: panels are compared on the items both scored")
    elif sa.forgetting or sb.forgetting:
        summary.extra["differences"].append(f"only run {'A' if sa.forgetting else 'B'} has a forgetting section; forgetting is not compared")
    return summary


def _compare_forgetting(run_a: Any, run_b: Any, a: str, b: str, ref_name: str, arm_name: str, seed: int) -> ForgettingSummary | None:
    """Run A's arm against run B's on the panel items both runs scored, paired by (panel, item id); None if there are none."""
    from evalkit.forgetting.stage import paired_panels

    res_a, res_b = run_a.forgetting_results(), run_b.forgetting_results()
    panels_b = {p.name for p in run_b.summary.forgetting.panels}
    values: dict[tuple[str, str, str], np.ndarray] = {}
    panels: list[PanelInfo] = []
    rows: list[tuple[str, str]] = []
    for info in run_a.summary.forgetting.panels:
        if info.name not in panels_b:
            continue
        ids = sorted({i for (p, i, arm) in res_a if p == info.name and arm == a} & {i for (p, i, arm) in res_b if p == info.name and arm == b})
        if not ids:
            continue
        panels.append(PanelInfo(name=info.name, n=len(ids), total=info.total, metrics=info.metrics, primary=info.primary, licence=info.licence))
        for metric in info.metrics:
            rows.append((info.name, metric))
            for arm, res, own in ((ref_name, res_a, a), (arm_name, res_b, b)):
                values[(info.name, arm, metric)] = np.array([res[(info.name, i, own)].get(metric, np.nan) for i in ids])
    if not rows:
        return None
    means, deltas = paired_panels(values, rows, [ref_name, arm_name], reference=ref_name, seed=seed)
    return ForgettingSummary(panels=panels, means=means, deltas=deltas, drift=[], seed=run_a.summary.forgetting.seed)
