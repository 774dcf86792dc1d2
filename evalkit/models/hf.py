"""The Hugging Face transformers backend: one base load, adapters switched per arm.

The base model is loaded once. Adapters go into one ``PeftModel`` under their arm
names; the base arm runs inside ``disable_adapter()`` and each adapter arm after
``set_adapter(name)``. Generation is batched with left padding; the runner sorts
prompts by length so a batch wastes little on padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from evalkit._util import sha256_text
from evalkit.errors import AdapterError, ModelError
from evalkit.models.adapters import AdapterRef
from evalkit.models.resolve import ResolvedModel

__all__ = ["Backend", "BackendOutput", "HFBackend", "LoadOptions", "default_batch_size"]

Quantize = Literal["none", "nf4", "fp4", "int8"]


@dataclass(frozen=True)
class LoadOptions:
    """How the base model is loaded; part of every cache key and the manifest."""

    dtype: str = "float32"
    """float32, bfloat16 or float16. float32 is the default on CPU: bfloat16 is faster
    there but changed some greedy outputs between batch sizes when measured."""
    quantize: Quantize = "none"
    """Load the base in 4-bit (nf4/fp4) or 8-bit with bitsandbytes, as QLoRA trains it."""
    device: str = "auto"
    """cpu, cuda, or auto (cuda when available)."""

    def key(self) -> dict[str, str]:
        return {"dtype": self.dtype, "quantize": self.quantize}


@dataclass(frozen=True)
class BackendOutput:
    """One completion as the backend returns it."""

    text: str
    prompt_tokens: int
    completion_tokens: int


class Backend(Protocol):
    """What the runner needs from a model backend."""

    def render(self, messages: list[dict[str, str]]) -> str:
        """Apply the chat template (with the generation prompt) to one conversation."""

    def count_tokens(self, prompt: str) -> int:
        """Prompt length in tokens (used to sort batches)."""

    @property
    def template_hash(self) -> str:
        """sha256 of the chat template every arm is rendered with."""

    def generate(self, prompts: Sequence[str], arm: str, decoding: dict[str, Any]) -> list[BackendOutput]:
        """Generate one completion per prompt in ``arm`` with the given decoding parameters."""


def default_batch_size() -> int:
    """32: on a 2-core CPU a two-arm run was 1.4× faster than at 16 (benchmarks/bench_run.py); on CUDA too."""
    return 32


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"--device {device}: no CUDA device is available here; use --device cpu (or auto)")
    return device


class HFBackend:
    """transformers + peft backend. Construct it once per run."""

    def __init__(self, base: ResolvedModel, adapters: Sequence[AdapterRef] = (), options: LoadOptions = LoadOptions()) -> None:
        self.base = base
        self.options = options
        self.device = _resolve_device(options.device)
        self.tokenizer = load_tokenizer(base)
        self._model: Any = None
        self._adapters = list(adapters)

    # Loading is deferred to the first generate(): a fully cached run never loads weights.
    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = self._load()
        return self._model

    def _load(self) -> Any:
        import torch
        from transformers import AutoModelForCausalLM

        kwargs: dict[str, Any] = {"dtype": getattr(torch, self.options.dtype)}
        if self.options.quantize != "none":
            kwargs["quantization_config"] = quantization_config(self.options.quantize, self.options.dtype)
            kwargs["device_map"] = {"": self.device}
        try:
            model = AutoModelForCausalLM.from_pretrained(self.base.path, trust_remote_code=False, **kwargs)
        except (OSError, ValueError, RuntimeError, ImportError) as exc:
            raise ModelError(f"base model {self.base.spec!r}: cannot load from {self.base.path}: {str(exc).splitlines()[0]}") from exc
        if self.options.quantize == "none":
            model.to(self.device)
        if self._adapters:
            from peft import PeftModel

            first, *rest = self._adapters
            try:
                model = PeftModel.from_pretrained(model, str(first.path), adapter_name=first.name, is_trainable=False)
                for ad in rest:
                    model.load_adapter(str(ad.path), adapter_name=ad.name, is_trainable=False)
            except (OSError, ValueError, RuntimeError, KeyError) as exc:
                raise AdapterError(f"adapter cannot be loaded into {self.base.spec!r}: {str(exc).splitlines()[0]}") from exc
        model.eval()
        return model

    def render(self, messages: list[dict[str, str]]) -> str:
        return render_chat(self.tokenizer, messages)

    @property
    def template_hash(self) -> str:
        return sha256_text(self.tokenizer.chat_template or "")

    def _stop_ids(self) -> list[int]:
        """End-of-turn ids: the model's generation_config list (e.g. <|eot_id|>, <end_of_turn>) and the tokenizer's eos."""
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        ids = list(configured) if isinstance(configured, (list, tuple)) else ([configured] if configured is not None else [])
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in ids:
            ids.append(self.tokenizer.eos_token_id)
        return ids

    def count_tokens(self, prompt: str) -> int:
        return len(self.tokenizer(prompt, add_special_tokens=False).input_ids)

    def generate(self, prompts: Sequence[str], arm: str, decoding: dict[str, Any]) -> list[BackendOutput]:
        import torch

        model, tok = self.model, self.tokenizer
        enc = tok(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        gen_kwargs = dict(decoding)
        if gen_kwargs.get("do_sample"):
            torch.manual_seed(int(gen_kwargs.pop("seed", 0)))
        else:
            gen_kwargs.pop("seed", None)
        eos = self._stop_ids()
        arm_ctx: Any = nullcontext()
        if self._adapters:
            if arm == "base":
                arm_ctx = model.disable_adapter()  # the same weights, adapters bypassed
            else:
                model.set_adapter(arm)
        with torch.inference_mode(), arm_ctx:
            out = model.generate(**enc, pad_token_id=tok.pad_token_id, eos_token_id=eos, **gen_kwargs)
        width = enc["input_ids"].shape[1]
        prompt_lens = enc["attention_mask"].sum(dim=1).tolist()
        results = []
        for row, plen in zip(out[:, width:].tolist(), prompt_lens):
            n = len(row)
            stop = next((i for i, t in enumerate(row) if t in eos), None)
            if stop is not None:
                n = stop + 1
            results.append(BackendOutput(text=tok.decode(row[:n], skip_special_tokens=True).strip(), prompt_tokens=int(plen), completion_tokens=n))
        return results


def load_tokenizer(model: ResolvedModel) -> Any:
    """The base's tokenizer, set up for batched generation (left padding, a pad token)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(model.path, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ModelError(f"base model {model.spec!r}: cannot load its tokenizer: {str(exc).splitlines()[0]}") from exc
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not tok.chat_template:
        raise ModelError(f"base model {model.spec!r} has no chat template; evalkit renders chat prompts and needs one")
    return tok


def render_chat(tokenizer: Any, messages: list[dict[str, str]], *, add_generation_prompt: bool = True) -> str:
    """Apply the tokenizer's chat template: the one rendering used by training and evaluation."""
    return tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=False)


def quantization_config(kind: str, compute_dtype: str = "float32", double_quant: bool = True) -> Any:
    """A bitsandbytes config for nf4/fp4 4-bit or int8 loading."""
    import torch
    from transformers import BitsAndBytesConfig

    if kind == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=kind,
        bnb_4bit_use_double_quant=double_quant,
        bnb_4bit_compute_dtype=getattr(torch, compute_dtype),
    )
