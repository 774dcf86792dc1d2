"""The OpenAI-compatible backend against a real scripted HTTP server on 127.0.0.1, and through the real CLI."""

from __future__ import annotations

import json
import secrets
import socket
from pathlib import Path

import pytest

from evalkit.cli import main
from evalkit.errors import BackendError
from evalkit.models.base import BackendOptions, GenerateRequest, LoadOptions, LoglikelihoodRequest, open_backend, require
from evalkit.models.endpoint import RetryPolicy
from evalkit.models.openai import OpenAIBackend
from tests.scripted_server import Received, Reply, ScriptedServer, chat_reply, echo_chat

FAST = RetryPolicy(max_retries=2, base_delay_s=0.01, max_delay_s=0.05)
GREEDY = {"max_new_tokens": 12, "do_sample": False}
MESSAGES = ({"role": "system", "content": "Answer with JSON."}, {"role": "user", "content": "Report: disk full"})


@pytest.fixture
def server():
    with ScriptedServer(models=["base-model", "tuned-v1"]) as s:
        yield s


def make_backend(server: ScriptedServer, adapters=("tuned=tuned-v1",), **kw) -> OpenAIBackend:
    kw.setdefault("retry", FAST)
    kw.setdefault("timeout_s", 2.0)
    return OpenAIBackend(server.url, "base-model", adapters, **kw)


def request(messages=MESSAGES) -> GenerateRequest:
    return GenerateRequest(messages=tuple(messages), prompt=json.dumps(messages))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------ what is sent


def test_chat_messages_are_sent_as_messages_with_every_decoding_parameter(server):
    out = make_backend(server).generate([request()], "base", GREEDY)
    assert out[0].text == "[base-model] Report: disk full" and out[0].error is None
    (sent,) = server.posts("/chat/completions")
    assert sent.body["messages"] == list(MESSAGES)
    assert "prompt" not in sent.body
    assert {k: sent.body[k] for k in ("temperature", "top_p", "max_tokens", "seed")} == {"temperature": 0.0, "top_p": 1.0, "max_tokens": 12, "seed": 0}


def test_sampled_decoding_is_sent_as_the_suite_sets_it(server):
    make_backend(server).generate([request()], "base", {"max_new_tokens": 5, "do_sample": True, "temperature": 0.7, "top_p": 0.9, "seed": 3})
    sent = server.posts()[0].body
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"], sent["seed"]) == (0.7, 0.9, 5, 3)


def test_each_arm_asks_for_its_served_model(server):
    backend = make_backend(server)
    assert backend.generate([request()], "tuned", GREEDY)[0].text.startswith("[tuned-v1]")
    backend.generate([request()], "base", GREEDY)
    assert [r.body["model"] for r in server.posts()] == ["tuned-v1", "base-model"]


def test_requests_run_concurrently_and_answers_keep_their_order(server):
    server.respond = lambda r: Reply(200, chat_reply(r.body["messages"][-1]["content"]), delay_s=0.3)
    reqs = [request([{"role": "user", "content": f"q{i}"}]) for i in range(8)]
    out = make_backend(server, concurrency=8).generate(reqs, "base", GREEDY)
    assert [o.text for o in out] == [f"q{i}" for i in range(8)]
    arrivals = sorted(r.at for r in server.posts())
    assert arrivals[-1] - arrivals[0] < 0.25  # all eight were in flight before the first answer came back


def test_authorization_header_comes_from_the_named_environment_variable(server, monkeypatch):
    monkeypatch.setenv("EVALKIT_TEST_KEY", "sk-abc123")
    backend = open_backend("openai", "base-model", [], BackendOptions(endpoint=server.url, api_key_env="EVALKIT_TEST_KEY"))
    backend.generate([request()], "base", GREEDY)
    assert {r.headers.get("authorization") for r in server.requests} == {"Bearer sk-abc123"}


def test_without_a_key_variable_no_authorization_is_sent(server):
    make_backend(server).generate([request()], "base", GREEDY)
    assert all("authorization" not in r.headers for r in server.requests)


# ------------------------------------------------------------ failures are item errors, and the run goes on


def test_request_failing_after_every_retry_is_that_items_error_and_the_rest_are_answered(server):
    server.script(*[Reply(500, {"error": {"message": "engine crashed"}})] * 3)
    out = make_backend(server, concurrency=1).generate([request([{"role": "user", "content": f"q{i}"}]) for i in range(3)], "base", GREEDY)
    assert out[0].error == "base-model: HTTP 500: engine crashed after 3 attempts" and out[0].text == ""
    assert [o.error for o in out[1:]] == [None, None] and out[1].text == "[base-model] q1"


@pytest.mark.parametrize("body", ["<html>gateway</html>", {"id": "x"}, {"choices": []}, {"choices": [{"message": {"content": None}}]}],
                         ids=["not-json", "no-choices", "empty-choices", "no-content"])
def test_malformed_body_is_an_item_error(server, body):
    server.script(Reply(200, body))
    (out,) = make_backend(server).generate([request()], "base", GREEDY)
    assert out.error is not None and out.error.startswith("base-model: ")
    assert len(server.posts()) == 1


def test_lost_server_mid_run_is_an_item_error_not_a_crash(server):
    backend = make_backend(server)
    backend.generate([request()], "base", GREEDY)
    server.stop()
    (out,) = backend.generate([request()], "base", GREEDY)
    assert out.error is not None and "after 3 attempts" in out.error


CHILD = """
import sys
from evalkit.models.base import GenerateRequest
from evalkit.models.openai import OpenAIBackend
backend = OpenAIBackend(sys.argv[1], "base-model", timeout_s=60)
try:
    backend.generate([GenerateRequest(({"role": "user", "content": "hi"},), "p")] * 2, "base", {"max_new_tokens": 4})
except KeyboardInterrupt:
    sys.exit(130)
"""


def test_ctrl_c_during_requests_exits_without_waiting_for_them(server):
    import os
    import signal
    import subprocess
    import sys
    import time

    server.respond = lambda r: Reply(200, chat_reply("late"), delay_s=30)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen([sys.executable, "-c", CHILD, server.url], env=env)
    try:
        deadline = time.monotonic() + 60
        while len(server.posts()) < 2 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
        assert len(server.posts()) == 2, "the child never sent its requests"
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=20) == 130
        assert time.monotonic() - sent < 10  # not the 30 s the server takes, nor the 60 s timeout
    finally:
        if child.poll() is None:
            child.kill()


# ------------------------------------------------------------ checked before the first request


def test_served_names_are_checked_when_the_backend_is_built(server):
    with pytest.raises(BackendError, match=r"--adapter tuned=tuned-v2: 'tuned-v2' is not served by .*'base-model', 'tuned-v1'"):
        OpenAIBackend(server.url, "base-model", ["tuned=tuned-v2"], retry=FAST)
    with pytest.raises(BackendError, match=r"--base: 'base' is not served"):
        OpenAIBackend(server.url, "base", retry=FAST)


def test_construction_sends_only_the_models_check(server):
    make_backend(server)
    assert [(r.method, r.path) for r in server.requests] == [("GET", "/v1/models")]


def test_connection_refused_is_one_error_naming_the_endpoint_at_once():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(BackendError, match=rf"--endpoint {url}: cannot connect .*is the server running"):
        OpenAIBackend(url, "m", retry=RetryPolicy(max_retries=4, base_delay_s=60.0))  # no retry: nothing listens there


def test_server_that_lists_no_models_is_not_checked():
    with ScriptedServer(models=None) as s:
        assert OpenAIBackend(s.url, "anything", retry=FAST).generate([request()], "base", GREEDY)[0].error is None


def test_refused_key_names_the_variable_option():
    with ScriptedServer(models=Reply(401, {"error": {"message": "invalid api key"}})) as s:
        with pytest.raises(BackendError, match="refused the API key .*--api-key-env"):
            OpenAIBackend(s.url, "m", api_key="wrong", retry=FAST)


def test_missing_key_variable_is_refused_before_any_request(server, monkeypatch):
    monkeypatch.delenv("EVALKIT_TEST_KEY", raising=False)
    with pytest.raises(BackendError, match="--api-key-env EVALKIT_TEST_KEY: the environment variable is not set"):
        open_backend("openai", "base-model", [], BackendOptions(endpoint=server.url, api_key_env="EVALKIT_TEST_KEY"))
    assert server.requests == []


def test_a_key_given_in_place_of_a_variable_name_is_not_repeated(server):
    with pytest.raises(BackendError, match="NAME of an environment variable") as info:
        open_backend("openai", "base-model", [], BackendOptions(endpoint=server.url, api_key_env="sk-live-abc.def"))
    assert "sk-live-abc.def" not in str(info.value)


def test_endpoint_with_credentials_is_refused_without_repeating_them():
    with pytest.raises(BackendError, match="holds credentials") as info:
        OpenAIBackend("http://me:hunter2@127.0.0.1:8000/v1", "m")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("options, needle", [
    (BackendOptions(), "needs --endpoint"),
    (BackendOptions(endpoint="http://127.0.0.1:1/v1", load=LoadOptions(dtype="bfloat16")), "--dtype, --quantize and --device"),
    (BackendOptions(endpoint="http://127.0.0.1:1/v1", tensor_parallel_size=2), "--tensor-parallel-size is an option of --backend vllm"),
    (BackendOptions(endpoint="127.0.0.1:8000"), "not an http(s) URL"),
])
def test_options_that_cannot_work_are_refused(options, needle):
    with pytest.raises(BackendError, match=None) as info:
        open_backend("openai", "m", [], options)
    assert needle in str(info.value)


def test_duplicate_arm_names_are_refused():
    with pytest.raises(BackendError, match="used twice"):
        OpenAIBackend("http://127.0.0.1:1/v1", "m", ["a=x", "a=y"], check_models=False)


# ------------------------------------------------------------ identity


def test_identity_and_fingerprints_name_the_endpoint_and_served_model(server):
    backend = make_backend(server)
    assert backend.identity() == {"backend": "openai", "endpoint": server.url}
    assert (backend.base.path, backend.base.source, backend.base.spec) == (None, "served", "base-model")
    (ad,) = backend.adapters
    assert (ad.name, ad.path, ad.config) == ("tuned", None, {"served_model": "tuned-v1"})
    elsewhere = OpenAIBackend("http://10.0.0.2:8000/v1", "base-model", ["tuned=tuned-v1"], check_models=False)
    assert elsewhere.base.fingerprint != backend.base.fingerprint
    assert elsewhere.adapters[0].fingerprint != ad.fingerprint
    assert OpenAIBackend(server.url, "other", ["tuned=tuned-v1"], check_models=False).base.fingerprint != backend.base.fingerprint


def test_bare_adapter_names_the_arm_after_its_served_model():
    backend = OpenAIBackend("http://127.0.0.1:1/v1", "m", ["org/model:latest"], check_models=False)
    assert backend.adapters[0].name == "org-model-latest"
    assert backend.adapters[0].config == {"served_model": "org/model:latest"}


def test_prompt_is_the_canonical_json_of_the_messages_and_the_server_renders_the_template():
    backend = OpenAIBackend("http://127.0.0.1:1/v1", "m", check_models=False)
    assert backend.render(list(MESSAGES)) == json.dumps(list(MESSAGES), sort_keys=True, separators=(",", ":"))
    assert backend.template_hash == ""


# ------------------------------------------------------------ loglikelihood


@pytest.fixture(scope="module")
def tiny_completions(tiny_model_dir):
    """A /completions responder shaped like vLLM's (echo, prompt log-probs, usage), computed with the tiny model in transformers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()

    def respond(r: Received) -> Reply:
        if not r.path.endswith("/v1/completions"):
            return Reply(404, {"error": {"message": "no route"}})
        ids = tok(r.body["prompt"], add_special_tokens=r.body.get("add_special_tokens", True)).input_ids
        usage = {"prompt_tokens": len(ids), "completion_tokens": 1, "total_tokens": len(ids) + 1}
        with torch.inference_mode():
            lp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)  # (len, vocab)
        ids = ids + [int(lp[-1].argmax())]  # max_tokens=1: one generated token follows the echo
        choice = {"index": 0, "text": tok.decode(ids[-1:]), "finish_reason": "length", "logprobs": None}
        if r.body.get("echo") and r.body.get("logprobs") is not None:
            token_lps = [None] + [float(lp[j - 1, ids[j]]) for j in range(1, len(ids))]
            tops = [None] + [{tok.decode([int(lp[j - 1].argmax())]): float(lp[j - 1].max()), tok.decode([ids[j]]): token_lps[j]}
                             for j in range(1, len(ids))]
            tokens = [tok.decode([t]) for t in ids]
            offsets = [sum(len(t) for t in tokens[:j]) for j in range(len(tokens))]
            choice.update(text="".join(tokens), logprobs={"tokens": tokens, "token_logprobs": token_lps, "top_logprobs": tops, "text_offset": offsets})
        return Reply(200, {"object": "text_completion", "choices": [choice], "usage": usage})

    return respond, tok, model


def test_loglikelihood_equals_the_hf_backends_on_the_same_model(tiny_completions, tiny_model):
    import torch

    from evalkit.models.hf import HFBackend

    respond, tok, model = tiny_completions
    context = "Question: what is the capital of France?\nAnswer:"
    with torch.inference_mode():
        greedy = int(model(torch.tensor([tok(context, add_special_tokens=False).input_ids])).logits[0, -1].argmax())
    reqs = [
        LoglikelihoodRequest(context, " Paris"),
        LoglikelihoodRequest(context, " a city on the river Seine"),
        LoglikelihoodRequest("The capital of France is ", "Paris"),  # trailing space moves to the continuation
        LoglikelihoodRequest(context, tok.decode([greedy])),
    ]
    expected = HFBackend(tiny_model).loglikelihood(reqs, "base")
    with ScriptedServer(respond=respond, models=["tiny"]) as s:
        got = OpenAIBackend(s.url, "tiny", retry=FAST, concurrency=2).loglikelihood(reqs, "base")
        sent = [r.body for r in s.posts("/v1/completions")]
    assert [(g.tokens, g.is_greedy) for g in got] == [(e.tokens, e.is_greedy) for e in expected]
    assert [g.logprob for g in got] == pytest.approx([e.logprob for e in expected], abs=1e-4)
    assert expected[3].is_greedy  # the greedy branch is exercised
    assert all(b["add_special_tokens"] is False and b["temperature"] == 0.0 and isinstance(b["prompt"], str) for b in sent)
    scoring = [b for b in sent if b.get("echo")]
    assert all(b["logprobs"] == 1 and b["max_tokens"] == 1 for b in scoring)
    # one scoring request per item (and the capability probe's); each context counted once
    assert len(scoring) == len(reqs) + 1 and len(sent) - len(scoring) == 3


def test_endpoint_without_prompt_logprobs_cannot_compute_loglikelihood(server):
    server.respond = lambda r: Reply(404, {"error": {"message": "no /completions here"}}) if r.path.endswith("/v1/completions") else echo_chat(r)
    backend = make_backend(server)
    assert backend.capabilities == frozenset({"generate"})
    with pytest.raises(BackendError, match="cannot compute loglikelihood"):
        require(backend, "loglikelihood", "forgetting panel arc_easy")
    with pytest.raises(BackendError, match="not supported by this endpoint"):
        backend.loglikelihood([LoglikelihoodRequest("a", " b")], "base")


# ------------------------------------------------------------ through the real CLI


def _cli_run(suite: Path, tmp_path: Path, url: str, *extra: str) -> int:
    return main(["run", str(suite), "--backend", "openai", "--endpoint", url, "--base", "base-model", "--adapter", "tuned=tuned-v1",
                 "--runs-dir", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache" / "cache.sqlite"), *extra])


def _answers(r: Received) -> Reply:
    if r.body["model"] == "tuned-v1":
        return Reply(200, chat_reply('{"summary": "database down"}'))
    return echo_chat(r)


def test_cli_run_retries_records_failures_per_arm_caches_and_never_writes_the_key(tmp_path, make_suite, monkeypatch, capsys):
    key = f"sk-evalkit-{secrets.token_hex(12)}"
    monkeypatch.setenv("EVALKIT_TEST_KEY", key)
    suite = make_suite(n=6)
    with ScriptedServer(respond=_answers, models=["base-model", "tuned-v1"]) as s:
        s.script(
            *[Reply(500, {"error": {"message": "engine crashed"}})] * 3,  # item 1: fails after 1 + 2 retries
            Reply(429, {}, headers={"Retry-After": "1"}),                 # item 2: waits, then answered
            Reply(200, "<html>proxy error</html>"),                       # item 3: malformed body, an error
            Reply(close=True),                                            # item 4: dropped, then answered
            Reply(200, chat_reply("late"), delay_s=1.5),                  # item 5: timed out, then answered
        )
        args = ("--api-key-env", "EVALKIT_TEST_KEY", "--max-retries", "2", "--concurrency", "1", "--timeout", "0.5")
        assert _cli_run(suite, tmp_path, s.url, *args) == 0
        first = s.posts("/chat/completions")
        assert len(first) == 6 + 2 + 3 + 6  # base: 6 items + 2 retries of item 1 + one retry each of items 2, 4, 5; tuned: 6
        assert first[4].at - first[3].at >= 1.0  # Retry-After: 1 honoured
        assert all(r.body["model"] == "base-model" for r in first[:11]) and all(r.body["model"] == "tuned-v1" for r in first[11:])
        assert {r.headers.get("authorization") for r in s.requests} == {f"Bearer {key}"}

        (run_dir,) = (tmp_path / "runs").iterdir()
        gens = [json.loads(line) for line in (run_dir / "generations.jsonl").read_text().splitlines()]
        errors = [g for g in gens if g["error"]]
        assert [g["arm"] for g in errors] == ["base", "base"]
        assert "HTTP 500: engine crashed after 3 attempts" in errors[0]["error"] + errors[1]["error"]
        assert "body is not JSON" in errors[0]["error"] + errors[1]["error"]
        report = (run_dir / "report.md").read_text()
        assert "2 of 12 generations failed after retries (base: 2 of 6, tuned: 0 of 6)" in report
        assert "openai (endpoint=" + s.url in report and "served as `tuned-v1`" in report
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert manifest["backend"] == {"backend": "openai", "endpoint": s.url} and manifest["chat_template_sha256"] == ""

        assert _cli_run(suite, tmp_path, s.url, *args) == 0  # the two failed items are asked again, nothing else
        assert len(s.posts("/chat/completions")) == len(first) + 2
        before = len(s.requests)
        assert _cli_run(suite, tmp_path, s.url, *args) == 0  # all cached: not one generation, only the models check
        assert [(r.method, r.path) for r in s.requests[before:]] == [("GET", "/v1/models")]

    captured = capsys.readouterr()
    assert key not in captured.out + captured.err
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "suite" not in p.parts]
    assert any(p.suffix == ".sqlite" for p in written) and len([p for p in written if p.name == "manifest.json"]) == 3
    for path in written:
        assert key.encode() not in path.read_bytes(), f"the API key was written to {path}"


def test_cli_missing_key_variable_exits_2_before_any_request(tmp_path, make_suite, monkeypatch, capsys, server):
    monkeypatch.delenv("EVALKIT_TEST_KEY", raising=False)
    assert _cli_run(make_suite(n=2), tmp_path, server.url, "--api-key-env", "EVALKIT_TEST_KEY") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --api-key-env EVALKIT_TEST_KEY") and len(err.splitlines()) == 1
    assert server.requests == []


def test_cli_unreachable_endpoint_exits_2_naming_it(tmp_path, make_suite, capsys):
    url = f"http://127.0.0.1:{free_port()}/v1"
    assert _cli_run(make_suite(n=2), tmp_path, url) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"error: --endpoint {url}: cannot connect") and "Traceback" not in err
