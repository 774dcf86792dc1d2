"""An in-memory backend: scripted answers, no torch, no weights.

For tests of the runner, cache, metrics and reports, and for plugin authors who
want to try a metric on fixed outputs::

    from evalkit.models.fake import FakeBackend
    backend = FakeBackend(lambda request, arm: '{"severity": "SEV1"}' if arm == "tuned" else "no idea",
                          arms=["tuned"])
    run_suite(suite, options, backend=backend)

It records every call, so a test can count what was generated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from evalkit._util import canonical_json, sha256_text
from evalkit.models.adapters import AdapterRef
from evalkit.models.base import BackendOutput, GenerateRequest, LoglikelihoodRequest, LoglikelihoodResult, Message
from evalkit.models.resolve import ResolvedModel

__all__ = ["FakeBackend"]

Respond = Callable[[GenerateRequest, str], str]
"""``respond(request, arm) -> text``; raise to make that request fail (recorded as an item error)."""
Score = Callable[[LoglikelihoodRequest, str], float]
"""``score(request, arm) -> log-probability``."""


class FakeBackend:
    """A backend whose answers come from a function of (request, arm)."""

    name = "fake"

    def __init__(self, respond: Respond, arms: Sequence[str] = (), *, loglikelihood: Score | None = None, model: str = "fake") -> None:
        self._respond = respond
        self._score = loglikelihood
        self.base = ResolvedModel(spec=model, path=None, fingerprint=sha256_text(f"fake:{model}"), source="fake")
        self.adapters = tuple(AdapterRef(name=a, path=None, fingerprint=sha256_text(f"fake:{model}:{a}")) for a in arms)
        self.capabilities = frozenset({"generate"} | ({"loglikelihood"} if loglikelihood else set()))
        self.generate_calls: list[tuple[str, int]] = []
        """(arm, number of requests) for each ``generate`` call."""
        self.loglikelihood_calls: list[tuple[str, int]] = []

    def identity(self) -> dict[str, Any]:
        return {"backend": self.name}

    @property
    def template_hash(self) -> str:
        return ""

    def render(self, messages: Sequence[Message]) -> str:
        return canonical_json(list(messages))

    def count_tokens(self, prompt: str) -> int:
        return len(prompt.split())

    @property
    def generated(self) -> int:
        """Requests answered so far, over all arms."""
        return sum(n for _, n in self.generate_calls)

    def generate(self, requests: Sequence[GenerateRequest], arm: str, decoding: dict[str, Any]) -> list[BackendOutput]:
        self.generate_calls.append((arm, len(requests)))
        out = []
        for r in requests:
            try:
                text = self._respond(r, arm)
            except Exception as exc:  # scripted failure: the item is recorded as an error
                out.append(BackendOutput(text="", prompt_tokens=0, completion_tokens=0, error=f"{type(exc).__name__}: {exc}"))
                continue
            out.append(BackendOutput(text=text, prompt_tokens=self.count_tokens(r.prompt), completion_tokens=len(text.split())))
        return out

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], arm: str) -> list[LoglikelihoodResult]:
        assert self._score is not None, "FakeBackend was built without a loglikelihood function"
        self.loglikelihood_calls.append((arm, len(requests)))
        results = []
        for r in requests:
            lp = float(self._score(r, arm))
            results.append(LoglikelihoodResult(logprob=lp, is_greedy=math.isclose(lp, 0.0), tokens=max(1, len(r.continuation.split()))))
        return results

    def close(self) -> None:
        pass
