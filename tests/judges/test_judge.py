"""The judge handle: cache, one repair turn, parse failures and call errors as values, samples, reuse of the run's base."""

from __future__ import annotations

import json

import pytest

from evalkit.cache import GenerationCache
from evalkit.errors import JudgeError
from evalkit.judges import CALL_ERROR, PARSE_FAILURE, Judge, JudgeConfig, JudgeRequest
from evalkit.judges.parse import ReplyProblem, parse_reply, verdict_schema
from evalkit.models.fake import FakeBackend

SCHEMA = verdict_schema({"supported": {"type": "boolean"}, "reason": {"type": "string"}})


def request(text: str = "claim") -> JudgeRequest:
    return JudgeRequest(({"role": "system", "content": "Judge."}, {"role": "user", "content": text}), SCHEMA, "claim_verdict")


def bound(respond, tmp_path=None, **config) -> tuple[Judge, FakeBackend]:
    backend = FakeBackend(respond, model="judge-model")
    judge = Judge(JudgeConfig(**config), backend=backend)
    cache = GenerationCache(tmp_path / "cache.sqlite") if tmp_path else None
    judge.bind(cache=cache)
    return judge, backend


VALID = '{"supported": true, "reason": "stated"}'


def test_a_valid_reply_is_returned_validated():
    judge, backend = bound(lambda r, arm: VALID)
    reply = judge.ask([request()])[0][0]
    assert reply.ok and reply.value == {"supported": True, "reason": "stated"}
    assert backend.generated == 1


def test_json_wrapped_in_prose_or_a_fence_is_found():
    judge, _ = bound(lambda r, arm: f"Sure! ```json\n{VALID}\n``` hope that helps")
    assert judge.ask([request()])[0][0].value["supported"] is True


def test_a_malformed_reply_gets_one_repair_turn_naming_the_problem():
    replies = iter(["I think it is supported.", VALID])
    seen = []

    def respond(req, arm):
        seen.append(req.messages)
        return next(replies)

    judge, backend = bound(respond)
    reply = judge.ask([request()])[0][0]
    assert reply.ok and reply.repair_text == VALID and reply.text == "I think it is supported."
    repair = seen[1]
    assert repair[-2] == {"role": "assistant", "content": "I think it is supported."}
    assert "no JSON object or array found" in repair[-1]["content"] and '"supported"' in repair[-1]["content"]
    assert judge.stats["judge"].repaired == 1 and judge.stats["judge"].calls == 2


def test_malformed_twice_is_a_parse_failure_counted_never_a_verdict():
    judge, backend = bound(lambda r, arm: '{"supported": "maybe", "reason": "unsure"}')
    reply = judge.ask([request()])[0][0]
    assert reply.kind == "parse_failure" and reply.value is None
    assert reply.error.startswith(PARSE_FAILURE) and "supported" in reply.error
    assert judge.stats["judge"].parse_failures == 1 and backend.generated == 2


def test_a_failed_request_is_a_call_error_and_is_not_cached(tmp_path):
    def down(req, arm):
        raise ConnectionError("endpoint still answering 500 after 4 retries")

    judge, _ = bound(down, tmp_path)
    reply = judge.ask([request()])[0][0]
    assert reply.kind == "call_error" and reply.error.startswith(CALL_ERROR)
    again, backend = bound(lambda r, arm: VALID, tmp_path)
    assert again.ask([request()])[0][0].ok and backend.generated == 1, "a call error must be asked again next time"


def test_a_second_ask_is_answered_from_the_cache(tmp_path):
    judge, first = bound(lambda r, arm: VALID, tmp_path)
    judge.ask([request("a"), request("b")])
    again, second = bound(lambda r, arm: VALID, tmp_path)
    replies = again.ask([request("a"), request("b")])
    assert second.generated == 0 and all(r[0].cached and r[0].ok for r in replies)
    assert again.stats["judge"].cached == 2


def test_parse_failures_are_cached_as_the_judges_answer(tmp_path):
    judge, _ = bound(lambda r, arm: "no", tmp_path)
    judge.ask([request()])
    again, backend = bound(lambda r, arm: VALID, tmp_path)
    assert again.ask([request()])[0][0].kind == "parse_failure" and backend.generated == 0


def test_another_judge_model_misses_the_cache(tmp_path):
    judge, _ = bound(lambda r, arm: VALID, tmp_path)
    judge.ask([request()])
    other = FakeBackend(lambda r, arm: VALID, model="another-judge")
    j2 = Judge(JudgeConfig(), backend=other)
    j2.bind(cache=GenerationCache(tmp_path / "cache.sqlite"))
    j2.ask([request()])
    assert other.generated == 1


def test_samples_after_the_first_are_drawn_at_the_sample_temperature_with_their_own_seeds():
    decodings = []

    class Recording(FakeBackend):
        def generate(self, requests, arm, decoding):
            decodings.append(dict(decoding))
            return super().generate(requests, arm, decoding)

    backend = Recording(lambda r, arm: VALID, model="judge-model")
    judge = Judge(JudgeConfig(seed=7, sample_temperature=0.9, max_new_tokens=40), backend=backend)
    judge.bind()
    replies = judge.ask([request()], samples=3)
    assert len(replies[0]) == 3
    assert decodings[0] == {"max_new_tokens": 40, "do_sample": False, "seed": 7}
    assert decodings[1] == {"max_new_tokens": 40, "do_sample": True, "temperature": 0.9, "top_p": 1.0, "seed": 8}
    assert decodings[2]["seed"] == 9


def test_an_unbound_judge_refuses_to_be_asked():
    with pytest.raises(JudgeError, match="not bound"):
        Judge(JudgeConfig()).ask([request()])


def test_parse_reply_refuses_extra_keys_and_wrong_types():
    with pytest.raises(ReplyProblem, match="Additional properties"):
        parse_reply('{"supported": true, "reason": "x", "score": 3}', SCHEMA)
    with pytest.raises(ReplyProblem, match="not of type 'boolean'"):
        parse_reply('{"supported": "yes", "reason": "x"}', SCHEMA)
    with pytest.raises(ReplyProblem, match="not an object"):
        parse_reply("[1, 2]", SCHEMA)


def test_the_judge_is_the_runs_loaded_base_when_it_is_the_same_model(tiny_model):
    from evalkit.models import HFBackend, LoadOptions

    run = HFBackend(tiny_model, (), LoadOptions(device="cpu"))
    judge = Judge(JudgeConfig(backend="hf", model=str(tiny_model.path)))
    judge.bind(run_backend=run)
    assert judge.reused_run_base and judge._backend is run
    judge.close()
    assert run._model is None, "binding must load no weights"


def test_a_judge_of_another_model_gets_its_own_backend(tiny_model, embedded):
    from evalkit.models import HFBackend, LoadOptions

    run = HFBackend(tiny_model, (), LoadOptions(device="cpu"))
    judge = Judge(JudgeConfig(backend="hf", model=str(embedded.path)))
    judge.bind(run_backend=run)
    assert not judge.reused_run_base and judge._backend is not run
    assert json.dumps(judge.describe())  # the manifest section is JSON
    judge.close()
