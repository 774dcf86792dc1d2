"""The fast greedy loop (evalkit/models/greedy.py), with or without packed weights, produces transformers' ``generate`` texts, token for token."""

from __future__ import annotations

import pytest

from tests.conftest import REPORTS

torch = pytest.importorskip("torch")

from evalkit.models.greedy import common_prefix_length, greedy_generate, supports_fast_greedy  # noqa: E402
from evalkit.models.packed import PackedLinears, packing_available  # noqa: E402

needs_packing = pytest.mark.skipif(not packing_available(), reason="this torch build has no oneDNN linear packing")


def _prompts(tokenizer, n: int) -> list[list[int]]:
    """Chat-rendered prompts sharing a system prompt, of different lengths (like a suite's)."""
    rendered = [tokenizer.apply_chat_template([{"role": "system", "content": "Answer with JSON."},
                                               {"role": "user", "content": REPORTS[i % len(REPORTS)] + " (#" + "x" * (i % 5) + ")"}],
                                              add_generation_prompt=True, tokenize=False) for i in range(n)]
    return tokenizer(rendered, add_special_tokens=False).input_ids


def _hf_generate(model, tokenizer, prompts: list[list[int]], batch_size: int, max_new_tokens: int, stop_ids: list[int]) -> list[list[int]]:
    """transformers' generate, left-padded batches, each row cut after its first stop id (as HFBackend does)."""
    out: list[list[int]] = []
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        enc = tokenizer.pad({"input_ids": batch}, return_tensors="pt")
        with torch.inference_mode():
            gen = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=stop_ids, pad_token_id=tokenizer.pad_token_id)
        for row in gen[:, enc["input_ids"].shape[1] :].tolist():
            stop = next((i for i, t in enumerate(row) if t in stop_ids), None)
            out.append(row[: stop + 1] if stop is not None else row)
    return out


def _fast(model, prompts, batch_size, max_new_tokens, stop_ids, pad_id, **kw) -> list[list[int]]:
    out: list[list[int]] = []
    for start in range(0, len(prompts), batch_size):
        out += greedy_generate(model, prompts[start : start + batch_size], max_new_tokens=max_new_tokens, stop_ids=stop_ids, pad_id=pad_id, **kw)
    return out


@pytest.fixture(scope="module")
def tiny(tiny_model):
    from transformers import AutoModelForCausalLM

    from evalkit.models.hf import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model.path).eval()
    return model, load_tokenizer(tiny_model)


@pytest.fixture(scope="module")
def stopping(tiny):
    """Prompts plus stop ids picked from the model's own outputs, so rows end at different steps."""
    model, tok = tiny
    prompts = _prompts(tok, 12)
    free = _hf_generate(model, tok, prompts, 12, 16, [tok.eos_token_id])
    # Tokens that rows produce at different steps: rows stop early, late or never.
    candidates = [row[k] for k, row in zip((2, 5, 9), free[::4])]
    return prompts, sorted(set(candidates) | {tok.eos_token_id}), free


def test_stop_ids_end_rows_at_different_steps(reference):
    """The fixture exercises what it claims: some rows stop early, some run to the limit."""
    lengths = {len(r) for r in reference(12)}
    assert len(lengths) >= 3 and 16 in lengths


@pytest.fixture(scope="module")
def reference(tiny, stopping):
    """generate's outputs per batch size, computed once for the tests below."""
    model, tok = tiny
    prompts, stops, _ = stopping
    memo: dict[int, list[list[int]]] = {}

    def _at(batch_size: int) -> list[list[int]]:
        if batch_size not in memo:
            memo[batch_size] = _hf_generate(model, tok, prompts, batch_size, 16, stops)
        return memo[batch_size]

    return _at


@pytest.mark.parametrize("batch_size", [1, 5, 12])
@pytest.mark.parametrize("share_prefix,drop_finished", [(True, True), (False, False), (True, False), (False, True)])
def test_fast_greedy_matches_generate(tiny, stopping, reference, batch_size, share_prefix, drop_finished):
    model, tok = tiny
    prompts, stops, _ = stopping
    want = reference(batch_size)
    got = _fast(model, prompts, batch_size, 16, stops, tok.pad_token_id, share_prefix=share_prefix, drop_finished=drop_finished)
    assert got == want


def test_fast_greedy_same_text_at_every_batch_size(tiny, stopping):
    model, tok = tiny
    prompts, stops, _ = stopping
    one = _fast(model, prompts, 1, 16, stops, tok.pad_token_id)
    assert all(_fast(model, prompts, bs, 16, stops, tok.pad_token_id) == one for bs in (3, 7, 12))


def test_fast_greedy_matches_generate_on_an_adapter(tiny_model, tiny_adapter, stopping):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from evalkit.models.hf import load_tokenizer

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model.path), str(tiny_adapter)).eval()
    tok = load_tokenizer(tiny_model)
    prompts, stops, _ = stopping
    assert _fast(model, prompts, 5, 16, stops, tok.pad_token_id) == _hf_generate(model, tok, prompts, 5, 16, stops)


def test_fast_greedy_stops_at_max_new_tokens_and_keeps_the_stop_token(tiny, stopping):
    model, tok = tiny
    prompts, stops, _ = stopping
    rows = _fast(model, prompts, 12, 16, stops, tok.pad_token_id)
    assert all(len(r) <= 16 for r in rows)
    assert all(r[-1] in stops and not set(r[:-1]) & set(stops) for r in rows if len(r) < 16)


def test_fast_greedy_handles_no_work(tiny):
    model, tok = tiny
    assert greedy_generate(model, [], max_new_tokens=4, stop_ids=[0], pad_id=0) == []
    assert greedy_generate(model, [[1, 2, 3]], max_new_tokens=0, stop_ids=[0], pad_id=0) == [[]]


def test_identical_prompts_keep_a_token_of_their_own(tiny, stopping):
    """Prompts that are all the same: the shared prefix stops one token short, so each row has its own last logits."""
    model, tok = tiny
    prompts = [stopping[0][0]] * 3
    want = _hf_generate(model, tok, prompts[:1], 1, 8, [tok.eos_token_id])
    assert greedy_generate(model, prompts, max_new_tokens=8, stop_ids=[tok.eos_token_id], pad_id=tok.pad_token_id) == want * 3


def test_common_prefix_length():
    assert common_prefix_length([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert common_prefix_length([[5, 1], [1, 5]]) == 0
    assert common_prefix_length([[1, 2], [1, 2]]) == 2


def test_models_with_logits_processors_are_not_supported(tiny):
    """A generation config that generate would apply (repetition_penalty) sends the backend to generate."""
    model, _ = tiny
    assert supports_fast_greedy(model)
    saved = model.generation_config.repetition_penalty
    model.generation_config.repetition_penalty = 1.3
    try:
        assert not supports_fast_greedy(model)
    finally:
        model.generation_config.repetition_penalty = saved


def test_sliding_window_models_are_not_supported(tiny):
    model, _ = tiny
    model.config.layer_types = ["sliding_attention", "full_attention"]
    try:
        assert not supports_fast_greedy(model)
    finally:
        model.config.layer_types = ["full_attention", "full_attention"]


def test_backend_fast_path_matches_generate_path_on_the_embedded_model(embedded):
    """HFBackend end to end on SmolLM2: the fast loop and generate give the same texts and token counts."""
    from evalkit.models.base import GenerateRequest
    from evalkit.models.hf import HFBackend

    be = HFBackend(embedded)
    asks = ["Name one planet. One word.", "What is 2+2? Answer with a number.", "Say hello in French.",
            "List three colours.", "Name the capital of Italy, one word.", "Describe a cat in a sentence."]
    messages = [({"role": "user", "content": a},) for a in asks]
    reqs = [GenerateRequest(messages=m, prompt=be.render(m)) for m in messages]
    decoding = {"max_new_tokens": 24, "do_sample": False}
    fast = be.generate(reqs, "base", decoding)
    slow = be._generate_hf(reqs, "base", decoding)
    assert fast == slow
    assert any(o.completion_tokens < 24 for o in fast)  # some rows stopped early: dropping was exercised



def test_fast_path_works_after_the_model_loaded_inside_inference_mode(tiny_model, tiny_adapter):
    """Weights first loaded by a caller's ``arm()`` inside ``torch.inference_mode`` still switch arms for the fast loop."""
    from evalkit.models import BackendOptions, LoadOptions, open_backend
    from evalkit.models.base import GenerateRequest

    be = open_backend("hf", str(tiny_model.path), [f"a={tiny_adapter}"], BackendOptions(load=LoadOptions(device="cpu")))
    with torch.inference_mode(), be.arm("base"):
        pass
    msgs = ({"role": "user", "content": "hi"},)
    outs = [be.generate([GenerateRequest(messages=msgs, prompt=be.render(msgs))], arm, {"max_new_tokens": 4}) for arm in ("base", "a", "base")]
    assert all(1 <= o[0].completion_tokens <= 4 for o in outs)


# Packed weights (evalkit/models/packed.py): the same text as generate, fresh after in-place weight changes.


@needs_packing
@pytest.mark.parametrize("batch_size", [1, 5, 12])
def test_packed_weights_match_generate(tiny, stopping, reference, batch_size):
    model, tok = tiny
    prompts, stops, _ = stopping
    packed = PackedLinears(model)
    try:
        got = _fast(model, prompts, batch_size, 16, stops, tok.pad_token_id, kernels=packed.enabled)
    finally:
        packed.remove()
    assert got == reference(batch_size)


@needs_packing
def test_packed_weights_match_generate_on_an_adapter(tiny_model, tiny_adapter, stopping):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from evalkit.models.hf import load_tokenizer

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model.path), str(tiny_adapter)).eval()
    tok = load_tokenizer(tiny_model)
    prompts, stops, _ = stopping
    packed = PackedLinears(model)
    got = _fast(model, prompts, 5, 16, stops, tok.pad_token_id, kernels=packed.enabled)
    assert got == _hf_generate(model, tok, prompts, 5, 16, stops)


@needs_packing
def test_packed_weights_only_inside_enabled_and_repacked_after_an_in_place_change():
    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 96)
    x = torch.randn(16, 1, 64)
    packed = PackedLinears(layer)
    with torch.inference_mode():
        assert torch.equal(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))  # outside: the stock kernel
        assert layer._evalkit_packed[1] is None  # not packed until first used inside enabled()
        with packed.enabled():
            torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
        assert layer._evalkit_packed[1] is not None
    with torch.no_grad():
        layer.weight.mul_(2.0)  # as --merge-adapters changes weights between arms
    with torch.inference_mode(), packed.enabled():
        torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
    packed.remove()
    assert "forward" not in vars(layer)


@needs_packing
def test_backend_packs_on_cpu_float32_only(tiny_model):
    from evalkit.models import LoadOptions
    from evalkit.models.base import GenerateRequest
    from evalkit.models.hf import HFBackend

    be = HFBackend(tiny_model, options=LoadOptions(device="cpu"))
    msgs = ({"role": "user", "content": "hi"},)
    be.generate([GenerateRequest(messages=msgs, prompt=be.render(msgs))], "base", {"max_new_tokens": 3})
    assert be.packed_weights and be._packed is not None
    assert not HFBackend(tiny_model, options=LoadOptions(device="cpu", dtype="bfloat16")).packed_weights
