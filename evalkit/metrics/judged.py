"""Judged metrics: faithfulness, a rubric judge, and pairwise preference.

Each is a factory registered with ``@metric`` like any other; declaring ``judge`` makes it
model-backed. Its scorer scores a batch at once (``score_batch``), so the judge sees many
prompts per call. What a judge could not give is a recorded error, never a score:

    no text to judge (no JSON, no such field, no claims)   error, says what is missing
    a reply that failed validation twice                   error "judge reply did not parse ..."
    a request that failed after its retries                error "judge call failed ..."

``samples: k`` asks each verdict k times: the first at temperature 0 (the score), the
others at the judge's ``sample_temperature`` with seeds seed+1.. (a judge at temperature 0
repeats itself on most backends, so greedy repeats would measure nothing). The detail of
each score counts the verdicts whose samples disagree: the judge's own disagreement.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Literal

from evalkit.judges.judge import Judge, JudgeReply, JudgeRequest
from evalkit.judges.prompts import (
    BUILTIN_RUBRICS,
    CLAIM_SPLIT,
    CLAIM_SPLIT_EXAMPLE,
    CLAIM_SPLIT_SCHEMA,
    CLAIM_VERDICT,
    CLAIM_VERDICT_EXAMPLE,
    CLAIM_VERDICT_SCHEMA,
    PAIRWISE,
    PAIRWISE_CRITERION,
    PAIRWISE_EXAMPLE,
    PAIRWISE_SCHEMA,
    RUBRIC,
    rubric_example,
    rubric_schema,
    task_text,
)
from evalkit.metrics.base import ScoreRequest, metric
from evalkit.metrics.extract import NoJSON, extract_json
from evalkit.records import Item, Score

__all__ = ["faithfulness", "judge_rubric", "pairwise", "split_claims"]

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|;\s*|\n+")


class _NoText(ValueError):
    """The answer has nothing to judge; the message says why."""


def split_claims(text: str) -> list[str]:
    """Sentences and semicolon-separated clauses, each one claim (``split: sentences``)."""
    parts = (p.strip(" \t-•*") for p in _SENTENCE.split(text))
    return [p for p in parts if re.search(r"[A-Za-z0-9]", p)]


def answer_text(output: str, field: str | None) -> str:
    """The text to judge: the whole answer, or one field of its JSON (dotted for nested objects).

    Raises:
        _NoText: no JSON, no such field, or a value that is not text.
    """
    if field is None:
        return output.strip()
    try:
        value: Any = extract_json(output)
    except NoJSON as exc:
        raise _NoText(f"no {field} to judge: {exc}") from None
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            raise _NoText(f"no {field} to judge: the answer's JSON has no field {field!r}")
        value = value[part]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _NoText(f"no {field} to judge: its value is a {type(value).__name__}, not text")
    return value.strip()


def _row_text(item: Item, name: str) -> str:
    value = item.row.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _NoText(f"the row has no text in {name!r}" if value is None else f"the row's {name!r} is not non-empty text")
    return value


def _check_row_field(item: Item, name: str, param: str) -> str | None:
    if name not in item.row:
        return f"params.{param}: the row has no field {name!r} (fields: {', '.join(sorted(item.row))})"
    value = item.row[name]
    if not isinstance(value, str) or not value.strip():
        return f"params.{param}: the row's {name!r} is {value!r}, not non-empty text"
    return None


def _check_samples(samples: int) -> None:
    if samples < 1 or samples > 16:
        raise ValueError(f"samples={samples}: must be from 1 to 16")


def _disagreement(replies: Sequence[JudgeReply], key: str) -> tuple[int, int]:
    """(1 if the ok samples disagree on ``key`` else 0, 1 if there were two or more ok samples else 0)."""
    values = [json.dumps(r.value.get(key)) for r in replies if r.ok and r.value is not None]
    if len(values) < 2:
        return 0, 0
    return int(len(set(values)) > 1), 1


def _detail(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def _first_problem(replies: Sequence[JudgeReply]) -> JudgeReply | None:
    """The first greedy verdict that is not ok (call errors first: they are the server's, not the judge's)."""
    return next((r for r in replies if r.kind == "call_error"), None) or next((r for r in replies if not r.ok), None)


# --------------------------------------------------------------------------- faithfulness


class _Claims(list):  # type: ignore[type-arg]
    """The claims judged for one answer, and how many beyond ``max_claims`` were left out."""

    def __init__(self, claims: list[str], dropped: int = 0) -> None:
        super().__init__(claims)
        self.dropped = dropped


class _Faithfulness:
    binary = False

    def __init__(self, judge: Judge, source: str, field: str | None, split: str, samples: int, max_claims: int) -> None:
        self.judge, self.source, self.field, self.split = judge, source, field, split
        self.samples, self.max_claims = samples, max_claims
        used = [CLAIM_VERDICT] + ([CLAIM_SPLIT] if split == "judge" else [])
        self.templates = {t.name: t.sha256 for t in used}
        self.calibration = "pass_fail"  # human label 1 = every claim supported

    def check_item(self, item: Item) -> str | None:
        return _check_row_field(item, self.source, "source")

    def __call__(self, output: str, item: Item) -> Score:
        return self.score_batch([ScoreRequest(output=output, item=item, arm="")])[0]

    def score_batch(self, requests: Sequence[ScoreRequest]) -> list[Score]:
        results: list[Score | None] = [None] * len(requests)
        texts: dict[int, tuple[str, str]] = {}  # index → (answer text, source)
        for k, r in enumerate(requests):
            try:
                texts[k] = (answer_text(r.output, self.field), _row_text(r.item, self.source))
            except _NoText as exc:
                results[k] = Score.failed(str(exc))
        claims = self._claims(texts, results)
        asked = [(k, c) for k in sorted(claims) for c in claims[k]]
        replies = self.judge.ask(
            [JudgeRequest(CLAIM_VERDICT.messages(source=texts[k][1], claim=c), CLAIM_VERDICT_SCHEMA, "claim_verdict", CLAIM_VERDICT_EXAMPLE)
             for k, c in asked],
            samples=self.samples)
        by_item: dict[int, list[tuple[str, list[JudgeReply]]]] = {}
        for (k, c), reps in zip(asked, replies):
            by_item.setdefault(k, []).append((c, reps))
        for k, verdicts in by_item.items():
            results[k] = self._score(verdicts, dropped=claims[k].dropped)
        return [r if r is not None else Score.failed("no claims to judge") for r in results]

    def _claims(self, texts: dict[int, tuple[str, str]], results: list[Score | None]) -> dict[int, _Claims]:
        claims: dict[int, list[str]] = {}
        if self.split == "judge":
            order = sorted(texts)
            asked = self.judge.ask([JudgeRequest(CLAIM_SPLIT.messages(text=texts[k][0]), CLAIM_SPLIT_SCHEMA, "claim_split", CLAIM_SPLIT_EXAMPLE)
                                    for k in order if texts[k][0]])
            for k, reps in zip([k for k in order if texts[k][0]], asked):
                if not reps[0].ok:
                    results[k] = Score.failed(f"{reps[0].error} (splitting the answer into claims)")
                    continue
                claims[k] = [c.strip() for c in reps[0].value["claims"] if c.strip()]  # type: ignore[index]
        else:
            claims = {k: split_claims(text) for k, (text, _) in texts.items()}
        kept: dict[int, _Claims] = {}
        for k in texts:
            if results[k] is not None:
                continue
            found = claims.get(k, [])
            if not found:
                what = f"the answer's {self.field}" if self.field else "the answer"
                results[k] = Score.failed(f"no claims: {what} is empty or states nothing to check")
                continue
            kept[k] = _Claims(found[: self.max_claims], dropped=max(0, len(found) - self.max_claims))
        return kept

    def _score(self, verdicts: list[tuple[str, list[JudgeReply]]], dropped: int = 0) -> Score:
        rows, disagree, judged = [], 0, 0
        for claim, reps in verdicts:
            greedy = reps[0]
            row: dict[str, Any] = {"claim": claim}
            if greedy.ok and greedy.value is not None:
                row.update(supported=greedy.value["supported"], reason=greedy.value.get("reason", ""))
            else:
                row["error"] = greedy.error
            d, j = _disagreement(reps, "supported")
            disagree, judged = disagree + d, judged + j
            rows.append(row)
        doc: dict[str, Any] = {"claims": rows}
        if dropped:
            doc["claims_not_judged"] = dropped  # beyond max_claims
        if self.samples > 1:
            doc.update(samples=self.samples, disagreements=disagree, judged_twice=judged)
        problem = _first_problem([reps[0] for _, reps in verdicts])
        if problem is not None:
            n = next(i for i, (_, reps) in enumerate(verdicts, 1) if reps[0] is problem)
            return Score.failed(f"{problem.error} (claim {n} of {len(verdicts)})", _detail(doc))
        supported = sum(1 for r in rows if r.get("supported") is True)
        doc.update(supported=supported, total=len(rows))
        return Score(supported / len(rows), detail=_detail(doc))


@metric("faithfulness")
def faithfulness(source: str, judge: Judge, field: str | None = None, split: Literal["sentences", "judge"] = "sentences",
                 samples: int = 1, max_claims: int = 16) -> _Faithfulness:
    """Share of the answer's claims (or one JSON field's) that a judge finds supported by a source field of the row."""
    if split not in ("sentences", "judge"):
        raise ValueError(f"split={split!r}: use sentences (split at sentence ends and semicolons) or judge (the judge lists the claims)")
    _check_samples(samples)
    if max_claims < 1:
        raise ValueError(f"max_claims={max_claims}: must be at least 1")
    return _Faithfulness(judge, source, field, split, samples, max_claims)


# --------------------------------------------------------------------------- rubric


class _Rubric:
    def __init__(self, judge: Judge, rubric: str, scale: tuple[int, int], pass_at: int | None, reference: str | None,
                 field: str | None, samples: int, anchors: dict[int, str]) -> None:
        self.judge, self.rubric, self.scale, self.pass_at = judge, rubric, scale, pass_at
        self.reference, self.field, self.samples, self.anchors = reference, field, samples, anchors
        self.binary = pass_at is not None
        self.schema = rubric_schema(*scale)
        self.templates = {RUBRIC.name: RUBRIC.sha256, "rubric_text": _sha(rubric)}
        self.calibration = "pass_fail" if self.binary else "ordinal"

    def check_item(self, item: Item) -> str | None:
        return _check_row_field(item, self.reference, "reference") if self.reference else None

    def __call__(self, output: str, item: Item) -> Score:
        return self.score_batch([ScoreRequest(output=output, item=item, arm="")])[0]

    def _messages(self, r: ScoreRequest, answer: str) -> tuple[dict[str, str], ...]:
        reference = f'\nReference answer:\n"""\n{_row_text(r.item, self.reference)}\n"""\n' if self.reference else ""
        anchors = "".join(f" {k} = {v}." for k, v in sorted(self.anchors.items()))
        low, high = self.scale
        return RUBRIC.messages(task=task_text(r.messages) or "(not shown)", reference=reference, answer=answer,
                               rubric=self.rubric, low=low, high=high, anchors=anchors, example_score=(low + high) // 2)

    def score_batch(self, requests: Sequence[ScoreRequest]) -> list[Score]:
        results: list[Score | None] = [None] * len(requests)
        asked: list[tuple[int, JudgeRequest]] = []
        for k, r in enumerate(requests):
            try:
                answer = answer_text(r.output, self.field)
                asked.append((k, JudgeRequest(self._messages(r, answer or "(empty answer)"), self.schema, "rubric_score",
                                              rubric_example(*self.scale))))
            except _NoText as exc:
                results[k] = Score.failed(str(exc))
        replies = self.judge.ask([q for _, q in asked], samples=self.samples)
        for (k, _), reps in zip(asked, replies):
            greedy = reps[0]
            doc: dict[str, Any] = {}
            if self.samples > 1:
                d, j = _disagreement(reps, "score")
                doc.update(samples=self.samples, disagreements=d, judged_twice=j,
                           sample_scores=[r.value["score"] if r.ok and r.value else None for r in reps])
            if not greedy.ok or greedy.value is None:
                results[k] = Score.failed(greedy.error or "no verdict", _detail(doc) if doc else "")
                continue
            score = int(greedy.value["score"])
            doc.update(score=score, reason=greedy.value.get("reason", ""))
            value = float(score >= self.pass_at) if self.pass_at is not None else float(score)
            results[k] = Score(value, detail=_detail(doc))
        return [r if r is not None else Score.failed("not judged") for r in results]


def _sha(text: str) -> str:
    from evalkit._util import sha256_text

    return sha256_text(text)


@metric("judge")
def judge_rubric(judge: Judge, rubric: str | None = None, builtin: Literal["correctness", "helpfulness"] | None = None,
                 scale: list[int] | None = None, pass_at: int | None = None, reference: str | None = None,
                 field: str | None = None, samples: int = 1, anchors: dict[int, str] | None = None) -> _Rubric:
    """A judge grades each answer with a rubric on a stated scale (built-ins: correctness against a reference, helpfulness)."""
    if rubric is not None and builtin is not None:
        raise ValueError("give rubric (your own text) or builtin (correctness, helpfulness), not both")
    if rubric is None and builtin is None:
        raise ValueError("a judge metric needs a rubric: params.rubric with params.scale, or params.builtin: correctness | helpfulness")
    if builtin is not None:
        if builtin not in BUILTIN_RUBRICS:
            raise ValueError(f"builtin={builtin!r}: built-in rubrics are {', '.join(BUILTIN_RUBRICS)}")
        spec = BUILTIN_RUBRICS[builtin]
        rubric, scale = spec["rubric"], scale or spec["scale"]
        if spec["needs_reference"] and reference is None:
            raise ValueError(f"builtin {builtin} compares with a reference answer: set params.reference to the row field holding it")
    if scale is None:
        raise ValueError("the rubric has no scale: add params.scale, e.g. [1, 5] (lowest, highest whole-number score)")
    if len(scale) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) for s in scale) or not scale[0] < scale[1]:
        raise ValueError(f"scale={scale!r}: give [lowest, highest] whole numbers, lowest < highest, e.g. [1, 5]")
    if scale[1] - scale[0] > 100:
        raise ValueError(f"scale={scale!r}: at most 101 points")
    if pass_at is not None and not scale[0] < pass_at <= scale[1]:
        raise ValueError(f"pass_at={pass_at}: must be above {scale[0]} and at most {scale[1]} (a score >= pass_at passes)")
    _check_samples(samples)
    assert rubric is not None
    if not rubric.strip():
        raise ValueError("rubric is empty: say what the judge should look for")
    return _Rubric(judge, rubric.strip(), (scale[0], scale[1]), pass_at, reference, field, samples, dict(anchors or {}))


# --------------------------------------------------------------------------- pairwise

_PREFERENCE = {"A": 0.0, "B": 1.0, "tie": 0.5}
"""Order 1 shows (A = reference arm, B = this arm): the value is this arm's preference."""


class _Pairwise:
    binary = False

    def __init__(self, judge: Judge, criterion: str, field: str | None, samples: int) -> None:
        self.judge, self.criterion, self.field, self.samples = judge, criterion, field, samples
        self.templates = {PAIRWISE.name: PAIRWISE.sha256, "criterion": _sha(criterion)}
        self.calibration = None

    def __call__(self, output: str, item: Item) -> Score:
        return Score.failed("pairwise compares two arms' answers on an item; it scores inside a run, not one answer alone")

    def score_batch(self, requests: Sequence[ScoreRequest]) -> list[Score]:
        results: list[Score | None] = [None] * len(requests)
        asked: list[tuple[int, JudgeRequest, JudgeRequest]] = []
        for k, r in enumerate(requests):
            if r.is_reference:
                results[k] = Score(0.5, detail=_detail({"reference_arm": True, "note": "the reference against itself is a tie"}))
                continue
            if r.reference_output is None:
                results[k] = Score.failed("no reference answer to compare with: the reference arm has no output for this item")
                continue
            try:
                mine, theirs = answer_text(r.output, self.field), answer_text(r.reference_output, self.field)
            except _NoText as exc:
                results[k] = Score.failed(str(exc))
                continue
            if mine == theirs:  # nothing to judge: identical answers are a tie whatever a judge says
                results[k] = Score(0.5, detail=_detail({"identical": True}))
                continue
            task = task_text(r.messages) or "(not shown)"
            first = PAIRWISE.messages(task=task, a=theirs or "(empty answer)", b=mine or "(empty answer)", criterion=self.criterion)
            swapped = PAIRWISE.messages(task=task, a=mine or "(empty answer)", b=theirs or "(empty answer)", criterion=self.criterion)
            asked.append((k, JudgeRequest(first, PAIRWISE_SCHEMA, "pairwise_verdict", PAIRWISE_EXAMPLE),
                           JudgeRequest(swapped, PAIRWISE_SCHEMA, "pairwise_verdict", PAIRWISE_EXAMPLE)))
        flat = [q for _, a, b in asked for q in (a, b)]
        replies = self.judge.ask(flat, samples=self.samples)
        for n, (k, _, _) in enumerate(asked):
            results[k] = self._score(replies[2 * n], replies[2 * n + 1])
        return [r if r is not None else Score.failed("not judged") for r in results]

    def _score(self, order_1: list[JudgeReply], order_2: list[JudgeReply]) -> Score:
        doc: dict[str, Any] = {}
        if self.samples > 1:
            d1, j1 = _disagreement(order_1, "winner")
            d2, j2 = _disagreement(order_2, "winner")
            doc.update(samples=self.samples, disagreements=d1 + d2, judged_twice=j1 + j2)
        problem = _first_problem([order_1[0], order_2[0]])
        if problem is not None:
            return Score.failed(problem.error or "no verdict", _detail(doc) if doc else "")
        v1 = order_1[0].value or {}
        v2 = order_2[0].value or {}
        pref_1 = _PREFERENCE[v1["winner"]]
        pref_2 = 1.0 - _PREFERENCE[v2["winner"]]  # order 2 shows this arm as A
        doc.update(order_1={"winner": v1["winner"], "reason": v1.get("reason", "")},
                   order_2={"winner": v2["winner"], "reason": v2.get("reason", "")},
                   inconsistent=pref_1 != pref_2)
        return Score((pref_1 + pref_2) / 2, detail=_detail(doc))


@metric("pairwise")
def pairwise(judge: Judge, criterion: str = PAIRWISE_CRITERION, field: str | None = None, samples: int = 1) -> _Pairwise:
    """A judge prefers this arm's answer or the reference arm's, shown in both orders: 1 win, 0.5 tie, 0 loss (base = 0.5)."""
    _check_samples(samples)
    if not criterion.strip():
        raise ValueError("criterion is empty: say what makes an answer better")
    return _Pairwise(judge, criterion.strip(), field, samples)
