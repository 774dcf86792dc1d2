"""The report's judged-metrics section and the judge's run facts.

Every count here is recomputed from ``scores.csv`` (the per-item rows), so it is traceable
and a merged run of shards reports the whole run: verdicts per metric and arm, parse
failures and judge call errors (recorded errors, excluded from means), the judge's own
disagreement over ``samples``, the seeded sample judged, pairwise win rates, and agreement
with human labels where the suite has them.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Any

from evalkit.judges.judge import CALL_ERROR, PARSE_FAILURE
from evalkit.records import Manifest, ScoreRow, Summary

__all__ = ["judge_facts", "judge_section"]

_SMOKE = ("hf", "smollm2-135m-instruct")


def _detail(row: ScoreRow) -> dict[str, Any]:
    try:
        doc = json.loads(row.detail) if row.detail else {}
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _counts(rows: list[ScoreRow]) -> dict[str, Any]:
    errors = [r.error or "" for r in rows if r.value is None]
    docs = [_detail(r) for r in rows]
    twice = sum(int(d.get("judged_twice", 0)) for d in docs)
    return {
        "scored": sum(r.value is not None for r in rows),
        "parse": sum(e.startswith(PARSE_FAILURE) for e in errors),
        "call": sum(e.startswith(CALL_ERROR) for e in errors),
        "other": sum(not e.startswith((PARSE_FAILURE, CALL_ERROR)) for e in errors),
        "disagree": (sum(int(d.get("disagreements", 0)) for d in docs), twice),
    }


def _pairwise_lines(summary: Summary, metric: str, rows: list[ScoreRow]) -> list[str]:
    lines = []
    for d in (d for d in summary.deltas if d.metric == metric):
        mine = [r for r in rows if r.arm == d.arm and r.value is not None]
        wins = sum(r.value > 0.5 for r in mine)  # type: ignore[operator]
        losses = sum(r.value < 0.5 for r in mine)  # type: ignore[operator]
        inconsistent = sum(bool(_detail(r).get("inconsistent")) for r in mine)
        identical = sum(bool(_detail(r).get("identical")) for r in mine)
        if not d.n:
            lines.append(f"- **{metric}** ({d.arm} vs {d.reference}): not scored.")
            continue
        ci = "" if math.isnan(d.ci_low) else f", 95% CI [{0.5 + d.ci_low:.3f}, {0.5 + d.ci_high:.3f}]"
        lines.append(
            f"- **{metric}** ({d.arm} vs {d.reference}): win rate **{0.5 + d.delta:.3f}**{ci} over {d.n} items "
            f"(1 win, ½ tie, 0 loss; each item judged in both orders and averaged): {wins} won, "
            f"{len(mine) - wins - losses} tied ({identical} identical answers, not judged), {losses} lost; "
            f"**{inconsistent} order-inconsistent** (the verdict changed when the answers swapped places).")
    return lines


def judge_section(summary: Summary, manifest: Manifest, scores: list[ScoreRow], generations: list[dict[str, Any]] | None = None) -> list[str]:
    """``## Judged metrics`` for a run with judged metrics; nothing otherwise."""
    judge = manifest.extra.get("judge")
    if not judge:
        return []
    lines = ["## Judged metrics", ""]
    who = f"{judge.get('backend')}:{judge.get('model')}"
    if (judge.get("backend"), judge.get("model")) == _SMOKE:
        lines += [f"⚠️ The judge is `{who}`, a 135M-parameter model: a smoke test of the judging machinery, not evidence. "
                  "Point the suite's `judge:` (or `--judge`) at a stronger model before trusting these rows.", ""]
    else:
        lines += [f"Judge: `{who}`" + (f" at {judge['endpoint']}" if judge.get("endpoint") else "") + ".", ""]
    metrics: dict[str, dict[str, Any]] = judge.get("metrics", {})
    by: dict[tuple[str, str], list[ScoreRow]] = defaultdict(list)
    for r in scores:
        if r.metric in metrics:
            by[(r.metric, r.arm)].append(r)
    # Each arm's own mean is shown here too: the paired table has no Δ when one arm has nothing to judge
    # (e.g. a base model that writes no JSON has no summary whose faithfulness could be judged).
    lines += ["| Metric | arm | scored | mean | parse failures | judge call errors | other errors | judge disagreement |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name in metrics:
        for arm in summary.arms:
            c = _counts(by.get((name, arm), []))
            d, n = c["disagree"]
            disagreement = f"{d} of {n} ({d / n:.0%})" if n else "–"
            mean = summary.means.get(arm, {}).get(name, math.nan)
            shown = "–" if mean is None or math.isnan(mean) else f"{mean:.3f}"
            lines.append(f"| {name} | {arm} | {c['scored']} | {shown} | {c['parse']} | {c['call']} | {c['other']} | {disagreement} |")
    lines += ["", "Parse failures (a reply that failed validation, then its one repair) and judge call errors (after "
              "retries) are recorded errors: excluded from means, never a 0 or a pass. Other errors: nothing to judge "
              "(no JSON, no such field, no claims) or no output. Judge disagreement: verdicts whose extra samples "
              "(`samples: k`, drawn at the judge's sample temperature) differ from the greedy one.", ""]
    for name, info in metrics.items():
        sample = info.get("sample")
        if sample:
            lines.append(f"- **{name}** judged a seeded sample of {sample['n']} of {sample['of']} items (seed {sample['seed']}), "
                         f"the same items in every arm; its row above and in the table covers those items only.")
        if info.get("type") == "pairwise":
            lines += _pairwise_lines(summary, name, [r for r in scores if r.metric == name])
    stats = judge.get("stats", {})
    if stats:
        calls = sum(s.get("calls", 0) for s in stats.values())
        cached = sum(s.get("cached", 0) for s in stats.values())
        repaired = sum(s.get("repaired", 0) for s in stats.values())
        lines.append(f"- Judge requests this run: {calls} sent ({repaired} verdicts needed the repair turn), "
                     f"{cached} verdicts from the cache.")
    labels = judge.get("labels")
    if labels and labels.get("rows"):
        from evalkit.judges.agreement import agreement_from_scores, agreement_markdown

        calibration = {name: info.get("calibration") for name, info in metrics.items()}
        texts = {(g["item_id"], g["arm"]): g["text"] for g in generations or []}
        agreements = agreement_from_scores(labels["rows"], scores, calibration, texts)
        if agreements:
            lines += ["", f"### Agreement with human labels (`{labels.get('path')}`)", "", *agreement_markdown(agreements)]
    return [*lines, ""]


def judge_facts(manifest: Manifest) -> list[tuple[str, str]]:
    """Run-fact rows: the judge's identity (no key), decoding, and the sha256 of every judge prompt."""
    judge = manifest.extra.get("judge")
    if not judge:
        return []
    p = judge.get("params", {})
    who = f"{judge.get('backend')} `{judge.get('model')}`"
    if judge.get("endpoint"):
        who += f" at {judge['endpoint']}"
    if judge.get("fingerprint"):
        who += f" (`{judge['fingerprint'][:12]}`)"
    if judge.get("reused_run_base"):
        who += ", the run's loaded base (no second load)"
    decoding = f"temperature {p.get('temperature', 0)}, top_p {p.get('top_p', 1)}, max_new_tokens {p.get('max_new_tokens')}, seed {p.get('seed')}"
    if "response_format" in p:
        decoding += f", response_format {p['response_format']}"
    prompts = "; ".join(f"{name}: " + ", ".join(f"{t} `{h[:12]}`" for t, h in info.get("templates", {}).items())
                        for name, info in judge.get("metrics", {}).items())
    return [("Judge", who), ("Judge decoding", decoding), ("Judge prompts", prompts or "–")]
