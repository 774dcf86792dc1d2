"""evalkit: what did this LoRA adapter change compared with its base model, and is the difference real?

The Python API mirrors the command line::

    import evalkit

    suite = evalkit.load_suite("suites/incident-triage.yaml")
    result = evalkit.run_suite(suite, evalkit.RunOptions(adapters=("triage=runs/adapters/incident-triage-r8",)))
    run = evalkit.load_run(result.run_dir)
    run.comparison_df()        # one row per metric × adapter arm: means, Δ, 95% CI, p

Names are imported on first use, so ``import evalkit`` stays fast (no torch).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "BackendOptions",
    "EvalkitError",
    "Item",
    "LoadOptions",
    "RunOptions",
    "Score",
    "__version__",
    "load_run",
    "load_suite",
    "metric",
    "run_suite",
    "write_report",
]

_LAZY = {
    "BackendOptions": "evalkit.models.base",
    "EvalkitError": "evalkit.errors",
    "Item": "evalkit.records",
    "LoadOptions": "evalkit.models.base",
    "RunOptions": "evalkit.runner",
    "Score": "evalkit.records",
    "load_run": "evalkit.rundir",
    "load_suite": "evalkit.suite",
    "metric": "evalkit.metrics",
    "run_suite": "evalkit.runner",
    "write_report": "evalkit.report",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'evalkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
