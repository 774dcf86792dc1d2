"""The retrying HTTP client against a real scripted server on 127.0.0.1: what is retried, how long it waits."""

from __future__ import annotations

import email.utils
import random
import socket
import threading
import time

import pytest

from evalkit.models.endpoint import EndpointClient, RequestFailed, RetryPolicy, parse_retry_after
from tests.scripted_server import Reply, ScriptedServer, chat_reply

FAST = RetryPolicy(max_retries=2, base_delay_s=0.01, max_delay_s=0.05)
OK = Reply(200, chat_reply("fine"))


@pytest.fixture
def server():
    with ScriptedServer(respond=lambda r: OK) as s:
        yield s


def client(server: ScriptedServer, **kw) -> EndpointClient:
    kw.setdefault("retry", FAST)
    kw.setdefault("timeout_s", 2.0)
    return EndpointClient(server.url, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_retry_after_seconds_and_http_dates_are_read():
    now = 1_700_000_000.0
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after(email.utils.formatdate(now + 7, usegmt=True), now=now) == pytest.approx(7.0)
    assert parse_retry_after(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_doubles_stays_within_half_and_whole_and_is_capped():
    policy, rng = RetryPolicy(base_delay_s=1.0, max_delay_s=4.0), random.Random(0)
    for retry, full in [(0, 1.0), (1, 2.0), (2, 4.0), (5, 4.0)]:
        waits = [policy.backoff(retry, rng) for _ in range(200)]
        assert full / 2 <= min(waits) and max(waits) <= full


def test_valid_reply_is_returned_decoded(server):
    assert client(server).request_json("POST", "chat/completions", {"x": 1})["choices"][0]["message"]["content"] == "fine"
    assert server.posts()[0].body == {"x": 1}


def test_429_waits_as_long_as_retry_after_says(server):
    server.script(Reply(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "1"}))
    c = client(server)
    c.request_json("POST", "chat/completions", {})
    first, second = server.posts()
    assert second.at - first.at >= 1.0
    assert c.retries == 1


def test_retry_after_as_an_http_date_is_honoured(server):
    server.script(Reply(503, "loading", headers={"Retry-After": email.utils.formatdate(time.time() + 2, usegmt=True)}))
    client(server).request_json("POST", "chat/completions", {})
    first, second = server.posts()
    assert second.at - first.at >= 1.0  # the date has whole seconds: 1 to 2 s from the first answer


def test_retry_after_holds_back_the_other_requests_too(server):
    server.script(Reply(429, {}, headers={"Retry-After": "1"}))
    c = client(server)
    worker = threading.Thread(target=c.request_json, args=("POST", "a", {}))
    worker.start()
    while not server.posts():
        time.sleep(0.01)
    time.sleep(0.2)  # the 429 has reached the client
    c.request_json("POST", "b", {})
    worker.join(timeout=10)
    a_first, *_ = server.posts("/a")
    (b,) = server.posts("/b")
    assert b.at - a_first.at >= 1.0


def test_500_then_success_is_retried(server):
    server.script(Reply(500, {"error": {"message": "boom"}}))
    assert client(server).request_json("POST", "x", {})["choices"]
    assert len(server.posts()) == 2


def test_timeout_then_success_is_retried(server):
    server.script(Reply(200, chat_reply("late"), delay_s=1.5))
    c = client(server, timeout_s=0.3)
    assert c.request_json("POST", "x", {})["choices"][0]["message"]["content"] == "fine"
    assert len(server.posts()) == 2


def test_dropped_connection_then_success_is_retried(server):
    server.script(Reply(close=True))
    assert client(server).request_json("POST", "x", {})["choices"]
    assert len(server.posts()) == 2


def test_other_4xx_is_not_retried(server):
    server.script(Reply(400, {"error": {"message": "prompt too long"}}))
    with pytest.raises(RequestFailed, match="HTTP 400: prompt too long") as info:
        client(server).request_json("POST", "x", {})
    assert info.value.status == 400 and not info.value.retryable
    assert len(server.posts()) == 1


def test_failure_after_every_retry_says_how_often_it_tried(server):
    server.script(*[Reply(502, "bad gateway")] * 3)
    with pytest.raises(RequestFailed, match=r"HTTP 502: bad gateway after 3 attempts") as info:
        client(server).request_json("POST", "x", {})
    assert info.value.retryable and info.value.status == 502
    assert len(server.posts()) == 3


def test_retry_after_beyond_the_limit_fails_at_once(server):
    server.script(Reply(429, {}, headers={"Retry-After": "3600"}))
    with pytest.raises(RequestFailed, match="asks to wait 3600 s"):
        client(server).request_json("POST", "x", {})
    assert len(server.posts()) == 1


def test_body_that_is_not_json_fails_without_retry(server):
    server.script(Reply(200, "<html>proxy login</html>"))
    with pytest.raises(RequestFailed, match="body is not JSON: '<html>proxy login</html>'"):
        client(server).request_json("POST", "x", {})
    assert len(server.posts()) == 1


def test_refused_connection_is_retried_then_fails():
    c = EndpointClient(f"http://127.0.0.1:{free_port()}/v1", retry=FAST, timeout_s=2.0)
    with pytest.raises(RequestFailed, match="cannot connect .* after 3 attempts"):
        c.request_json("POST", "x", {})
    assert c.retries == 2


def test_refused_first_contact_fails_at_once_when_asked():
    c = EndpointClient(f"http://127.0.0.1:{free_port()}/v1", retry=FAST, timeout_s=2.0)
    with pytest.raises(RequestFailed) as info:
        c.request_json("GET", "models", retry_connect=False)
    assert info.value.connect and c.retries == 0


def test_api_key_is_sent_as_bearer_and_masked_in_errors(server):
    key = "sk-test-0123456789abcdef"
    server.script(Reply(401, {"error": {"message": f"Incorrect API key provided: {key}"}}))
    with pytest.raises(RequestFailed) as info:
        client(server, api_key=key).request_json("POST", "x", {})
    assert key not in str(info.value) and "***" in str(info.value)
    assert server.posts()[0].headers["authorization"] == f"Bearer {key}"


def test_cancel_stops_a_backoff_at_once(server):
    server.script(*[Reply(500)] * 5)
    c = client(server, retry=RetryPolicy(max_retries=4, base_delay_s=30.0, max_delay_s=30.0))
    threading.Timer(0.3, c.cancel).start()
    started = time.monotonic()
    with pytest.raises(RequestFailed, match="cancelled"):
        c.request_json("POST", "x", {})
    assert time.monotonic() - started < 5
