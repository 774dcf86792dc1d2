"""Model resolution, adapter checks and generation backends (see ``models/base.py`` for the contract)."""

from evalkit.models.adapters import AdapterRef, check_compatible, resolve_adapter, resolve_local
from evalkit.models.base import (
    Backend,
    BackendOptions,
    BackendOutput,
    GenerateRequest,
    LoadOptions,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    backend,
    backend_names,
    open_backend,
    require,
)
from evalkit.models.resolve import DEFAULT_BASE, ResolvedModel, resolve_model

__all__ = [
    "DEFAULT_BASE",
    "AdapterRef",
    "Backend",
    "BackendOptions",
    "BackendOutput",
    "GenerateRequest",
    "LoadOptions",
    "LoglikelihoodRequest",
    "LoglikelihoodResult",
    "ResolvedModel",
    "backend",
    "backend_names",
    "check_compatible",
    "open_backend",
    "require",
    "resolve_adapter",
    "resolve_local",
    "resolve_model",
]


def __getattr__(name: str):  # HFBackend imports transformers helpers lazily; keep `import evalkit.models` light
    if name == "HFBackend":
        from evalkit.models.hf import HFBackend

        return HFBackend
    raise AttributeError(name)
