"""evalkit's exceptions: one root, a few meaningful branches.

    EvalkitError            anything evalkit reports to a user as "fix your input"
    ├── SuiteError          a suite or config file is malformed or names unknown things
    ├── DataError           a data file is missing or a row cannot be rendered
    ├── ModelError          a base model cannot be resolved or loaded
    ├── AdapterError        an adapter is missing, unsafe, or built for another base
    ├── BackendError        a backend is unknown, misconfigured, or cannot do what was asked
    ├── MetricError         a metric cannot be built from its parameters
    ├── TrainError          the training stage refuses to start or cannot go on
    ├── RunDirError         a run directory is missing or unreadable
    ├── CacheError          the generation cache file cannot be opened or written
    ├── GateError           a gate policy is malformed
    ├── JudgeError          a judge is misconfigured (unknown backend, no endpoint, no key variable)
    └── ForgettingError     a forgetting panel is unknown or its data is not installed

The CLI prints ``str(error)`` as one line and exits with status 2. Any other
exception is a bug in evalkit or a library: the CLI prints one line saying so and
exits with status 3, so CI can tell a crash from a failed gate (1). Errors from
transformers, peft, trl and bitsandbytes are translated where evalkit calls
them, with ``raise ... from exc`` so the cause stays available with ``--debug``.
"""

from __future__ import annotations

__all__ = [
    "AdapterError",
    "BackendError",
    "CacheError",
    "DataError",
    "EvalkitError",
    "ForgettingError",
    "GateError",
    "JudgeError",
    "MetricError",
    "ModelError",
    "RunDirError",
    "SuiteError",
    "TrainError",
]


class EvalkitError(Exception):
    """Root of every error a user can fix; the message says what failed, where, and what to do."""


class SuiteError(EvalkitError):
    """Raised when a suite or training config is malformed or names something unknown."""


class DataError(EvalkitError):
    """Raised when a data file is missing or unreadable, or a row cannot be rendered."""


class ModelError(EvalkitError):
    """Raised when a base model cannot be resolved (unknown alias, missing directory, offline)."""


class AdapterError(EvalkitError):
    """Raised when an adapter is missing, pickled without consent, or built for another base."""


class MetricError(EvalkitError):
    """Raised when a metric is unknown or its parameters are invalid."""


class TrainError(EvalkitError):
    """Raised when training is refused before the first step (pre-flight) or cannot resume."""


class RunDirError(EvalkitError):
    """Raised when a run directory is missing, incomplete, or of an unknown format version."""


class CacheError(EvalkitError):
    """Raised when the generation cache cannot be opened (a folder, unwritable, not sqlite)."""


class GateError(EvalkitError):
    """Raised when a gate policy is malformed or names a metric the run does not have."""


class BackendError(EvalkitError):
    """Raised when a backend is unknown, its options do not fit it, or it lacks a capability asked of it."""


class JudgeError(EvalkitError):
    """Raised when a judge cannot be set up: unknown backend, missing endpoint or API key variable, bad rubric."""


class ForgettingError(EvalkitError):
    """Raised when a forgetting panel is unknown, or the package holding its data is not installed."""
