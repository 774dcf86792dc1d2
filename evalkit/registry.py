"""One registry for every pluggable thing, keyed by (kind, name).

Built-ins register themselves on import with a decorator; plugins come from the
``evalkit.<kind>s`` entry-point group (``evalkit.metrics`` for metrics) and are
loaded lazily, the first time a name is not found among the built-ins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from evalkit.errors import MetricError

__all__ = ["Entry", "lookup", "names", "register"]


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


def register(kind: str, name: str, obj: Any, **info: Any) -> Entry:
    """Register ``obj`` under ``(kind, name)``; a second registration of the same name replaces it."""
    entry = Entry(kind=kind, name=name, obj=obj, info=dict(info))
    _REGISTRY[(kind, name)] = entry
    return entry


def _load_plugins(kind: str) -> None:
    if kind in _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED.add(kind)
    for ep in entry_points(group=f"evalkit.{kind}s"):
        try:
            ep.load()  # importing the module runs its @metric decorators
        except Exception as exc:  # a broken plugin must not hide the built-ins
            raise MetricError(
                f"plugin {ep.name!r} ({ep.value}) failed to import: {exc}; "
                f"fix or uninstall the package that provides it"
            ) from exc


def lookup(kind: str, name: str) -> Entry:
    """Return the entry for ``(kind, name)``.

    Raises:
        MetricError: when nothing of that kind has that name; the message lists the names that exist.
    """
    if (kind, name) not in _REGISTRY:
        _load_plugins(kind)
    try:
        return _REGISTRY[(kind, name)]
    except KeyError:
        known = ", ".join(names(kind)) or "(none)"
        raise MetricError(f"unknown {kind} {name!r}; known {kind}s: {known}") from None


def names(kind: str) -> list[str]:
    """Sorted names registered for ``kind`` (plugins included)."""
    _load_plugins(kind)
    return sorted(n for k, n in _REGISTRY if k == kind)
