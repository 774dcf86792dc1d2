"""The judge handle a model-backed metric receives: ask for JSON verdicts, get validated ones back.

    verdicts = judge.ask([JudgeRequest(messages, schema, "claim_verdict"), ...], samples=1, label="faithfulness")
    verdicts[i][0]        # the greedy verdict on request i: a JudgeReply (ok, parse_failure or call_error)

What happens to each request, in order:

1. **Cache.** The key covers the judge's identity (backend, engine version or endpoint,
   model fingerprint), the rendered prompt, the verdict schema and response format, and the
   decoding. A hit is returned as it was: a re-run of a judged suite sends no request.
2. **Ask**, in batches, through the judge's backend, with every sampling parameter explicit
   (sample 1: temperature 0; samples 2..k: ``sample_temperature`` with seeds seed+1..seed+k-1).
3. **Validate** the reply against the schema (:mod:`evalkit.judges.parse`). A reply with a
   problem gets **one repair turn**; if that fails too, the verdict is a *parse failure*.
4. **Store** ok verdicts and parse failures (the judge's answer, deterministic at temperature 0)
   batch by batch, so an interrupted judging phase resumes. A request that failed after the
   endpoint's retries (a *call error*) is not stored: the next run asks again.

Parse failures and call errors become recorded item errors in the metrics (never a 0, never a
pass), and the run goes on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from evalkit._util import canonical_json
from evalkit.cache import GenerationCache, cache_key
from evalkit.errors import EvalkitError, JudgeError
from evalkit.judges.config import JudgeConfig
from evalkit.judges.parse import ReplyProblem, parse_reply, repair_messages, response_format
from evalkit.models.base import Backend, BackendOptions, GenerateRequest, LoadOptions, Message

__all__ = ["CALL_ERROR", "PARSE_FAILURE", "Judge", "JudgeReply", "JudgeRequest", "unbound_judge"]

PARSE_FAILURE = "judge reply did not parse"
"""Prefix of the recorded error of a verdict that failed validation twice (the report counts these)."""
CALL_ERROR = "judge call failed"
"""Prefix of the recorded error of a judge request that failed after its retries."""

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class JudgeRequest:
    """One verdict to ask for."""

    messages: tuple[Message, ...]
    """The conversation sent to the judge (it never names the arm that wrote an answer)."""
    schema: dict[str, Any]
    """The JSON Schema the reply must match."""
    name: str
    """The schema's name (``response_format.json_schema.name``), e.g. ``claim_verdict``."""
    example: str = ""
    """The reply format as the prompt shows it (literal JSON); the repair turn shows it again."""


@dataclass(frozen=True)
class JudgeReply:
    """One verdict: a validated JSON object, or why there is none."""

    kind: Literal["ok", "parse_failure", "call_error"]
    value: dict[str, Any] | None = None
    """The validated JSON object (``kind == "ok"``)."""
    error: str | None = None
    """Why there is no value, starting with :data:`PARSE_FAILURE` or :data:`CALL_ERROR`."""
    text: str = ""
    """The judge's first reply, as it came."""
    repair_text: str | None = None
    """The reply to the repair turn, when there was one."""
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    def to_cache(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value, "error": self.error, "text": self.text, "repair_text": self.repair_text}

    @classmethod
    def from_cache(cls, doc: dict[str, Any]) -> JudgeReply:
        return cls(kind=doc["kind"], value=doc.get("value"), error=doc.get("error"), text=doc.get("text", ""),
                   repair_text=doc.get("repair_text"), cached=True)


@dataclass
class JudgeStats:
    """What the judge did for one label (a metric), over a run."""

    verdicts: int = 0
    """Verdicts returned (samples included)."""
    cached: int = 0
    """Of them, taken from the cache."""
    calls: int = 0
    """Requests sent to the judge's backend (repair turns included)."""
    repaired: int = 0
    """Verdicts that needed the repair turn and then validated."""
    parse_failures: int = 0
    call_errors: int = 0


class Judge:
    """A judge model behind a backend, with the cache, the repair turn and the counts.

    Built from a :class:`JudgeConfig` when the run is planned (nothing is opened), bound to
    the run's backend and cache with :meth:`bind` (the judge's backend is constructed there,
    so a dead endpoint fails before generation; weights load on the first cache miss), and
    closed with :meth:`close`.

    Args:
        config: the judge's settings.
        backend: use this backend as the judge (tests, the Python API); the caller closes it.
    """

    def __init__(self, config: JudgeConfig, *, backend: Backend | None = None) -> None:
        self.config = config
        self._given = backend
        self._backend: Backend | None = None
        self._owned = False
        self._cache: GenerationCache | None = None
        self._progress: Progress | None = None
        self.reused_run_base = False
        """True when the judge is the run's own base model on the run's backend (no second load)."""
        self.stats: dict[str, JudgeStats] = defaultdict(JudgeStats)
        """label (the metric's name in the suite) → what the judge did for it."""
        self.label = "judge"
        """The label of the verdicts asked now (``Metric.score_many`` sets it to the metric's name)."""
        self.bound = False

    # ------------------------------------------------------------ lifecycle

    def use(self, backend: Backend) -> None:
        """Judge with this backend instead of opening the configured one (tests, the Python API); the caller closes it."""
        self._given = backend

    def bind(self, *, run_backend: Backend | None = None, cache: GenerationCache | None = None,
             progress: Progress | None = None, allow_network: bool = False) -> None:
        """Construct the judge's backend (reusing the run's loaded base when it is the same model) and attach the cache.

        Raises:
            JudgeError: the judge's model or endpoint cannot be used (named with the setting to fix).
        """
        self._cache, self._progress = cache, progress
        if self._given is not None:
            self._backend, self._owned = self._given, False
        else:
            self._backend = self._open(run_backend, allow_network)
        self.bound = True

    def _open(self, run_backend: Backend | None, allow_network: bool) -> Backend:
        from evalkit.models.base import open_backend

        c = self.config
        options = BackendOptions(
            load=LoadOptions(dtype=c.dtype) if c.backend != "openai" else LoadOptions(),
            allow_network=allow_network, endpoint=c.endpoint, api_key_env=c.api_key_env,
            concurrency=c.concurrency, timeout_s=c.timeout_s, max_retries=c.max_retries,
        )
        try:
            backend = open_backend(c.backend, c.model, (), options)
        except EvalkitError as exc:
            raise JudgeError(f"{c.where}: the judge {c.backend}:{c.model} cannot be used: {exc}") from None
        if run_backend is not None and _same_model(backend, run_backend):
            # One base load per run: the judge is the run's base, served by the run's backend (base arm).
            backend.close()
            self.reused_run_base = True
            self._owned = False
            return run_backend
        self._owned = True
        return backend

    def close(self) -> None:
        """Close the judge's backend if the judge opened it (never the run's own)."""
        if self._backend is not None and self._owned:
            self._backend.close()
        self._backend, self._owned, self.bound = None, False, False

    # ------------------------------------------------------------ asking

    @contextmanager
    def labelled(self, label: str) -> Iterator[None]:
        """Count the verdicts asked inside the block under ``label``, and show it on the progress bar."""
        previous, self.label = self.label, label
        try:
            yield
        finally:
            self.label = previous

    def ask(self, requests: Sequence[JudgeRequest], *, samples: int = 1, label: str | None = None) -> list[list[JudgeReply]]:
        """``samples`` verdicts per request (the first greedy), from the cache where possible.

        Raises:
            JudgeError: the judge is not bound (a metric asked outside ``evalkit run`` or calibrate).
        """
        if not self.bound or self._backend is None:
            raise JudgeError("the judge is not bound to a backend: model-backed metrics score inside `evalkit run` "
                             "or `evalkit judge calibrate` (or after Judge.bind in the Python API)")
        if samples < 1:
            raise ValueError(f"samples must be at least 1, not {samples}")
        backend = self._backend
        label = label or self.label
        stats = self.stats[label]
        jobs = [(i, j) for i in range(len(requests)) for j in range(samples)]
        rendered = [backend.render(r.messages) for r in requests]
        identity = {**backend.identity(), "judge_model": backend.base.fingerprint}
        keys = {(i, j): self._key(identity, rendered[i], requests[i], j) for i, j in jobs}
        hits = self._cache.get_results(list(keys.values())) if self._cache is not None else {}
        results: dict[tuple[int, int], JudgeReply] = {job: JudgeReply.from_cache(hits[k]) for job, k in keys.items() if k in hits}
        stats.cached += len(results)
        total, done = len(jobs), len(results)
        todo = [job for job in jobs if job not in results]
        if self._progress and todo:
            self._progress(label, done, total)
        for j in range(samples):
            # Longest prompts first, as generation does: little padding per batch.
            batch_jobs = sorted((job for job in todo if job[1] == j), key=lambda job: -backend.count_tokens(rendered[job[0]]))
            for start in range(0, len(batch_jobs), self.config.batch_size):
                chunk = batch_jobs[start : start + self.config.batch_size]
                replies = self._ask_batch(backend, [requests[i] for i, _ in chunk], [rendered[i] for i, _ in chunk], j, stats)
                for job, reply in zip(chunk, replies):
                    results[job] = reply
                if self._cache is not None:
                    self._cache.put_results("judge", [(keys[job], r.to_cache()) for job, r in zip(chunk, replies) if r.kind != "call_error"])
                done += len(chunk)
                if self._progress:
                    self._progress(label, done, total)
        out = [[results[(i, j)] for j in range(samples)] for i in range(len(requests))]
        for replies in out:
            for r in replies:
                stats.verdicts += 1
                stats.parse_failures += r.kind == "parse_failure"
                stats.call_errors += r.kind == "call_error"
        return out

    def _decoding(self, sample: int) -> dict[str, Any]:
        c = self.config
        if sample == 0:  # seed sent as well: some servers sample a little even at temperature 0
            return {"max_new_tokens": c.max_new_tokens, "do_sample": False, "seed": c.seed}
        return {"max_new_tokens": c.max_new_tokens, "do_sample": True, "temperature": c.sample_temperature, "top_p": 1.0,
                "seed": c.seed + sample}

    def _format(self, request: JudgeRequest) -> dict[str, Any] | None:
        return response_format(self.config.response_format, request.name, request.schema)

    def _key(self, identity: dict[str, Any], prompt: str, request: JudgeRequest, sample: int) -> str:
        decoding = self._decoding(sample)
        if decoding["do_sample"]:
            identity = {**identity, "batch_size": self.config.batch_size}  # sampled outputs depend on the batch
        shape = {"schema": request.schema, "response_format": self._format(request), "repair": 1}
        return cache_key({"judge": identity}, "", None, prompt + canonical_json(shape), decoding)

    def _ask_batch(self, backend: Backend, requests: Sequence[JudgeRequest], prompts: Sequence[str], sample: int,
                   stats: JudgeStats) -> list[JudgeReply]:
        decoding = self._decoding(sample)
        first = backend.generate([GenerateRequest(messages=r.messages, prompt=p, response_format=self._format(r))
                                  for r, p in zip(requests, prompts)], "base", decoding)
        stats.calls += len(requests)
        replies: list[JudgeReply | None] = [None] * len(requests)
        repairs: list[tuple[int, list[Message], str]] = []  # (index, conversation, first problem)
        for k, (request, out) in enumerate(zip(requests, first)):
            if out.error is not None:
                replies[k] = JudgeReply("call_error", error=f"{CALL_ERROR}: {out.error}", text="")
                continue
            try:
                replies[k] = JudgeReply("ok", value=parse_reply(out.text, request.schema), text=out.text)
            except ReplyProblem as exc:
                repairs.append((k, repair_messages(request.messages, out.text, str(exc), request.schema, request.example), str(exc)))
        if repairs:
            second = backend.generate([GenerateRequest(messages=tuple(conv), prompt=backend.render(conv),
                                                       response_format=self._format(requests[k])) for k, conv, _ in repairs],
                                      "base", decoding)
            stats.calls += len(repairs)
            for (k, _, problem), out in zip(repairs, second):
                request, text = requests[k], first[k].text
                if out.error is not None:
                    replies[k] = JudgeReply("call_error", error=f"{CALL_ERROR} (repair turn): {out.error}", text=text)
                    continue
                try:
                    replies[k] = JudgeReply("ok", value=parse_reply(out.text, request.schema), text=text, repair_text=out.text)
                    stats.repaired += 1
                except ReplyProblem as exc:
                    replies[k] = JudgeReply("parse_failure", text=text, repair_text=out.text,
                                            error=f"{PARSE_FAILURE} (after one repair): {exc}; first reply: {problem}")
        return [r for r in replies if r is not None]

    # ------------------------------------------------------------ what the manifest records

    def describe(self) -> dict[str, Any]:
        """The manifest's ``extra["judge"]``: who judged, with what, and what it cost."""
        identity = self.config.identity()
        if self._backend is not None:
            if self._given is not None:  # a backend handed in: describe it, not the configured judge
                identity = {"backend": self._backend.name, "model": self._backend.base.spec}
            identity["fingerprint"] = self._backend.base.fingerprint
            identity["engine"] = self._backend.identity()
        identity["reused_run_base"] = self.reused_run_base
        return {
            **identity,
            "params": self.config.params(),
            "stats": {label: vars(s).copy() for label, s in self.stats.items()},
        }


def _same_model(judge: Backend, run: Backend) -> bool:
    """The judge backend would compute exactly what the run's base arm computes (same engine, options, weights)."""
    try:
        return judge.name == run.name and judge.identity() == run.identity() and judge.base.fingerprint == run.base.fingerprint
    except Exception:  # a plugin backend that cannot say: do not share
        return False


def unbound_judge() -> Judge:
    """A handle that refuses to be asked: what metrics get when only their parameters are checked."""
    return Judge(JudgeConfig())
