"""A JSON-over-HTTP client for model servers: bounded retries, backoff, ``Retry-After``, no leaked secrets.

What is retried, and how (the policy every served backend and judge shares):

    429, 5xx                  retried; the wait is the server's ``Retry-After`` (seconds or an
                              HTTP date) when it sends one, else exponential backoff with jitter.
                              A ``Retry-After`` holds back *every* request of this client, not
                              only the one that got it: the server is rate-limiting all of them.
    timeout, dropped or       retried with backoff (a server restarting, a proxy hiccup).
    refused connection
    other 4xx                 not retried: the request itself is wrong (400: too long a prompt,
                              404: no such model); a retry would fail the same way.
    2xx with a body that      not retried: a failure of that request.
    is not JSON

A request that still fails raises :class:`RequestFailed`, whose message is safe to
record: the API key is never in it (it is masked even where a server echoes it back).
The client is built on ``httpx`` (connection pooling, per-phase timeouts, exception
classes that say what went wrong); the retry loop is evalkit's own, small and tested
against a scripted server, because retry rules are part of what a judge's result means.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["EndpointClient", "RequestFailed", "RetryPolicy", "parse_retry_after"]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a failed request is retried."""

    max_retries: int = 4
    """Retries after the first attempt (``--max-retries``); 0 tries once."""
    base_delay_s: float = 0.5
    """First backoff; it doubles with each retry."""
    max_delay_s: float = 30.0
    """Longest backoff between two attempts."""
    max_retry_after_s: float = 120.0
    """Longest ``Retry-After`` honoured; a server asking for more fails the request at once
    (waiting an hour per item is worse than a recorded error that the next run retries)."""

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, not {self.max_retries}")

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Seconds before retry number ``retry`` (0-based): exponential, capped, with "equal jitter".

        Half of the delay is fixed and half random, so concurrent requests that failed
        together do not come back together, and every retry still waits at least half.
        """
        delay = min(self.max_delay_s, self.base_delay_s * 2**retry)
        return delay / 2 + rng.uniform(0, delay / 2)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date (RFC 9110 §10.2.3).

    Returns None for a missing or unreadable header, and 0 for a date in the past.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class RequestFailed(Exception):
    """A request that failed for good: after its last retry, or at once (other 4xx, malformed body).

    Its message never holds the API key.
    """

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False, connect: bool = False) -> None:
        super().__init__(message)
        self.status = status
        """The last HTTP status, if the server answered."""
        self.retryable = retryable
        """True when the failure was of a retried kind (429, 5xx, timeout, connection), i.e. the server
        is unwell rather than the request wrong."""
        self.connect = connect
        """True when no connection could be made at all (nothing listening, unknown host)."""


class EndpointClient:
    """Thread-safe JSON requests to one base URL, with the retry policy of the module docstring.

    Args:
        url: the base URL; request paths are relative to it (``chat/completions``).
        api_key: sent as ``Authorization: Bearer``; never logged, never in an error.
        timeout_s: limit for connecting, and for each read and write of a request.
        concurrency: connections kept to the server (the caller bounds requests in flight).
        retry: the retry policy.
    """

    def __init__(self, url: str, *, api_key: str | None = None, timeout_s: float = 120.0, concurrency: int = 8,
                 retry: RetryPolicy = RetryPolicy()) -> None:
        self.url = url
        self.retry = retry
        self.timeout_s = timeout_s
        self._secret = api_key or None
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=url, headers=headers, timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._rng = random.Random()
        self._lock = threading.Lock()
        self._not_before = 0.0
        """time.monotonic() before which no request is sent: set by a Retry-After, honoured by all threads."""
        self._stop = threading.Event()
        self.retries = 0
        """Retries made so far (all requests, all threads)."""

    def request_json(self, method: str, path: str, payload: Any = None, *, retry_connect: bool = True) -> Any:
        """Send one request and return its decoded JSON body, retrying as the policy says.

        Args:
            retry_connect: also retry a refused connection (off for a first contact, where
                nothing listening usually means a wrong URL, not a hiccup).

        Raises:
            RequestFailed: the request failed for good; the message says why and how often it was tried.
        """
        attempts = self.retry.max_retries + 1
        problem = ""
        for attempt in range(attempts):
            self._wait_turn()
            server_wait: float | None = None
            last_status: int | None = None
            try:
                response = self._http.request(method, path, json=payload)
            except httpx.TimeoutException:
                problem = f"no answer within {self.timeout_s:g} s (timeout)"
            except httpx.ConnectError as exc:
                problem = f"cannot connect ({_reason(exc)})"
                if not retry_connect:
                    raise RequestFailed(self._redact(problem), retryable=True, connect=True) from None
            except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                problem = f"connection dropped ({_reason(exc)})"
            except httpx.HTTPError as exc:  # an unsupported scheme, a bad header: retrying cannot help
                raise RequestFailed(self._redact(f"request could not be sent ({_reason(exc)})")) from None
            else:
                status = last_status = response.status_code
                if 200 <= status < 300:
                    return self._decode(response)
                problem = f"HTTP {status}: {_error_text(response)}"
                if status != 429 and status < 500:
                    raise RequestFailed(self._redact(problem), status=status)
                server_wait = parse_retry_after(response.headers.get("retry-after"))
                if server_wait is not None and server_wait > self.retry.max_retry_after_s:
                    raise RequestFailed(self._redact(
                        f"{problem}; the server asks to wait {server_wait:.0f} s (Retry-After), "
                        f"longer than evalkit waits ({self.retry.max_retry_after_s:g} s)"), status=status, retryable=True)
            if attempt == attempts - 1:
                break
            with self._lock:
                self.retries += 1
            if server_wait is not None:
                # A little jitter on top of the server's minimum spreads the threads that all waited.
                self._hold_all(server_wait + self._rng.uniform(0, 0.1 * server_wait))
            else:
                self._sleep(self.retry.backoff(attempt, self._rng))
        tries = f"after {attempts} attempts" if attempts > 1 else "(retries are off: --max-retries 0)"
        raise RequestFailed(self._redact(f"{problem} {tries}"), status=last_status, retryable=True)

    def cancel(self) -> None:
        """Make waiting and future requests fail at once (Ctrl-C): no thread sleeps through a backoff."""
        self._stop.set()

    def close(self) -> None:
        self.cancel()
        self._http.close()

    # ------------------------------------------------------------ internals

    def _decode(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            snippet = " ".join(response.text[:120].split()) or "(empty)"
            raise RequestFailed(self._redact(f"HTTP {response.status_code} but the body is not JSON: {snippet!r}"),
                                status=response.status_code) from None

    def _wait_turn(self) -> None:
        while True:
            if self._stop.is_set():
                raise RequestFailed("cancelled")
            with self._lock:
                delay = self._not_before - time.monotonic()
            if delay <= 0:
                return
            self._sleep(delay)

    def _hold_all(self, seconds: float) -> None:
        with self._lock:
            self._not_before = max(self._not_before, time.monotonic() + seconds)

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise RequestFailed("cancelled")

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _error_text(response: httpx.Response, limit: int = 200) -> str:
    """The server's error message: OpenAI's ``{"error": {"message": ...}}``, FastAPI's ``detail``, or the text."""
    try:
        doc = response.json()
    except ValueError:
        doc = None
    message: Any = None
    if isinstance(doc, dict):
        err = doc.get("error")
        message = err.get("message") if isinstance(err, dict) else err
        message = message or doc.get("message") or doc.get("detail")
    text = " ".join(str(message if message else response.text).split())
    return (text[: limit - 1] + "…" if len(text) > limit else text) or "(no message)"
