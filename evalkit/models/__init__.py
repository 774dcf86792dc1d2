"""Model resolution, adapter checks and generation backends."""

from evalkit.models.adapters import AdapterRef, check_compatible, resolve_adapter
from evalkit.models.hf import Backend, BackendOutput, HFBackend, LoadOptions
from evalkit.models.resolve import DEFAULT_BASE, ResolvedModel, resolve_model

__all__ = [
    "DEFAULT_BASE",
    "AdapterRef",
    "Backend",
    "BackendOutput",
    "HFBackend",
    "LoadOptions",
    "ResolvedModel",
    "check_compatible",
    "resolve_adapter",
    "resolve_model",
]
