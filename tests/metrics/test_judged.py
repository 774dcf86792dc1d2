"""Judged metrics with a scripted judge: faithfulness claims and errors, rubric scales, pairwise win rates and order effects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.errors import MetricError
from evalkit.judges import PARSE_FAILURE, Judge, JudgeConfig
from evalkit.metrics import ScoreRequest, build_metric
from evalkit.metrics.judged import split_claims
from evalkit.models.fake import FakeBackend
from evalkit.records import Item
from evalkit.suite import MetricSpec

REPORT = "The primary database is down since 09:14. Checkout fails for every customer."
ITEM = Item("i1", {"report": REPORT, "gold": "database outage"})


def judge_with(respond) -> tuple[Judge, FakeBackend]:
    backend = FakeBackend(respond, model="scripted-judge")
    judge = Judge(JudgeConfig(), backend=backend)
    judge.bind()
    return judge, backend


def build(type_: str, handle: Judge | None, **params):
    return build_metric(MetricSpec("m", type_, params), Path("."), handle)


def user(request) -> str:
    return request.messages[-1]["content"]


def claim_judge(request, arm):
    claim = user(request).split("Claim:", 1)[1].split("\n", 1)[0]
    return json.dumps({"supported": "moon" not in claim, "reason": "checked against the source"})


# ------------------------------------------------------------ faithfulness


def test_claims_are_sentences_and_semicolon_clauses():
    assert split_claims("DB down since 09:14; checkout fails. Engineers paged!\nETA 1h") == [
        "DB down since 09:14", "checkout fails.", "Engineers paged!", "ETA 1h"]


def test_faithfulness_is_the_share_of_supported_claims_with_claims_and_verdicts_in_the_detail():
    judge, _ = judge_with(claim_judge)
    m = build("faithfulness", judge, source="report", field="summary")
    (score,) = m.score_many([ScoreRequest(json.dumps({"summary": "The database is down. The moon is made of cheese."}), ITEM, "tuned")])
    assert score.value == 0.5
    detail = json.loads(score.detail)
    assert [(c["claim"], c["supported"]) for c in detail["claims"]] == [("The database is down.", True), ("The moon is made of cheese.", False)]
    assert (detail["supported"], detail["total"]) == (1, 2)


def test_an_answer_with_no_claims_is_a_recorded_error_not_one_or_zero():
    judge, backend = judge_with(claim_judge)
    m = build("faithfulness", judge, source="report", field="summary")
    (score,) = m.score_many([ScoreRequest(json.dumps({"summary": "  "}), ITEM, "tuned")])
    assert score.value is None and score.error.startswith("no claims")
    assert backend.generated == 0


def test_an_answer_without_the_field_is_a_recorded_error_naming_it():
    judge, _ = judge_with(claim_judge)
    m = build("faithfulness", judge, source="report", field="summary")
    no_json, no_field = m.score_many([ScoreRequest("I cannot help with that.", ITEM, "base"),
                                      ScoreRequest('{"severity": "SEV1"}', ITEM, "base")])
    assert no_json.value is None and "no summary to judge" in no_json.error
    assert no_field.value is None and "no field 'summary'" in no_field.error


def test_one_unparseable_claim_verdict_makes_the_item_a_parse_failure():
    def respond(request, arm):
        return "hmm" if "cheese" in json.dumps(request.messages).lower() else claim_judge(request, arm)

    judge, _ = judge_with(respond)
    m = build("faithfulness", judge, source="report", field="summary")
    (score,) = m.score_many([ScoreRequest(json.dumps({"summary": "The database is down. Cheese."}), ITEM, "tuned")])
    assert score.value is None and score.error.startswith(PARSE_FAILURE) and "claim 2 of 2" in score.error


def test_the_judge_can_split_the_answer_into_claims():
    def respond(request, arm):
        if "List every factual claim" in user(request):
            return json.dumps({"claims": ["The database is down", "The moon is involved"]})
        return claim_judge(request, arm)

    judge, _ = judge_with(respond)
    m = build("faithfulness", judge, source="report", split="judge")
    (score,) = m.score_many([ScoreRequest("The DB and the moon both failed.", ITEM, "tuned")])
    assert score.value == 0.5


def test_samples_report_the_judges_own_disagreement():
    def respond(request, arm):  # greedy says supported; the sampled repeats flip a coin that lands on "not supported"
        return json.dumps({"supported": True, "reason": "r"}) if "Claim:" in user(request) else "?"

    class Flaky(FakeBackend):
        def generate(self, requests, arm, decoding):
            if decoding.get("do_sample"):
                return super().generate(requests, arm, decoding) if decoding["seed"] % 2 else [
                    type(o)(text='{"supported": false, "reason": "r"}', prompt_tokens=1, completion_tokens=1)
                    for o in super().generate(requests, arm, decoding)]
            return super().generate(requests, arm, decoding)

    backend = Flaky(respond, model="j")
    judge = Judge(JudgeConfig(), backend=backend)
    judge.bind()
    m = build("faithfulness", judge, source="report", samples=3)
    (score,) = m.score_many([ScoreRequest("The database is down.", ITEM, "tuned")])
    detail = json.loads(score.detail)
    assert score.value == 1.0, "the score is the greedy verdict"
    assert (detail["samples"], detail["disagreements"], detail["judged_twice"]) == (3, 1, 1)


def test_faithfulness_checks_its_source_field_without_a_model():
    judge, _ = judge_with(claim_judge)
    m = build("faithfulness", judge, source="transcript")
    assert "no field 'transcript'" in m.check_item(ITEM)
    assert m.needs_model


# ------------------------------------------------------------ rubric judge


def test_a_rubric_without_a_scale_is_a_config_error():
    with pytest.raises(MetricError, match="no scale"):
        build("judge", None, rubric="Is it polite?")


@pytest.mark.parametrize("params, message", [
    ({}, "needs a rubric"),
    ({"rubric": "x", "builtin": "helpfulness"}, "not both"),
    ({"rubric": "x", "scale": [5, 1]}, "lowest < highest"),
    ({"builtin": "correctness"}, "params.reference"),
    ({"rubric": "x", "scale": [1, 5], "pass_at": 9}, "pass_at=9"),
])
def test_bad_rubric_settings_are_config_errors(params, message):
    with pytest.raises(MetricError, match=message):
        build("judge", None, **params)


def test_a_rubric_score_is_validated_against_the_stated_scale():
    replies = iter(['{"reason": "great", "score": 9}', '{"reason": "great", "score": 5}'])
    judge, _ = judge_with(lambda request, arm: next(replies))
    m = build("judge", judge, rubric="Is it complete?", scale=[1, 5])
    (score,) = m.score_many([ScoreRequest("answer", ITEM, "tuned", messages=({"role": "user", "content": "the task"},))])
    assert score.value == 5.0 and json.loads(score.detail)["reason"] == "great"
    assert judge.stats["m"].repaired == 1, "a score of 9 on a 1-5 scale is not accepted"


def test_pass_at_makes_the_rubric_a_pass_fail_metric():
    judge, _ = judge_with(lambda request, arm: '{"reason": "ok", "score": 3}')
    m = build("judge", judge, rubric="Is it complete?", scale=[1, 5], pass_at=4)
    assert m.binary
    assert m.score_many([ScoreRequest("answer", ITEM, "tuned")])[0].value == 0.0


def test_correctness_shows_the_judge_the_reference_answer_and_the_task():
    seen = []

    def respond(request, arm):
        seen.append(user(request))
        return '{"reason": "same", "score": 5}'

    judge, _ = judge_with(respond)
    m = build("judge", judge, builtin="correctness", reference="gold")
    m.score_many([ScoreRequest("db outage", ITEM, "tuned", messages=({"role": "user", "content": "Summarise the report"},))])
    assert "database outage" in seen[0] and "Summarise the report" in seen[0] and "db outage" in seen[0]


# ------------------------------------------------------------ pairwise


def pairwise_requests(pairs: list[tuple[str, str]]) -> list[ScoreRequest]:
    """(base answer, tuned answer) per item → requests for both arms, as the runner builds them."""
    out = []
    for k, (base, tuned) in enumerate(pairs):
        item = Item(f"p{k}", {"report": "r"})
        out.append(ScoreRequest(base, item, "base", is_reference=True))
        out.append(ScoreRequest(tuned, item, "tuned", reference_output=base))
    return out


def test_pairwise_win_rate_ties_and_order_inconsistency_on_a_hand_built_case():
    # A judge that prefers the answer containing "good", else says "A" (a position bias).
    def respond(request, arm):
        text = user(request)
        a = text.split("Answer A:", 1)[1].split("Answer B:", 1)[0]
        b = text.split("Answer B:", 1)[1].split("Criterion:", 1)[0]
        winner = "A" if "good" in a and "good" not in b else "B" if "good" in b and "good" not in a else "A"
        return json.dumps({"reason": "r", "winner": winner})

    judge, backend = judge_with(respond)
    m = build("pairwise", judge)
    cases = [("bad", "good"),          # tuned wins in both orders → 1
             ("good", "bad"),          # tuned loses in both orders → 0
             ("meh", "also meh"),      # position bias: A wins each time → inconsistent → 0.5
             ("good one", "good two"),  # position bias again → 0.5, inconsistent
             ("same", "same")]         # identical: a tie, not judged
    scores = m.score_many(pairwise_requests(cases))
    base, tuned = scores[0::2], scores[1::2]
    assert [s.value for s in base] == [0.5] * 5, "the reference arm against itself is a tie"
    assert [s.value for s in tuned] == [1.0, 0.0, 0.5, 0.5, 0.5]
    assert [json.loads(s.detail).get("inconsistent") for s in tuned] == [False, False, True, True, None]
    assert backend.generated == 4 * 2, "identical answers are not sent to the judge"
    win_rate = sum(s.value for s in tuned) / len(tuned)
    assert win_rate == pytest.approx(0.5)


def test_pairwise_shows_each_answer_in_both_places():
    seen = []

    def respond(request, arm):
        seen.append(user(request))
        return '{"reason": "r", "winner": "tie"}'

    judge, _ = judge_with(respond)
    build("pairwise", judge).score_many(pairwise_requests([("first answer", "second answer")]))
    a_first = [t.split("Answer A:", 1)[1].split("Answer B:", 1)[0] for t in seen]
    assert any("first answer" in a for a in a_first) and any("second answer" in a for a in a_first)


def test_pairwise_without_the_reference_answer_is_a_recorded_error():
    judge, _ = judge_with(lambda r, a: '{"reason": "r", "winner": "A"}')
    (score,) = build("pairwise", judge).score_many([ScoreRequest("mine", ITEM, "tuned", reference_output=None)])
    assert score.value is None and "reference arm has no output" in score.error


# ------------------------------------------------------------ sampling parameters


def test_sample_is_accepted_by_judged_metrics_only():
    assert build("faithfulness", None, source="report", sample=10, sample_seed=3).sample == 10
    with pytest.raises(MetricError, match="only model-backed"):
        build("json_valid", None, sample=10)
    with pytest.raises(MetricError, match="at least 1"):
        build("faithfulness", None, source="report", sample=0)


def test_the_judge_cannot_be_set_per_metric():
    with pytest.raises(MetricError, match="judge: section"):
        build("faithfulness", None, source="report", judge="openai:gpt-4o")
