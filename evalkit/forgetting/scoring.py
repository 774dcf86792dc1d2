"""Multiple-choice scoring by log-likelihood, with lm-evaluation-harness's definitions.

For each choice: the summed log-probability of its continuation given its context
(``Backend.loglikelihood``). Then, as lm-evaluation-harness's ``process_results``:

    acc       1 if argmax_i  ll_i             is the gold choice
    acc_norm  1 if argmax_i  ll_i / len(c_i)  is the gold choice, len in characters of doc_to_choice

``numpy.argmax`` picks the first of equal values, as there. lm-evaluation-harness's
``acc_bytes`` (dividing by UTF-8 bytes) is not provided: it equals acc_norm on ASCII
choices and no panel here reports it.

Log-likelihoods are cached in the sqlite cache's ``results`` table under keys built
like generation keys (backend identity, model and adapter fingerprints, the request),
committed every chunk of items, so an interrupted run resumes and a repeated one
computes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evalkit._util import canonical_json
from evalkit.cache import GenerationCache, cache_key
from evalkit.forgetting.panels import MCItem
from evalkit.models.base import Backend, LoglikelihoodRequest, LoglikelihoodResult

__all__ = ["ItemResult", "mc_metrics", "score_items"]

ITEMS_PER_CALL = 32
"""Items per backend call (and per cache commit): all choices of an item go to one call."""

_KIND = {"task": "loglikelihood"}
"""Stands where a generation key has its decoding parameters."""


@dataclass(frozen=True)
class ItemResult:
    """One item in one arm: every choice's log-likelihood and the item's metrics."""

    item: MCItem
    arm: str
    choices: tuple[LoglikelihoodResult, ...]
    pred: int
    """argmax of the log-likelihoods."""
    pred_norm: int
    """argmax of log-likelihood / characters of the choice."""
    cached: bool

    @property
    def metrics(self) -> dict[str, float]:
        return {"acc": float(self.pred == self.item.gold), "acc_norm": float(self.pred_norm == self.item.gold)}


def mc_metrics(logprobs: Sequence[float], choices: Sequence[str], gold: int) -> tuple[int, int, float, float]:
    """(pred, pred_norm, acc, acc_norm) exactly as lm-evaluation-harness's multiple-choice ``process_results``."""
    lls = np.asarray(logprobs, dtype=np.float64)
    lengths = np.array([float(len(c)) for c in choices])
    pred, pred_norm = int(np.argmax(lls)), int(np.argmax(lls / lengths))
    return pred, pred_norm, float(pred == gold), float(pred_norm == gold)


def _requests(item: MCItem) -> list[LoglikelihoodRequest]:
    return [LoglikelihoodRequest(context=c, continuation=k) for c, k in zip(item.contexts, item.continuations)]


def request_key(identity: dict[str, Any], model_fp: str, adapter_fp: str | None, request: LoglikelihoodRequest) -> str:
    """The cache key of one log-likelihood request (a generation key with the request as its prompt)."""
    prompt = canonical_json(["loglikelihood", request.context, request.continuation])
    return cache_key(identity, model_fp, adapter_fp, prompt, _KIND)


def score_items(
    backend: Backend,
    cache: GenerationCache,
    items: Sequence[MCItem],
    arm: str,
    adapter_fp: str | None,
    identity: dict[str, Any],
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[ItemResult], int]:
    """Score every item in ``arm``; returns the results (in item order) and how many requests were computed."""
    reqs = {it.id: _requests(it) for it in items}
    keys = {it.id: [request_key(identity, backend.base.fingerprint, adapter_fp, r) for r in reqs[it.id]] for it in items}
    hits = cache.get_results([k for ks in keys.values() for k in ks])
    done = {it.id for it in items if all(k in hits for k in keys[it.id])}
    todo = [it for it in items if it.id not in done]
    # Longest first, so a chunk's items have similar lengths (the backend sorts within a call too).
    todo.sort(key=lambda it: -max(len(c) + len(k) for c, k in zip(it.contexts, it.continuations)))
    computed = 0
    if progress:
        progress(len(done), len(items))
    for start in range(0, len(todo), ITEMS_PER_CALL):
        chunk = todo[start : start + ITEMS_PER_CALL]
        flat = [r for it in chunk for r in reqs[it.id]]
        out = backend.loglikelihood(flat, arm)
        entries = [(k, _to_json(res)) for k, res in zip((k for it in chunk for k in keys[it.id]), out)]
        cache.put_results("loglikelihood", entries)
        hits.update(entries)
        computed += len(flat)
        if progress:
            progress(len(done) + start + len(chunk), len(items))
    results = []
    for it in items:
        scores = tuple(LoglikelihoodResult(**hits[k]) for k in keys[it.id])
        pred, pred_norm, _, _ = mc_metrics([s.logprob for s in scores], it.choices, it.gold)
        results.append(ItemResult(it, arm, scores, pred, pred_norm, cached=it.id in done))
    return results, computed


def _to_json(res: LoglikelihoodResult) -> dict[str, Any]:
    return {"logprob": res.logprob, "tokens": res.tokens, "is_greedy": res.is_greedy}
