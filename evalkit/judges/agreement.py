"""How far a judge agrees with people: accuracy, Cohen's κ (quadratic-weighted on ordinal scales), confusion.

Human labels are a CSV or JSONL file with one label per row:

    item_id,metric,label[,arm][,output]
    inc-e0001,faithfulness,1,base
    inc-e0002,quality,4,triage

``label`` is pass/fail (1/0, true/false, pass/fail, yes/no) for pass/fail metrics and for
``faithfulness`` (1 = every claim is supported), or a whole number on the scale of a rubric
metric. ``arm`` defaults to ``base``. ``output`` is the answer the person labelled; without
it, the label is for the run's answer of that arm.

The statistics come from scikit-learn (``accuracy_score``, ``cohen_kappa_score`` with
``weights="quadratic"`` for ordinal scales, ``confusion_matrix``). κ is undefined when
one rater uses a single category throughout; it is then reported as "–", not as 0 or 1.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit._util import json_lines, sha256_bytes
from evalkit.errors import JudgeError

__all__ = ["Agreement", "agreement_from_scores", "agreement_markdown", "compute_agreement", "human_category",
           "judge_category", "labels_manifest", "read_labels"]

_TRUE = {"1", "true", "pass", "yes", "supported"}
_FALSE = {"0", "false", "fail", "no", "unsupported"}


@dataclass(frozen=True)
class Agreement:
    """A judge's verdicts on one metric against human labels."""

    metric: str
    kind: str
    """``pass_fail`` or ``ordinal``."""
    n: int
    """Labelled answers the judge scored."""
    accuracy: float
    """Share of exact agreement."""
    kappa: float
    """Cohen's κ (NaN when undefined: a rater used one category only, or n < 2)."""
    weighted: bool
    """True for quadratic-weighted κ (ordinal scales)."""
    categories: list[int]
    confusion: list[list[int]]
    """Rows: the human label; columns: the judge's, both in ``categories`` order."""
    unscored: int = 0
    """Labelled answers the judge could not score (parse failures, call errors): left out of n."""
    missing: int = 0
    """Labels with no matching score (item or arm not in the run, outside the judged sample, another answer)."""


def read_labels(path: Path, metrics: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The label rows of a CSV or JSONL file, checked.

    Raises:
        JudgeError: unreadable file, a row without item_id, metric or label, a metric the suite does not
            have, or the same (item, metric, arm) labelled twice; naming the file and line.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise JudgeError(f"{path}: cannot read the labels ({exc}); give a UTF-8 CSV or JSONL file") from None
    rows: list[tuple[int, dict[str, Any]]] = []
    if path.suffix.lower() in (".jsonl", ".json"):
        for lineno, doc in json_lines(text, path, JudgeError, "one label object per line"):
            if not isinstance(doc, dict):
                raise JudgeError(f"{path}:{lineno}: must be an object with item_id, metric and label")
            rows.append((lineno, doc))
    else:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        for row in reader:
            rows.append((reader.line_num, {k: v for k, v in row.items() if k is not None and v not in (None, "")}))
    known = set(metrics) if metrics is not None else None
    out: list[dict[str, Any]] = []
    seen: dict[tuple[str, str, str], int] = {}
    for lineno, doc in rows:
        for key in ("item_id", "metric", "label"):
            if doc.get(key) in (None, ""):
                raise JudgeError(f"{path}:{lineno}: no {key}; each label needs item_id, metric and label")
        label = {"item_id": str(doc["item_id"]), "metric": str(doc["metric"]), "label": doc["label"],
                 "arm": str(doc.get("arm") or "base")}
        if doc.get("output") is not None:
            label["output"] = str(doc["output"])
        if known is not None and label["metric"] not in known:
            raise JudgeError(f"{path}:{lineno}: metric {label['metric']!r} is not a metric of this suite ({', '.join(sorted(known))})")
        key = (label["item_id"], label["metric"], label["arm"])
        if key in seen:
            raise JudgeError(f"{path}:{lineno}: item {key[0]!r}, metric {key[1]!r}, arm {key[2]!r} is labelled twice (line {seen[key]})")
        seen[key] = lineno
        out.append(label)
    if not out:
        raise JudgeError(f"{path}: no labels; give rows of item_id, metric, label")
    return out


def labels_manifest(path: Path | None, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the manifest keeps of the labels: where they came from, their hash, and the rows themselves."""
    return {"path": str(path) if path else None, "sha256": sha256_bytes(path.read_bytes()) if path else None, "rows": rows}


def human_category(raw: Any, kind: str, scale: Sequence[int] | None = None) -> int:
    """A human label as a category: 1/0 for pass/fail, the whole number for an ordinal scale.

    Raises:
        ValueError: a label that does not fit the metric (the message says what fits).
    """
    text = str(raw).strip().casefold()
    if kind == "pass_fail":
        if text in _TRUE or raw is True:
            return 1
        if text in _FALSE or raw is False:
            return 0
        raise ValueError(f"label {raw!r} is not pass/fail (use 1/0, true/false, pass/fail or yes/no)")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"label {raw!r} is not a number on the scale") from None
    if not value.is_integer() or (scale and not scale[0] <= value <= scale[1]):
        where = f" from {scale[0]} to {scale[1]}" if scale else ""
        raise ValueError(f"label {raw!r} is not a whole number{where}")
    return int(value)


def judge_category(value: float, kind: str) -> int:
    """A judged value as a category: pass when it is 1 (for faithfulness: every claim supported), or the scale point."""
    return int(value >= 1.0) if kind == "pass_fail" else int(round(value))


def compute_agreement(metric: str, kind: str, pairs: Sequence[tuple[int, int]], scale: Sequence[int] | None = None,
                      *, unscored: int = 0, missing: int = 0) -> Agreement:
    """Accuracy, Cohen's κ and the confusion table of (human, judge) category pairs (scikit-learn)."""
    from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix

    if kind == "ordinal" and scale:
        categories = list(range(scale[0], scale[1] + 1))
    else:
        categories = [0, 1] if kind == "pass_fail" else sorted({c for p in pairs for c in p})
    weighted = kind == "ordinal"
    if not pairs:
        return Agreement(metric, kind, 0, math.nan, math.nan, weighted, categories,
                         [[0] * len(categories) for _ in categories], unscored, missing)
    human, judged = [h for h, _ in pairs], [j for _, j in pairs]
    with warnings.catch_warnings():  # one category throughout: κ is 0/0, which scikit-learn warns about and returns as NaN
        warnings.simplefilter("ignore")
        kappa = float(cohen_kappa_score(human, judged, labels=categories, weights="quadratic" if weighted else None))
    confusion = confusion_matrix(human, judged, labels=categories).tolist()
    return Agreement(metric, kind, len(pairs), float(accuracy_score(human, judged)), kappa, weighted, categories,
                     confusion, unscored, missing)


def agreement_from_scores(labels: Sequence[dict[str, Any]], scores: Sequence[Any], calibration: dict[str, dict[str, Any] | None],
                          texts: dict[tuple[str, str], str] | None = None) -> list[Agreement]:
    """Agreement of a run's judged scores with the labels that match them, per metric.

    Args:
        scores: the run's ``ScoreRow``s.
        calibration: metric → ``{"kind": ..., "scale": ...}`` (None: the metric cannot be compared).
        texts: (item_id, arm) → the run's answer; a label with an ``output`` counts only where it equals it.
    """
    by_key = {(r.item_id, r.arm, r.metric): r for r in scores}
    out = []
    for metric in dict.fromkeys(label["metric"] for label in labels):
        spec = calibration.get(metric)
        if not spec:
            continue
        pairs, unscored, missing = [], 0, 0
        for label in (x for x in labels if x["metric"] == metric):
            row = by_key.get((label["item_id"], label["arm"], metric))
            if row is None or ("output" in label and texts is not None
                               and texts.get((label["item_id"], label["arm"])) != label["output"]):
                missing += 1
            elif row.value is None:
                unscored += 1
            else:
                pairs.append((human_category(label["label"], spec["kind"], spec.get("scale")), judge_category(row.value, spec["kind"])))
        out.append(compute_agreement(metric, spec["kind"], pairs, spec.get("scale"), unscored=unscored, missing=missing))
    return out


def _num(v: float) -> str:
    return "–" if v is None or math.isnan(v) else f"{v:.2f}"


def agreement_markdown(agreements: Sequence[Agreement]) -> list[str]:
    """A table of agreement per metric, then each confusion table (rows: human, columns: judge)."""
    lines = ["| Metric | labelled answers | accuracy | Cohen's κ | unscored | unmatched |", "|---|---:|---:|---:|---:|---:|"]
    for a in agreements:
        kappa = _num(a.kappa) + (" (quadratic-weighted)" if a.weighted and not math.isnan(a.kappa) else "")
        lines.append(f"| {a.metric} | {a.n} | {_num(a.accuracy)} | {kappa} | {a.unscored} | {a.missing} |")
    for a in agreements:
        if not a.n:
            continue
        names = ["fail", "pass"] if a.kind == "pass_fail" else [str(c) for c in a.categories]
        lines += ["", f"**{a.metric}**: rows = human label, columns = judge", "",
                  "| human \\ judge | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        lines += [f"| {name} | " + " | ".join(str(c) for c in row) + " |" for name, row in zip(names, a.confusion)]
    return lines
