"""The backend contract: what every model backend offers, and how it says what it cannot do.

    Backend                        the one protocol the runner, metrics and forgetting checks call
    ├── HFBackend      (hf)        transformers + peft in this process (the default)
    ├── VLLMBackend    (vllm)      one vllm.LLM engine; each adapter arm a LoRARequest
    └── OpenAIBackend  (openai)    any OpenAI-compatible endpoint; each arm a served model name

A backend serves *arms*: ``base`` and one per adapter, all on one load of the base
weights. It declares what it can do in ``capabilities``; :func:`require` turns a
request for anything else into one line naming the backend and an alternative.
Its ``identity()`` (the backend's name, and the engine version or endpoint where
outputs can depend on it) goes into every cache key and the manifest, so a text
produced by one engine is never served as another's.

Backends are looked up in the registry by name (``--backend hf|vllm|openai``);
a plugin registers its own with :func:`backend`. Constructing one must be cheap
and must check its inputs (paths, adapters, endpoints, options) before any
weights load: weights load on first use, so a fully cached run loads none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from evalkit import registry
from evalkit.errors import BackendError
from evalkit.models.adapters import AdapterRef
from evalkit.models.resolve import ResolvedModel

__all__ = [
    "CAPABILITIES",
    "Backend",
    "BackendOptions",
    "BackendOutput",
    "Capability",
    "GenerateRequest",
    "LoadOptions",
    "LoglikelihoodRequest",
    "LoglikelihoodResult",
    "Message",
    "PassageDrift",
    "backend",
    "backend_names",
    "open_backend",
    "refuse_options",
    "require",
]

Message = dict[str, str]
"""A chat message: ``{"role": "system" | "user" | "assistant", "content": "..."}``."""

Capability = Literal["generate", "loglikelihood", "kl_drift"]
CAPABILITIES: tuple[str, ...] = ("generate", "loglikelihood", "kl_drift")
"""``generate``: chat completions. ``loglikelihood``: summed log-probability of a
continuation given a context (multiple-choice scoring). ``kl_drift``: exact
per-token KL(base ‖ adapter) over a text, teacher-forced, on one loaded model."""

Quantize = Literal["none", "nf4", "fp4", "int8"]


@dataclass(frozen=True)
class LoadOptions:
    """How local weights are loaded; part of every cache key and the manifest."""

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
class BackendOptions:
    """Everything a backend needs besides the base and the adapters.

    Options that only one backend uses are refused by the others, so a stray
    ``--endpoint`` with ``--backend hf`` is an error, not a silent no-op.
    """

    load: LoadOptions = field(default_factory=LoadOptions)
    allow_pickle: bool = False
    """Accept adapters stored as pickled ``adapter_model.bin`` (can run code)."""
    allow_network: bool = False
    """Allow downloading models (local backends)."""
    allow_base_mismatch: bool = False
    """Use an adapter whose recorded base name differs from the base."""
    endpoint: str | None = None
    """openai: the server's base URL, e.g. ``http://127.0.0.1:8000/v1``."""
    api_key_env: str | None = None
    """openai: the *name* of the environment variable holding the API key (never the key)."""
    concurrency: int = 8
    """openai: requests in flight at once."""
    timeout_s: float = 120.0
    """openai: seconds before one request times out."""
    max_retries: int = 4
    """openai: retries of a request that failed with 429, 5xx, a timeout or a dropped connection."""
    tensor_parallel_size: int = 1
    """vllm: GPUs one engine spans."""
    max_model_len: int | None = None
    """vllm: context length the engine reserves KV cache for (None: the model's)."""
    merge_adapters: bool = False
    """hf: merge each adapter into the base weights for its arm (restored exactly for the base arm);
    faster adapter arms, but greedy texts may differ from the unmerged adapter's where tokens tie."""


@dataclass(frozen=True)
class GenerateRequest:
    """One prompt to complete: the chat messages and the backend's rendering of them."""

    messages: tuple[Message, ...]
    """What a served backend sends as ``messages``."""
    prompt: str
    """``backend.render(messages)``: the chat-template text a local backend tokenizes, or the
    canonical JSON of the messages for a served one. The cache key is built from it."""
    response_format: dict[str, Any] | None = None
    """Structured output to ask a served backend for, as OpenAI's ``response_format``
    (``{"type": "json_schema", "json_schema": {...}}`` or ``{"type": "json_object"}``).
    Judges set it; a backend that cannot constrain its output ignores it, so the reply is
    always validated by the caller. None: plain text."""


@dataclass(frozen=True)
class BackendOutput:
    """One completion as a backend returns it."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    error: str | None = None
    """Set when the request failed for good (e.g. an endpoint still answering 500 after
    every retry): the item is recorded as an error for every metric, never scored as a 0,
    and never cached, so a later run tries it again."""


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """Score ``continuation`` after ``context`` (lm-evaluation-harness's ``loglikelihood``)."""

    context: str
    continuation: str


@dataclass(frozen=True)
class LoglikelihoodResult:
    """The answer to one :class:`LoglikelihoodRequest`."""

    logprob: float
    """Sum over the continuation's tokens of log p(token | everything before it)."""
    is_greedy: bool
    """True when every continuation token is the argmax at its position."""
    tokens: int
    """Number of continuation tokens."""


@dataclass(frozen=True)
class PassageDrift:
    """What ``kl_drift`` returns for one text: how far an adapter arm moved the next-token distribution."""

    tokens: int
    """Positions compared (each predicts one token of the text)."""
    kl_sum: float
    """Sum over those positions of KL(base ‖ adapter) in nats, over the full vocabulary."""
    kl_max: float
    """The largest per-position KL."""
    top1_agree: int
    """Positions where both arms put the same token first."""


@runtime_checkable
class Backend(Protocol):
    """What the runner, judged metrics and forgetting checks need from a model backend."""

    name: str
    """The registry name (``hf``, ``vllm``, ``openai``, or a plugin's)."""
    capabilities: frozenset[str]
    """What it can do: a subset of :data:`CAPABILITIES`."""
    base: ResolvedModel
    """The base model (for a served backend: the served name, fingerprinted by endpoint and name)."""
    adapters: tuple[AdapterRef, ...]
    """One per adapter arm, in arm order (for a served backend: the served names)."""

    def identity(self) -> dict[str, Any]:
        """Who produces the outputs: backend name, engine version or endpoint, load options, device.

        Part of every cache key and of the manifest; never holds a secret.
        """
        ...

    @property
    def template_hash(self) -> str:
        """sha256 of the chat template every arm is rendered with ("" when the server renders it)."""
        ...

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text for one conversation (with the generation prompt)."""
        ...

    def count_tokens(self, prompt: str) -> int:
        """Prompt length in tokens (or an estimate), used to sort and batch requests."""
        ...

    def generate(self, requests: Sequence[GenerateRequest], arm: str, decoding: dict[str, Any]) -> list[BackendOutput]:
        """One completion per request in ``arm``, with the same decoding for every arm."""
        ...

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], arm: str) -> list[LoglikelihoodResult]:
        """Summed log-probability of each continuation given its context, in ``arm``."""
        ...

    # A backend with the ``kl_drift`` capability also offers
    #     kl_drift(texts, arm, max_tokens=256) -> list[PassageDrift]
    # (teacher-forced KL(base ‖ arm) per text on one loaded model); see HFBackend.kl_drift.

    def close(self) -> None:
        """Release engines, connections and processes; the backend is not used afterwards."""
        ...


_ALTERNATIVES: dict[str, str] = {
    "generate": "every built-in backend generates",
    "loglikelihood": "use --backend hf or vllm, or an OpenAI-compatible server that returns prompt logprobs (vLLM does)",
    "kl_drift": "use --backend hf, which computes exact KL on one loaded model",
}


def require(backend: Backend, capability: str, why: str = "") -> None:
    """Raise a one-line :class:`BackendError` unless ``backend`` offers ``capability``.

    Args:
        why: what needs it, e.g. ``"forgetting panel arc_easy"``; named in the message.
    """
    if capability in backend.capabilities:
        return
    need = f"{why} needs {capability}" if why else f"{capability} was asked for"
    raise BackendError(f"backend {backend.name!r} cannot compute {capability} ({need}); {_ALTERNATIVES.get(capability, '')}".rstrip("; "))


BackendFactory = Callable[[str, Sequence[str], BackendOptions], Backend]
"""``factory(base, adapters, options)``: ``base`` as given on the command line, ``adapters``
as ``[NAME=]PATH`` (or ``NAME=SERVED`` for served backends). Must not load weights."""


def backend(name: str, *, description: str = "") -> Callable[[BackendFactory], BackendFactory]:
    """Register a backend factory under ``name`` (built-ins and plugins alike).

    Plugins name their module in the ``evalkit.backends`` entry-point group.

    Example:
        >>> from evalkit.models.base import backend
        >>> @backend("echo", description="repeats the prompt")
        ... def echo(base, adapters, options):
        ...     return EchoBackend(base, adapters)
    """

    def decorate(factory: BackendFactory) -> BackendFactory:
        registry.register("backend", name, factory, description=description or (factory.__doc__ or "").strip().split("\n")[0])
        return factory

    return decorate


def _ensure_builtins() -> None:
    import evalkit.models.hf  # noqa: F401  (registers hf)
    import evalkit.models.openai  # noqa: F401  (registers openai)
    import evalkit.models.vllm  # noqa: F401  (registers vllm)


def backend_names() -> list[str]:
    """Registered backend names, built-ins and plugins."""
    _ensure_builtins()
    return registry.names("backend")


def open_backend(name: str, base: str, adapters: Sequence[str] = (), options: BackendOptions | None = None) -> Backend:
    """Build the backend ``name`` for ``base`` and ``adapters``; checks inputs, loads no weights.

    Raises:
        BackendError: an unknown backend name (the message lists the known ones).
        EvalkitError: whatever the backend finds wrong with the base, the adapters or the options.
    """
    _ensure_builtins()
    entry = registry.lookup("backend", name, BackendError)
    return entry.obj(base, tuple(adapters), options or BackendOptions())


_SPECIFIC = {
    "endpoint": ("--endpoint", "openai"),
    "api_key_env": ("--api-key-env", "openai"),
    "tensor_parallel_size": ("--tensor-parallel-size", "vllm"),
    "max_model_len": ("--max-model-len", "vllm"),
    "merge_adapters": ("--merge-adapters", "hf"),
}


def refuse_options(backend_name: str, options: BackendOptions) -> None:
    """Refuse options that belong to another backend (``--endpoint`` with ``--backend hf``, say)."""
    defaults = BackendOptions()
    for attr, (flag, owner) in _SPECIFIC.items():
        if owner != backend_name and getattr(options, attr) != getattr(defaults, attr):
            raise BackendError(f"{flag} is an option of --backend {owner}, not of --backend {backend_name}; drop it or use --backend {owner}")
