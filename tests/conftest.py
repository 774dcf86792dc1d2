"""Shared fixtures: the real embedded model, a tiny random Llama with the real tokenizer, adapters, suites.

The tiny model is built from a real Llama config (2 layers, width 64) and uses the
real SmolLM2 tokenizer and chat template, so tests exercise the real transformers,
peft and trl code paths in seconds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("EVALKIT_HOME", str(REPO / ".cache" / "evalkit"))  # the converted model is reused across runs
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def embedded():
    from evalkit.models import resolve_model

    return resolve_model("smollm2-135m-instruct")


def build_tiny_llama(path: Path, tokenizer_from: Path, *, seed: int = 0, hidden: int = 64) -> Path:
    """A random-init Llama with the real SmolLM2 tokenizer, saved as a HF model folder."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_from)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        initializer_range=0.2,  # peaked logits: greedy choices far from ties, like a trained model
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(embedded, tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), embedded.path)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from evalkit.models import resolve_model

    return resolve_model(str(tiny_model_dir))


def make_adapter(base_dir: Path, out: Path, *, seed: int = 1, target: tuple[str, ...] = ("q_proj", "v_proj"), r: int = 4, **lora: Any) -> Path:
    """A LoRA adapter with random (non-zero) B, so it visibly changes outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir)
    torch.manual_seed(seed)
    peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(target), init_lora_weights=False, task_type="CAUSAL_LM", **lora))
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_adapter(tiny_model_dir, tmp_path_factory) -> Path:
    return make_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapters") / "tiny-lora")


SUITE_YAML = """\
name: tiny
data:
  path: data.jsonl
  id_field: id
prompt:
  system: Answer with JSON.
  user: "Report: {{{{ report }}}}"
generation:
  max_new_tokens: {max_new_tokens}
metrics:
  - name: format
    type: json_valid
  - name: mentions-db
    type: regex
    params: {{pattern: "data", flags: [IGNORECASE]}}
"""

REPORTS = [
    "Database primary is down, every checkout fails.",
    "Login page shows a typo in the footer.",
    "Search latency is up 40% for EU users; results still load.",
    "Payments API returns 502 for all card payments since 09:14 UTC.",
    "Push notifications delayed by ten minutes on Android.",
    "Storage bucket lifecycle rule deleted old thumbnails; originals are fine.",
    "TLS handshake failures at the CDN edge in eu-west-1.",
    "Auth tokens expire after one minute instead of one hour; users are logged out constantly.",
    "A dashboard panel shows the wrong timezone.",
    "Replication lag of 45 s on the orders database causes stale order pages.",
    "Rate limiter blocks 30% of legitimate API traffic from one large customer.",
    "Invoice emails contain a broken logo image.",
]


@pytest.fixture
def make_suite(tmp_path) -> Callable[..., Path]:
    """Write a small suite (and its data) into a temp folder; returns the suite path."""

    def _make(n: int = 8, max_new_tokens: int = 6, yaml_text: str | None = None, rows: list[dict[str, Any]] | None = None) -> Path:
        folder = tmp_path / "suite"
        folder.mkdir(exist_ok=True)
        rows = rows if rows is not None else [{"id": f"r{i:02d}", "report": REPORTS[i % len(REPORTS)] + f" (#{i})"} for i in range(n)]
        (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        path = folder / "tiny.yaml"
        path.write_text(yaml_text if yaml_text is not None else SUITE_YAML.format(max_new_tokens=max_new_tokens))
        return path

    return _make


class CountingBackend:
    """Wraps a backend and counts the prompts it is asked to generate."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.prompts = 0
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def generate(self, prompts, arm, decoding):
        self.calls += 1
        self.prompts += len(prompts)
        return self.inner.generate(prompts, arm, decoding)
