"""An OpenAI-compatible judge against a real scripted HTTP server on 127.0.0.1: replies, repairs, faults, what is sent."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from evalkit.cli import main
from evalkit.judges import CALL_ERROR, PARSE_FAILURE, Judge, JudgeConfig
from evalkit.judges.stage import JudgeOverrides
from evalkit.metrics import ScoreRequest
from evalkit.models.fake import FakeBackend
from evalkit.records import Item
from evalkit.runner import RunOptions, run_suite
from evalkit.suite import load_suite
from tests.scripted_server import Received, Reply, ScriptedServer, chat_reply

VERDICT = json.dumps({"supported": True, "reason": "the report says so"})
ROWS = [
    {"id": "r1", "report": "The database is down. Checkout fails for every customer."},
    {"id": "r2", "report": "A typo on the login page footer; no impact."},
]
SUITE = """\
name: judged
data: {path: data.jsonl, id_field: id}
prompt: {user: "Report: {{ report }}"}
generation: {max_new_tokens: 20}
judge: {backend: openai, model: judge-7b, endpoint: "%s", max_retries: 2, timeout: %s}
metrics:
  - {name: faithfulness, type: faithfulness, params: {source: report, field: summary}}
  - {name: preference, type: pairwise}
"""
ARMS = ("zebra-arm-7f3", "base")  # names the judge must never see (base is the reference arm's name)


def answers(request, arm: str) -> str:
    report = request.messages[-1]["content"].removeprefix("Report: ")
    if arm == "base":
        return json.dumps({"summary": report.split(".")[0] + "."})
    return json.dumps({"summary": report + " Engineers are on it."})


def judge_reply(request: Received) -> Reply:
    """A consistent judge: supported unless the claim is about engineers; prefers the longer answer."""
    user = request.body["messages"][1]["content"]
    if "Claim:" in user:
        claim = user.split("Claim:", 1)[1]
        return Reply(200, chat_reply(json.dumps({"supported": "Engineers" not in claim, "reason": "checked"})))
    a = user.split('Answer A:\n"""\n', 1)[1].split('"""', 1)[0]
    b = user.split('Answer B:\n"""\n', 1)[1].split('"""', 1)[0]
    return Reply(200, chat_reply(json.dumps({"reason": "more detail", "winner": "A" if len(a) > len(b) else "B"})))


@pytest.fixture
def server():
    with ScriptedServer(judge_reply, models=["judge-7b"]) as s:
        yield s


def make_suite(tmp_path: Path, server: ScriptedServer, timeout: float = 2.0) -> Path:
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    path = tmp_path / "judged.yaml"
    path.write_text(SUITE % (server.url, timeout))
    return path


def run(tmp_path: Path, suite: Path, **kw):
    options = RunOptions(runs_dir=tmp_path / "runs", cache_path=tmp_path / "cache.sqlite", **kw)
    return run_suite(load_suite(suite), options, backend=FakeBackend(answers, arms=[ARMS[0]]))


def scores(result) -> dict[tuple[str, str, str], tuple[str, str, str]]:
    import csv

    with (result.run_dir / "scores.csv").open() as fh:
        return {(r["item_id"], r["arm"], r["metric"]): (r["value"], r["error"], r["detail"]) for r in csv.DictReader(fh)}


def one_claim_judge(tmp_path: Path, server: ScriptedServer, **config) -> Judge:
    config.setdefault("max_retries", 2)
    config.setdefault("timeout_s", 2.0)
    judge = Judge(JudgeConfig(backend="openai", model="judge-7b", endpoint=server.url, **config))
    judge.bind()
    return judge


def faithfulness_score(judge: Judge, summary: str = "The database is down."):
    from evalkit.metrics.judged import faithfulness

    scorer = faithfulness(source="report", judge=judge, field="summary")
    return scorer.score_batch([ScoreRequest(json.dumps({"summary": summary}), Item("r1", ROWS[0]), "x")])[0]


# ------------------------------------------------------------ replies


def test_a_valid_json_verdict_scores(tmp_path, server):
    score = faithfulness_score(one_claim_judge(tmp_path, server))
    assert score.value == 1.0 and score.error is None
    assert json.loads(score.detail)["claims"] == [{"claim": "The database is down.", "supported": True, "reason": "checked"}]


def test_a_malformed_reply_then_a_repaired_one_scores(tmp_path, server):
    server.script(Reply(200, chat_reply("Supported, I would say.")))
    judge = one_claim_judge(tmp_path, server)
    score = faithfulness_score(judge)
    assert score.value == 1.0 and judge.stats["judge"].repaired == 1
    repair = server.posts("/chat/completions")[1].body["messages"]
    assert repair[-2] == {"role": "assistant", "content": "Supported, I would say."} and "cannot be used" in repair[-1]["content"]


def test_malformed_twice_is_a_parse_failure_counted_not_a_score(tmp_path, server):
    server.script(Reply(200, chat_reply("yes")), Reply(200, chat_reply('{"supported": "yes"}')))
    judge = one_claim_judge(tmp_path, server)
    score = faithfulness_score(judge)
    assert score.value is None and score.error.startswith(PARSE_FAILURE)
    assert judge.stats["judge"].parse_failures == 1


def test_a_500_then_success_is_retried_and_scores(tmp_path, server):
    server.script(Reply(500, {"error": {"message": "overloaded"}}))
    score = faithfulness_score(one_claim_judge(tmp_path, server))
    assert score.value == 1.0 and len(server.posts("/chat/completions")) == 2


def test_a_429_waits_as_retry_after_says(tmp_path, server):
    server.script(Reply(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "1"}))
    score = faithfulness_score(one_claim_judge(tmp_path, server))
    first, second = server.posts("/chat/completions")
    assert score.value == 1.0 and second.at - first.at >= 1.0


def test_a_judge_that_times_out_every_time_is_an_item_error_and_the_batch_goes_on(tmp_path, server):
    server.script(*[Reply(200, chat_reply(VERDICT), delay_s=1.5)] * 3)
    judge = one_claim_judge(tmp_path, server, timeout_s=0.5, max_retries=2, concurrency=1)
    from evalkit.metrics.judged import faithfulness

    scorer = faithfulness(source="report", judge=judge, field="summary")
    first, second = scorer.score_batch([ScoreRequest(json.dumps({"summary": "The database is down."}), Item("r1", ROWS[0]), "x"),
                                        ScoreRequest(json.dumps({"summary": "A typo."}), Item("r2", ROWS[1]), "x")])
    assert first.value is None and first.error.startswith(CALL_ERROR) and "timeout" in first.error
    assert second.value == 1.0


def test_response_format_carries_the_verdict_schema_and_sampling_is_explicit(tmp_path, server):
    faithfulness_score(one_claim_judge(tmp_path, server, seed=5))
    sent = server.posts("/chat/completions")[0].body
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"]["required"] == ["supported", "reason"]
    assert {k: sent[k] for k in ("temperature", "top_p", "seed", "model")} == {"temperature": 0.0, "top_p": 1.0, "seed": 5, "model": "judge-7b"}


def test_json_object_response_format_for_servers_without_schemas(tmp_path, server):
    faithfulness_score(one_claim_judge(tmp_path, server, response_format="json_object"))
    assert server.posts("/chat/completions")[0].body["response_format"] == {"type": "json_object"}


# ------------------------------------------------------------ whole runs


def test_a_judged_run_scores_and_the_judge_never_sees_an_arm_name(tmp_path, server):
    result = run(tmp_path, make_suite(tmp_path, server))
    rows = scores(result)
    assert rows[("r1", ARMS[0], "faithfulness")][0] == str(2 / 3)  # "Engineers are on it." is not supported
    assert rows[("r1", "base", "faithfulness")][0] == "1.0"
    assert rows[("r1", ARMS[0], "preference")][0] == "1.0"  # the longer answer wins in both orders
    sent = json.dumps([r.body for r in server.posts()])
    assert ARMS[0] not in sent and "zebra" not in sent
    assert not re.search(r"\bbase\b", sent, re.IGNORECASE)


def test_a_rerun_of_a_judged_suite_makes_zero_judge_calls(tmp_path, server):
    suite = make_suite(tmp_path, server)
    first = run(tmp_path, suite)
    calls = len(server.posts("/chat/completions"))
    assert calls == 9 + 4  # claims: base 1 + 2, other arm 3 + 3; pairwise: 2 items in two orders
    second = run(tmp_path, suite)
    assert len(server.posts("/chat/completions")) == calls, "a re-run must send no judge request"
    assert second.manifest.extra["judge"]["stats"]["faithfulness"]["calls"] == 0
    assert (second.run_dir / "scores.csv").read_text() == (first.run_dir / "scores.csv").read_text()


def test_the_manifest_records_the_judge_without_a_key(tmp_path, server, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY_FOR_TEST", "sk-secret-value-123")
    suite = make_suite(tmp_path, server)
    result = run(tmp_path, suite, judge=JudgeOverrides(api_key_env="JUDGE_KEY_FOR_TEST"))
    section = result.manifest.extra["judge"]
    assert (section["backend"], section["model"], section["endpoint"]) == ("openai", "judge-7b", server.url)
    assert set(section["metrics"]["faithfulness"]["templates"]) == {"claim_verdict"}
    assert server.posts()[0].headers["authorization"] == "Bearer sk-secret-value-123"
    assert "sk-secret" not in (result.run_dir / "manifest.json").read_text()


def test_an_exhausted_judge_is_an_item_error_and_the_run_goes_on(tmp_path, server):
    server.respond = lambda request: Reply(503, {"error": {"message": "down"}})
    result = run(tmp_path, make_suite(tmp_path, server, timeout=1.0))
    rows = scores(result)
    assert rows[("r1", ARMS[0], "faithfulness")][1].startswith(CALL_ERROR)
    assert result.summary.errors[ARMS[0]]["faithfulness"] == 2


def test_cli_judge_options_override_the_suite(tmp_path, server, capsys):
    suite = make_suite(tmp_path, server)
    code = main(["run", str(suite), "--judge", "openai:judge-7b", "--judge-endpoint", "http://127.0.0.1:9/v1",
                 "--runs-dir", str(tmp_path / "runs"), "--no-cache"])
    assert code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "judge openai:judge-7b cannot be used" in err and "127.0.0.1:9" in err
