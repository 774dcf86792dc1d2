"""--merge-adapters (evalkit/models/lora_merge.py): adapters merged per arm, the base restored bit for bit."""

from __future__ import annotations

import pytest

from tests.conftest import REPORTS, make_adapter

torch = pytest.importorskip("torch")

from evalkit.models import BackendOptions, LoadOptions, open_backend  # noqa: E402
from evalkit.models.base import GenerateRequest  # noqa: E402

DECODING = {"max_new_tokens": 12, "do_sample": False}


def _base_weights(backend) -> dict[str, torch.Tensor]:
    """Every non-LoRA parameter of the model, copied."""
    return {n: p.detach().clone() for n, p in backend.model.named_parameters() if "lora_" not in n}


def _requests(backend, n: int = 8) -> list[GenerateRequest]:
    msgs = [({"role": "system", "content": "Answer with JSON."}, {"role": "user", "content": REPORTS[i % len(REPORTS)]}) for i in range(n)]
    return [GenerateRequest(messages=m, prompt=backend.render(m)) for m in msgs]


@pytest.fixture(scope="module")
def second_adapter(tiny_model_dir, tmp_path_factory):
    return make_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapters") / "second", seed=2, target=("q_proj", "o_proj", "up_proj"))


@pytest.fixture
def merged(tiny_model, tiny_adapter, second_adapter):
    backend = open_backend("hf", str(tiny_model.path), [f"one={tiny_adapter}", f"two={second_adapter}"],
                           BackendOptions(load=LoadOptions(device="cpu"), merge_adapters=True))
    yield backend
    backend.close()


@pytest.fixture
def unmerged(tiny_model, tiny_adapter, second_adapter):
    backend = open_backend("hf", str(tiny_model.path), [f"one={tiny_adapter}", f"two={second_adapter}"],
                           BackendOptions(load=LoadOptions(device="cpu")))
    yield backend
    backend.close()


def test_base_weights_bit_identical_after_adapter_arms(merged):
    before = _base_weights(merged)
    for arm in ("one", "two", "one", "base"):
        with merged.arm(arm):
            pass
    after = _base_weights(merged)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_adapter_arm_runs_on_merged_weights(merged):
    """Inside an adapter arm its layers are merged (not unmerged again by peft's set_adapter) and the weights moved."""
    from peft.tuners.lora import LoraLayer

    before = _base_weights(merged)
    with merged.arm("two") as model:
        layers = [m for m in model.modules() if isinstance(m, LoraLayer) and "two" in m.lora_A]
        assert layers and all(m.merged_adapters == ["two"] for m in layers)
        changed = [n for n, p in model.named_parameters() if "lora_" not in n and not torch.equal(p, before[n])]
    assert changed and all(any(t in n for t in ("q_proj", "o_proj", "up_proj")) for n in changed)


def test_base_arm_text_unchanged_after_an_adapter_arm(merged, unmerged):
    reqs = _requests(merged)
    plain = unmerged.generate(reqs, "base", DECODING)
    merged.generate(reqs, "one", DECODING)
    assert merged.generate(reqs, "base", DECODING) == plain


def test_merged_adapter_text_equals_unmerged_on_the_tiny_model(merged, unmerged):
    """Merged and unmerged LoRA round differently; on these prompts greedy text does not see it (measured on SmolLM2 in
    benchmarks/bench_vs_lmeval.py)."""
    reqs = _requests(merged)
    for arm in ("one", "two", "one"):
        assert merged.generate(reqs, arm, DECODING) == unmerged.generate(reqs, arm, DECODING)


def test_merged_logits_close_to_unmerged(merged, unmerged):
    ids = merged.tokenizer([r.prompt for r in _requests(merged, 3)], return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        with merged.arm("one") as m:
            a = m(**ids).logits
        with unmerged.arm("one") as u:
            b = u(**ids).logits
    assert torch.allclose(a, b, atol=1e-4, rtol=0)


def test_kl_drift_on_merged_arms_equals_unmerged(merged, unmerged):
    """Batches alternate the arm order (one switch per batch); every batch still compares base with the adapter."""
    texts = [REPORTS[i % len(REPORTS)] * (1 + i % 3) for i in range(7)]
    got = merged.kl_drift(texts, "two", batch_size=2)
    want = unmerged.kl_drift(texts, "two", batch_size=2)
    assert [d.tokens for d in got] == [d.tokens for d in want]
    assert all(d.kl_sum > 0 for d in want)
    for g, w in zip(got, want):
        assert g.kl_sum == pytest.approx(w.kl_sum, rel=1e-3, abs=1e-6)


def test_merged_outputs_are_cached_apart(merged, unmerged):
    assert merged.identity() != unmerged.identity()
    assert merged.identity()["merged_adapters"] is True


def test_merge_without_adapters_is_the_plain_backend(tiny_model):
    backend = open_backend("hf", str(tiny_model.path), [], BackendOptions(load=LoadOptions(device="cpu"), merge_adapters=True))
    assert backend.identity() == open_backend("hf", str(tiny_model.path), [], BackendOptions(load=LoadOptions(device="cpu"))).identity()


def test_merge_adapters_with_quantize_exits_2_in_one_line(capsys, make_suite, tiny_model, tiny_adapter):
    from evalkit.cli import main

    code = main(["run", str(make_suite()), "--base", str(tiny_model.path), "--adapter", str(tiny_adapter),
                 "--merge-adapters", "--quantize", "nf4", "--no-cache", "--device", "cpu"])
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert "--merge-adapters" in lines[0] and "--quantize nf4" in lines[0]


def test_merge_adapters_is_an_hf_option(tiny_model):
    from evalkit.errors import BackendError

    with pytest.raises(BackendError, match="--merge-adapters is an option of --backend hf"):
        open_backend("openai", "served", [], BackendOptions(endpoint="http://127.0.0.1:9/v1", merge_adapters=True))
