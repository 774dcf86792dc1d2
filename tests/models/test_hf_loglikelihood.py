"""HFBackend.loglikelihood and kl_drift against direct computations from the model's logits (tiny model)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from evalkit.forgetting import load_panel
from evalkit.models import HFBackend, LoadOptions, LoglikelihoodRequest, resolve_adapter
from evalkit.models.hf import encode_pair


def _zero_adapter(base_dir: Path, out: Path) -> Path:
    """A freshly initialised LoRA: B = 0, so the adapted model computes exactly what the base does."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def zero_adapter(tiny_model_dir, tmp_path_factory) -> Path:
    return _zero_adapter(tiny_model_dir, tmp_path_factory.mktemp("zero") / "zero-lora")


def _requests() -> list[LoglikelihoodRequest]:
    """The choices of three ARC-Easy items and two WinoGrande items (shared continuation, different contexts)."""
    out = []
    for it in load_panel("arc_easy")[:3] + load_panel("winogrande")[:2]:
        out += [LoglikelihoodRequest(c, k) for c, k in zip(it.contexts, it.continuations)]
    return out


def _direct(model, tokenizer, request: LoglikelihoodRequest) -> float:
    """One request alone: full forward pass, no padding, log-softmax over every position, sum the continuation's."""
    ctx, cont = encode_pair(tokenizer, request.context, request.continuation)
    ids = torch.tensor([ctx + cont])
    with torch.inference_mode():
        logprobs = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
    return sum(float(logprobs[len(ctx) - 1 + j, t]) for j, t in enumerate(cont))


@pytest.mark.parametrize("batch_size", [1, 8])
def test_loglikelihood_equals_a_direct_computation_from_the_logits(tiny_model, batch_size):
    backend = HFBackend(tiny_model, options=LoadOptions(device="cpu"))
    requests = _requests()
    got = backend.loglikelihood(requests, "base", batch_size=batch_size)
    for request, result in zip(requests, got):
        assert result.logprob == pytest.approx(_direct(backend.model, backend.tokenizer, request), abs=1e-4)
        assert result.tokens == len(encode_pair(backend.tokenizer, request.context, request.continuation)[1])


def test_identical_model_inputs_share_one_row_and_keep_request_order(tiny_model):
    backend = HFBackend(tiny_model, options=LoadOptions(device="cpu"))
    # one-token continuations of one context: one model input ("Answer:" + nothing), as HFLM's group_by="contexts"
    requests = [LoglikelihoodRequest("Question: Is the sky blue?\nAnswer:", c) for c in (" yes", " no", " maybe")]
    assert all(len(encode_pair(backend.tokenizer, r.context, r.continuation)[1]) == 1 for r in requests)
    got = backend.loglikelihood(requests, "base")
    assert [r.logprob for r in got] == pytest.approx([_direct(backend.model, backend.tokenizer, r) for r in requests], abs=1e-4)
    assert len({r.logprob for r in got}) == 3


def test_adapter_arm_scores_with_the_adapter_and_base_arm_without(tiny_model, tiny_adapter):
    backend = HFBackend(tiny_model, [resolve_adapter(str(tiny_adapter))], LoadOptions(device="cpu"))
    requests = _requests()[:4]
    base = backend.loglikelihood(requests, "base")
    adapted = backend.loglikelihood(requests, "tiny-lora")
    plain = HFBackend(tiny_model, options=LoadOptions(device="cpu")).loglikelihood(requests, "base")
    assert [r.logprob for r in base] == pytest.approx([r.logprob for r in plain], abs=1e-5)
    assert any(abs(a.logprob - b.logprob) > 1e-3 for a, b in zip(adapted, base))


def test_empty_context_is_the_prefix_token_as_in_hflm(tiny_model):
    tok = HFBackend(tiny_model, options=LoadOptions(device="cpu")).tokenizer
    assert encode_pair(tok, "", " Paris") == ([tok.bos_token_id], tok(" Paris", add_special_tokens=False).input_ids)
    assert encode_pair(tok, "Capital:  ", "Paris")[1] == tok("Capital:  Paris", add_special_tokens=False).input_ids[len(tok("Capital:", add_special_tokens=False).input_ids):]


def test_kl_drift_of_a_zero_adapter_is_zero_with_full_agreement(tiny_model, zero_adapter):
    backend = HFBackend(tiny_model, [resolve_adapter(str(zero_adapter))], LoadOptions(device="cpu"))
    drifts = backend.kl_drift(["The cat sat on the mat and looked out of the window.", "Short text."], "zero-lora")
    assert [d.tokens for d in drifts] == [len(backend.tokenizer(t).input_ids) for t in ["The cat sat on the mat and looked out of the window.", "Short text."]]
    for d in drifts:
        assert d.kl_sum == pytest.approx(0.0, abs=1e-6) and d.kl_max == pytest.approx(0.0, abs=1e-6)
        assert d.top1_agree == d.tokens


def test_kl_drift_equals_a_direct_computation(tiny_model, tiny_adapter):
    backend = HFBackend(tiny_model, [resolve_adapter(str(tiny_adapter))], LoadOptions(device="cpu"))
    texts = ["A man is sitting on a roof. He starts pulling up roofing.", "Water boils at one hundred degrees."]
    drifts = backend.kl_drift(texts, "tiny-lora", batch_size=2)
    for text, d in zip(texts, drifts):
        ids = torch.tensor([[backend.tokenizer.bos_token_id, *backend.tokenizer(text, add_special_tokens=False).input_ids]])
        with torch.inference_mode():
            with backend.arm("base") as m:
                p = torch.log_softmax(m(ids).logits[0, :-1].float(), dim=-1)
            with backend.arm("tiny-lora") as m:
                q = torch.log_softmax(m(ids).logits[0, :-1].float(), dim=-1)
        kl = (p.exp() * (p - q)).sum(-1)
        assert d.tokens == ids.shape[1] - 1
        assert d.kl_sum == pytest.approx(float(kl.sum()), rel=1e-4)
        assert d.kl_sum > 0.01
        assert d.top1_agree == int((p.argmax(-1) == q.argmax(-1)).sum())


def test_capabilities_include_kl_drift(tiny_model):
    assert {"loglikelihood", "kl_drift"} <= HFBackend(tiny_model, options=LoadOptions(device="cpu")).capabilities
