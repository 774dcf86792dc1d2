"""The Hugging Face transformers backend (``--backend hf``): one base load, adapters switched per arm.

The base model is loaded once. Adapters go into one ``PeftModel`` under their arm
names; the base arm runs inside ``disable_adapter()`` and each adapter arm after
``set_adapter(name)``. Generation is batched with left padding; the runner sorts
prompts by length so a batch wastes little on padding. Log-likelihoods follow
lm-evaluation-harness's ``HFLM`` exactly (context/continuation split, right
padding, one forward pass per batch, longest first).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

from evalkit._util import first_line, sha256_text
from evalkit.errors import AdapterError, ModelError
from evalkit.models.adapters import AdapterRef, resolve_local
from evalkit.models.base import (
    BackendOptions,
    BackendOutput,
    GenerateRequest,
    LoadOptions,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Message,
    PassageDrift,
    backend,
    refuse_options,
)
from evalkit.models.resolve import ResolvedModel

__all__ = ["HFBackend", "default_batch_size", "encode_pair", "load_tokenizer", "quantization_config", "render_chat"]

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
    """transformers + peft backend. Construct it once per run; weights load on first use."""

    name = "hf"

    def __init__(self, base: ResolvedModel, adapters: Sequence[AdapterRef] = (), options: LoadOptions = LoadOptions(),
                 *, merge_adapters: bool = False) -> None:
        _refuse_merge_on_quantized(merge_adapters, options)
        self.base = base
        self.adapters = tuple(adapters)
        self.options = options
        self.merge_adapters = merge_adapters and bool(self.adapters)
        self.device = _resolve_device(options.device)
        self.tokenizer = load_tokenizer(base)
        self.capabilities = frozenset({"generate", "loglikelihood", "kl_drift"})
        self.fast_greedy = True
        """Greedy generation through :func:`evalkit.models.greedy.greedy_generate` (False: transformers' ``generate``)."""
        self.packed_weights = _packing_applies(self.device, options)
        """The fast loop runs on oneDNN-packed weights (:mod:`evalkit.models.packed`): on CPU, float32, unquantized."""
        self._packed: Any = None  # packed.PackedLinears, made on the first fast greedy call
        self._fast_supported: bool | None = None
        self._merged: Any = None  # lora_merge.MergedArms once the model is loaded, with merge_adapters
        self._model: Any = None

    # Loading is deferred to the first use: a fully cached run never loads weights.
    @property
    def model(self) -> Any:
        if self._model is None:
            import torch

            # Never as inference tensors (a first load inside generate's or loglikelihood's inference_mode would make
            # them so): peft flips requires_grad on the adapter weights when an arm switches, outside inference mode.
            with torch.inference_mode(False):
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
        if self.adapters:
            from peft import PeftModel

            first, *rest = self.adapters
            try:
                model = PeftModel.from_pretrained(model, str(first.path), adapter_name=first.name, is_trainable=False)
                for ad in rest:
                    model.load_adapter(str(ad.path), adapter_name=ad.name, is_trainable=False)
            except (OSError, ValueError, RuntimeError, KeyError) as exc:
                raise AdapterError(f"adapter cannot be loaded into {self.base.spec!r}: {str(exc).splitlines()[0]}") from exc
        model.eval()
        if self.merge_adapters:
            from evalkit.models.lora_merge import MergedArms

            self._merged = MergedArms(model)
        return model

    def identity(self) -> dict[str, Any]:
        from importlib.metadata import version

        merged = {"merged_adapters": True} if self.merge_adapters else {}  # merged arms round differently: cached apart
        return {"backend": self.name, "transformers": version("transformers"), **self.options.key(), "device": self.device.split(":")[0], **merged}

    def render(self, messages: Sequence[Message]) -> str:
        return render_chat(self.tokenizer, list(messages))

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

    @contextmanager
    def arm(self, arm: str) -> Iterator[Any]:
        """The model with ``arm`` active: adapters bypassed for ``base``, else that adapter set (or merged in)."""
        model = self.model
        if arm != "base" and arm not in {a.name for a in self.adapters}:
            raise ValueError(f"unknown arm {arm!r}")
        if self._merged is not None:
            self._merged.use(arm)  # the base arm gets the original weights back, copied exactly
        if not self.adapters:
            yield model
        elif arm == "base":
            with model.disable_adapter():  # the same weights, adapters bypassed
                yield model
        elif self._merged is not None:
            yield model  # merged in by use(); peft's set_adapter would unmerge it again (by subtraction, inexactly)
        else:
            model.set_adapter(arm)
            yield model

    def generate(self, requests: Sequence[GenerateRequest], arm: str, decoding: dict[str, Any]) -> list[BackendOutput]:
        tok = self.tokenizer
        if self._fast_greedy_applies(decoding):
            from evalkit.models.greedy import greedy_generate

            prompts = tok([r.prompt for r in requests], add_special_tokens=False).input_ids
            with self.arm(arm) as model:
                rows = greedy_generate(model, prompts, max_new_tokens=int(decoding["max_new_tokens"]), stop_ids=self._stop_ids(),
                                       pad_id=tok.pad_token_id, device=self.device, kernels=self._greedy_kernels())
            return [BackendOutput(text=tok.decode(row, skip_special_tokens=True).strip(), prompt_tokens=len(p), completion_tokens=len(row))
                    for p, row in zip(prompts, rows)]
        return self._generate_hf(requests, arm, decoding)

    def _fast_greedy_applies(self, decoding: dict[str, Any]) -> bool:
        """Greedy decoding with nothing but a token limit, on a model the fast loop supports (else ``generate``)."""
        if not self.fast_greedy or decoding.get("do_sample") or not set(decoding) <= {"max_new_tokens", "do_sample", "seed"}:
            return False
        if self._fast_supported is None:
            from evalkit.models.greedy import supports_fast_greedy

            self._fast_supported = supports_fast_greedy(self.model)
        return self._fast_supported

    def _greedy_kernels(self) -> Any:
        """The context the fast loop's forward passes run in: packed weights where they apply."""
        if not self.packed_weights:
            return nullcontext
        if self._packed is None:
            from evalkit.models.packed import PackedLinears, fits_in_memory

            if not fits_in_memory(self.model):
                self.packed_weights = False
                return nullcontext
            self._packed = PackedLinears(self.model)
        return self._packed.enabled

    def _generate_hf(self, requests: Sequence[GenerateRequest], arm: str, decoding: dict[str, Any]) -> list[BackendOutput]:
        """transformers' ``generate``: sampling, and models or options the fast greedy loop does not cover."""
        import torch

        tok = self.tokenizer
        enc = tok([r.prompt for r in requests], return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        gen_kwargs = dict(decoding)
        if gen_kwargs.get("do_sample"):
            torch.manual_seed(int(gen_kwargs.pop("seed", 0)))
        else:
            gen_kwargs.pop("seed", None)
        eos = self._stop_ids()
        with torch.inference_mode(), self.arm(arm) as model:
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

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], arm: str, batch_size: int = 16) -> list[LoglikelihoodResult]:
        """Summed log p(continuation | context) per request, as lm-evaluation-harness's HFLM computes it.

        Each request is encoded with :func:`encode_pair`; the model sees context + continuation
        minus its last token (truncated on the left to the model's length), right-padded, one
        forward pass per batch, longest first. Requests whose model input is the same token
        sequence (the one-token choices of one question, say) share one row, as HFLM's
        ``group_by="contexts"`` does; the output layer and the log-softmax run only at the
        continuation positions. Results come back in request order.
        """
        import torch

        encoded = [encode_pair(self.tokenizer, r.context, r.continuation) for r in requests]
        max_len = int(getattr(self.model.config, "max_position_embeddings", 2048))
        rows: dict[tuple[int, ...], list[int]] = {}  # model input → the requests read from it
        for i, (ctx, cont) in enumerate(encoded):
            rows.setdefault(tuple((ctx + cont)[-(max_len + 1) :][:-1]), []).append(i)
        # Longest first: batches of similar length waste little on padding, and memory runs out at the start if at all.
        order = sorted(rows, key=lambda x: (-len(x), x))
        results: list[LoglikelihoodResult | None] = [None] * len(encoded)
        pad = self.tokenizer.pad_token_id or 0
        with torch.inference_mode(), self.arm(arm) as model:
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                width = max(len(x) for x in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                for row, x in enumerate(batch):
                    ids[row, : len(x)] = torch.tensor(x, dtype=torch.long)
                # Only positions some continuation is read from go through the output layer (a large
                # vocabulary × every position is most of the memory and much of the time otherwise).
                first = min(len(x) - len(encoded[i][1]) for x in batch for i in rows[x])
                # Right padding needs no attention mask: a causal model never looks right of a position.
                logits = _logits_at(model, ids.to(self.device), torch.arange(first, width))  # (batch, width - first, vocab)
                for row, x in enumerate(batch):
                    for i in rows[x]:
                        cont = encoded[i][1]
                        end = len(x) - first
                        lp = torch.log_softmax(logits[row, end - len(cont) : end].float(), dim=-1).cpu()  # (len(cont), vocab)
                        target = torch.tensor(cont, dtype=torch.long)
                        results[i] = LoglikelihoodResult(
                            logprob=float(lp.gather(1, target[:, None]).sum()),
                            is_greedy=bool((lp.argmax(dim=-1) == target).all()),
                            tokens=len(cont),
                        )
        return [r for r in results if r is not None]

    def kl_drift(self, texts: Sequence[str], arm: str, max_tokens: int = 256, batch_size: int = 8) -> list[PassageDrift]:
        """Teacher-forced KL(base ‖ ``arm``) over each text, from both arms' full-vocabulary logits.

        Each text is tokenized (the first ``max_tokens`` tokens, after the BOS or end-of-text token
        that lets the first token be predicted too); every position is run once with the adapters
        bypassed and once with ``arm`` active, on the same loaded weights. Per text: the number of
        predicted tokens, the summed and the largest per-token KL in nats, and how many positions
        have the same top-1 token in both arms.
        """
        import torch

        if arm == "base":
            raise ValueError("kl_drift compares an adapter arm with base; give an adapter arm")
        tok = self.tokenizer
        prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        encoded = [[prefix, *tok(t, add_special_tokens=False).input_ids[:max_tokens]] for t in texts]
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        out: list[PassageDrift | None] = [None] * len(encoded)
        pad = tok.pad_token_id or 0
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                width = max(len(encoded[i]) for i in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                for row, i in enumerate(batch):
                    ids[row, : len(encoded[i])] = torch.tensor(encoded[i], dtype=torch.long)
                ids = ids.to(self.device)
                # Right padding: positions past a row's end are never looked at by its real tokens (causal).
                # Arms alternate in order from batch to batch, so a merged model switches once per batch, not twice.
                logp = {}
                for a in (("base", arm) if start // batch_size % 2 == 0 else (arm, "base")):
                    with self.arm(a) as model:
                        logp[a] = torch.log_softmax(model(ids).logits.float(), dim=-1)  # (batch, width, vocab)
                ref, new = logp["base"], logp[arm]
                # KL(P‖Q) = Σ_v P(v) (log P(v) − log Q(v)); clamp: rounding can make a ~0 value slightly negative
                kl = (ref.exp() * (ref - new)).sum(dim=-1).clamp_min(0.0).cpu()  # (batch, width)
                agree = (ref.argmax(dim=-1) == new.argmax(dim=-1)).cpu()
                for row, i in enumerate(batch):
                    n = len(encoded[i]) - 1  # positions 0..n-1 predict tokens 1..n
                    k = kl[row, :n]
                    out[i] = PassageDrift(tokens=n, kl_sum=float(k.sum()), kl_max=float(k.max()) if n else 0.0,
                                          top1_agree=int(agree[row, :n].sum()))
        return [d for d in out if d is not None]

    def close(self) -> None:
        self._model = None
        self._packed = None
        self._merged = None


def _logits_at(model: Any, ids: Any, positions: Any) -> Any:
    """Logits at ``positions`` only (``logits_to_keep``), or all of them sliced for a model without that argument."""
    try:
        return model(ids, logits_to_keep=positions).logits
    except TypeError as exc:
        if "logits_to_keep" not in str(exc):
            raise
        return model(ids).logits[:, positions]


def encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of (context, continuation), split exactly as lm-evaluation-harness's ``_encode_pair``.

    Trailing whitespace of the context moves to the continuation (so ``"Answer:"`` + ``" Paris"``
    tokenizes as the model saw it in training); the two are encoded together and split at the
    context's own length, so a merge across the boundary stays with the continuation. An empty
    context becomes HFLM's ``prefix_token_id`` (BOS, else end-of-text), unless the continuation
    already starts with that token, which then serves as the context (as HFLM does).
    """
    if not context:
        prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        cont = tokenizer(continuation, add_special_tokens=False).input_ids
        return (cont[:1], cont[1:]) if cont and cont[0] == prefix else ([prefix], cont)
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    whole = tokenizer(context + continuation, add_special_tokens=False).input_ids
    context_ids = tokenizer(context, add_special_tokens=False).input_ids
    return context_ids, whole[len(context_ids) :]


def _packing_applies(device: str, options: LoadOptions) -> bool:
    """Packed weights on CPU for unquantized float32 models (and, checked once loaded, a copy that fits in RAM)."""
    if device != "cpu" or options.dtype != "float32" or options.quantize != "none":
        return False
    from evalkit.models.packed import packing_available

    return packing_available()


def _refuse_merge_on_quantized(merge_adapters: bool, options: LoadOptions) -> None:
    if merge_adapters and options.quantize != "none":
        raise ModelError(f"--merge-adapters cannot be used with --quantize {options.quantize}: merging into quantized weights "
                         f"rounds the adapter away; drop one of the two")


@backend("hf", description="transformers + peft in this process: one base load, adapters switched per arm")
def hf_backend(base: str, adapters: Sequence[str], options: BackendOptions) -> HFBackend:
    refuse_options("hf", options)
    _refuse_merge_on_quantized(options.merge_adapters, options.load)  # before resolving (and converting) the base
    model, refs = resolve_local(base, adapters, options)
    return HFBackend(model, refs, options.load, merge_adapters=options.merge_adapters)


def load_tokenizer(model: ResolvedModel) -> Any:
    """The base's tokenizer, set up for batched generation (left padding, a pad token)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(model.path, trust_remote_code=False)
    except Exception as exc:  # tokenizers raises its own exception types for damaged files
        raise ModelError(f"base model {model.spec!r}: cannot load its tokenizer from {model.path} ({first_line(exc)}); "
                         f"the tokenizer files are missing or damaged") from exc
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
