"""One registry for every pluggable thing, keyed by (kind, name).

Built-ins register themselves on import with a decorator; plugins come from the
``evalkit.<kind>s`` entry-point group (``evalkit.metrics`` for metrics) and are
loaded lazily, the first time a name is not found among the built-ins.

Each entry point is imported on its own: a plugin that fails to import is
remembered (with its error) and skipped, so it hides neither the built-ins nor
the other plugins. Its error is named when a lookup misses, since the missing
name may be the one that plugin would have registered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from evalkit.errors import EvalkitError, MetricError

__all__ = ["Entry", "failures", "lookup", "names", "register"]


@dataclass(frozen=True)
class Entry:
    """A registered object and what is known about it."""

    kind: str
    """What sort of thing this is, e.g. ``"metric"``."""
    name: str
    """The name suites use to refer to it."""
    obj: Any
    """The factory or object itself."""
    info: dict[str, Any] = field(default_factory=dict)
    """Facts the registrant declared (for metrics: ``binary``, ``description``)."""


_REGISTRY: dict[tuple[str, str], Entry] = {}
_PLUGINS_LOADED: set[str] = set()
_PLUGIN_FAILURES: dict[str, dict[str, str]] = {}
"""kind -> {"name=value" of a broken entry point: "plugin 'x' (pkg.mod:obj) failed to import: ..."}."""


def register(kind: str, name: str, obj: Any, **info: Any) -> Entry:
    """Register ``obj`` under ``(kind, name)``; a second registration of the same name replaces it."""
    entry = Entry(kind=kind, name=name, obj=obj, info=dict(info))
    _REGISTRY[(kind, name)] = entry
    return entry


def _describe(exc: BaseException) -> str:
    """``str(exc)`` for import errors (their messages say it all), else ``Type: message``."""
    if isinstance(exc, ImportError) and str(exc):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _load_plugins(kind: str) -> None:
    """Import every ``evalkit.<kind>s`` entry point once; never raises.

    Failures are kept in ``_PLUGIN_FAILURES[kind]`` (in entry-point order)
    and reported by :func:`lookup` on a miss. A plugin is attempted once per
    process, whether it loaded or failed.
    """
    if kind in _PLUGINS_LOADED:
        return
    failures: dict[str, str] = {}
    try:
        eps = list(entry_points(group=f"evalkit.{kind}s"))
    except Exception as exc:  # unreadable package metadata must not break built-in lookups
        eps = []
        failures[f"evalkit.{kind}s"] = f"entry points of group 'evalkit.{kind}s' could not be read: {_describe(exc)}"
    for ep in eps:
        try:
            ep.load()  # importing the module runs its @metric decorators
        except Exception as exc:  # a broken plugin must not hide the built-ins or the other plugins
            failures[f"{ep.name}={ep.value}"] = (
                f"plugin {ep.name!r} ({ep.value}) failed to import: {_describe(exc)}; fix or uninstall it"
            )
    _PLUGIN_FAILURES[kind] = failures
    _PLUGINS_LOADED.add(kind)


def lookup(kind: str, name: str, error: type[EvalkitError] = MetricError) -> Entry:
    """Return the entry for ``(kind, name)``.

    Raises:
        error: when nothing of that kind has that name (``MetricError`` unless given); the message lists
            the names that exist and every plugin of that kind that failed to import (it may be the one
            providing ``name``).
    """
    if (kind, name) not in _REGISTRY:
        _load_plugins(kind)
    try:
        return _REGISTRY[(kind, name)]
    except KeyError:
        known = ", ".join(names(kind)) or "(none)"
        message = f"unknown {kind} {name!r}; known {kind}s: {known}"
        failures = _PLUGIN_FAILURES.get(kind, {})
        if failures:
            message += "; " + "; ".join(failures.values())
        raise error(message) from None


def names(kind: str) -> list[str]:
    """Sorted names registered for ``kind`` (plugins that imported included); never raises for a broken plugin."""
    _load_plugins(kind)
    return sorted(n for k, n in _REGISTRY if k == kind)


def failures(kind: str) -> list[str]:
    """One line per plugin of ``kind`` that failed to import (what failed and what to do), in entry-point order."""
    _load_plugins(kind)
    return list(_PLUGIN_FAILURES.get(kind, {}).values())
