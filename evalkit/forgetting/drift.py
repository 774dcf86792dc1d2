"""KL drift: how far an adapter moves the next-token distribution on general text.

On reference passages, teacher-forced, with one loaded model and the adapter toggled
(``Backend.kl_drift``): per position KL(base ‖ adapter) over the full vocabulary, and
whether both arms rank the same token first. Reported per adapter arm: the mean
per-token KL (token-weighted), top-1 agreement, and p50/p90/max of the passages'
mean KL. KL ≈ 0 means the adapter changed nothing: not loaded, or freshly
initialised (LoRA B = 0); no benchmark delta detects that as directly.

The reference corpus is general English prose built from the data package itself:
HellaSwag validation contexts with their correct endings (ActivityNet captions and
WikiHow steps), cleaned as lm-evaluation-harness cleans them, a seeded sample of
``passages`` of them. Per-passage results are cached like log-likelihoods.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from evalkit._util import canonical_json
from evalkit.cache import GenerationCache, cache_key
from evalkit.forgetting.panels import load_panel
from evalkit.models.base import Backend, PassageDrift
from evalkit.records import DriftStats

__all__ = ["PASSAGE_SEED", "drift_stats", "measure_drift", "reference_passages"]

PASSAGE_SEED = 1234
"""Fixed: the reference passages do not move with the panels' subsample seed."""

PASSAGES_PER_CALL = 8


def reference_passages(count: int) -> list[tuple[str, str]]:
    """``count`` (id, text) passages: HellaSwag validation contexts with their gold endings, seeded sample."""
    items = load_panel("hellaswag")
    chosen = sorted(random.Random(PASSAGE_SEED).sample(range(len(items)), min(count, len(items))))
    return [(items[i].id, items[i].contexts[0] + items[i].continuations[items[i].gold]) for i in chosen]


def _key(identity: dict[str, Any], model_fp: str, adapter_fp: str, text: str, max_tokens: int) -> str:
    return cache_key(identity, model_fp, adapter_fp, canonical_json(["kl_drift", text]), {"task": "kl_drift", "max_tokens": max_tokens})


def measure_drift(
    backend: Backend,
    cache: GenerationCache,
    passages: Sequence[tuple[str, str]],
    arm: str,
    adapter_fp: str,
    identity: dict[str, Any],
    max_tokens: int,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[PassageDrift], int]:
    """Per-passage drift of ``arm`` (in passage order) and how many passages were computed (not cached)."""
    keys = [_key(identity, backend.base.fingerprint, adapter_fp, text, max_tokens) for _, text in passages]
    hits = cache.get_results(keys)
    todo = [i for i, k in enumerate(keys) if k not in hits]
    if progress:
        progress(len(passages) - len(todo), len(passages))
    kl_drift = getattr(backend, "kl_drift")
    for start in range(0, len(todo), PASSAGES_PER_CALL):
        chunk = todo[start : start + PASSAGES_PER_CALL]
        out = kl_drift([passages[i][1] for i in chunk], arm, max_tokens=max_tokens)
        entries = [(keys[i], {"tokens": d.tokens, "kl_sum": d.kl_sum, "kl_max": d.kl_max, "top1_agree": d.top1_agree}) for i, d in zip(chunk, out)]
        cache.put_results("kl_drift", entries)
        hits.update(entries)
        if progress:
            progress(len(passages) - len(todo) + start + len(chunk), len(passages))
    return [PassageDrift(**hits[k]) for k in keys], len(todo)


def drift_stats(arm: str, drifts: Sequence[PassageDrift]) -> DriftStats:
    """Summarize one arm's per-passage drift (passages with no token are left out)."""
    kept = [d for d in drifts if d.tokens > 0]
    tokens = sum(d.tokens for d in kept)
    if not kept:
        nan = float("nan")
        return DriftStats(arm, 0, 0, nan, nan, nan, nan, nan, nan)
    means = np.array([d.kl_sum / d.tokens for d in kept])
    return DriftStats(
        arm=arm,
        passages=len(kept),
        tokens=tokens,
        mean_kl=sum(d.kl_sum for d in kept) / tokens,
        top1_agreement=sum(d.top1_agree for d in kept) / tokens,
        p50=float(np.percentile(means, 50)),
        p90=float(np.percentile(means, 90)),
        max=float(means.max()),
        max_token_kl=max(d.kl_max for d in kept),
    )
