"""acc / acc_norm as lm-evaluation-harness defines them; cached, resumable scoring."""

from __future__ import annotations

import pytest

from evalkit.cache import GenerationCache
from evalkit.forgetting import load_panel, mc_metrics, score_items
from evalkit.models.fake import FakeBackend


def test_acc_and_acc_norm_on_a_hand_checked_item():
    # choice 0 "a" (1 char) ll -3.0 → per char -3.0; choice 1 "longer answer" (13 chars) ll -5.0 → -0.385
    # acc picks 0 (higher sum), acc_norm picks 1 (higher per character); gold is 1
    assert mc_metrics([-3.0, -5.0], ["a", "longer answer"], gold=1) == (0, 1, 0.0, 1.0)


def test_ties_go_to_the_first_choice_as_numpy_argmax():
    assert mc_metrics([-2.0, -2.0], ["ab", "ab"], gold=1)[:2] == (0, 0)


def test_acc_norm_counts_characters_not_bytes():
    # "é" is 1 character but 2 UTF-8 bytes: by characters -1.0/1 < -1.9/2, by bytes it would be -0.5 > -0.95
    assert mc_metrics([-1.0, -1.9], ["é", "ab"], gold=1)[1] == 1


def _backend(calls: list[int]) -> FakeBackend:
    def ll(request, arm):
        calls.append(1)
        return -float(len(request.continuation))  # shorter continuations are likelier

    return FakeBackend(lambda r, a: "", arms=["tuned"], loglikelihood=ll)


def test_scoring_records_every_choice_and_a_rerun_computes_nothing(tmp_path):
    items = load_panel("arc_easy")[:5]
    calls: list[int] = []
    backend = _backend(calls)
    with GenerationCache(tmp_path / "c.sqlite") as cache:
        first, computed = score_items(backend, cache, items, "base", None, {"backend": "fake"})
    assert computed == sum(len(it.choices) for it in items) == len(calls)
    assert [len(r.choices) for r in first] == [len(it.choices) for it in items]
    for r in first:
        lengths = [len(k) for k in r.item.continuations]
        assert r.pred == lengths.index(min(lengths))
        assert [c.logprob for c in r.choices] == [-float(n) for n in lengths]
    with GenerationCache(tmp_path / "c.sqlite") as cache:
        again, computed = score_items(backend, cache, items, "base", None, {"backend": "fake"})
    assert computed == 0 and all(r.cached for r in again)
    assert [r.choices for r in again] == [r.choices for r in first]


def test_cache_keys_separate_arms_and_backends(tmp_path):
    items = load_panel("arc_easy")[:2]
    calls: list[int] = []
    backend = _backend(calls)
    with GenerationCache(tmp_path / "c.sqlite") as cache:
        score_items(backend, cache, items, "base", None, {"backend": "fake"})
        _, adapter_new = score_items(backend, cache, items, "tuned", "fp-tuned", {"backend": "fake"})
        _, other_backend = score_items(backend, cache, items, "base", None, {"backend": "other"})
    assert adapter_new == other_backend == 8


@pytest.mark.parametrize("panel", ["winogrande"])
def test_partial_scoring_sends_each_option_as_its_own_context(panel):
    seen = []
    backend = FakeBackend(lambda r, a: "", loglikelihood=lambda r, a: seen.append(r) or -1.0)
    with GenerationCache(None) as cache:
        score_items(backend, cache, load_panel(panel)[:1], "base", None, {"backend": "fake"})
    assert [r.context for r in seen] == list(load_panel(panel)[0].contexts)
    assert len({r.continuation for r in seen}) == 1


@pytest.mark.slow
def test_arc_easy_on_the_embedded_model_matches_lm_evaluation_harness(embedded, tmp_path):
    """lm-evaluation-harness 0.4.13's arc_easy on SmolLM2-135M-Instruct, first 40 validation items: acc 0.500, acc_norm 0.425
    (benchmarks/lmeval_agreement.py reproduces them item by item, log-likelihoods equal to the last bit)."""
    from evalkit.models import HFBackend, LoadOptions

    backend = HFBackend(embedded, options=LoadOptions(device="cpu"))
    with GenerationCache(None) as cache:
        results, _ = score_items(backend, cache, load_panel("arc_easy")[:40], "base", None, backend.identity())
    assert sum(r.metrics["acc"] for r in results) == 20 and sum(r.metrics["acc_norm"] for r in results) == 17
