"""How two values are compared: the ``normalize`` parameter of matching metrics."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

__all__ = ["Normalizer", "NORMALIZERS", "values_equal"]

Normalizer = Literal["exact", "strip", "casefold", "numeric"]
NORMALIZERS: tuple[str, ...] = ("exact", "strip", "casefold", "numeric")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _casefold(value: Any) -> str:
    return " ".join(_text(value).split()).casefold()


_TEXT: dict[str, Callable[[Any], Any]] = {
    "exact": lambda v: v,
    "strip": lambda v: _text(v).strip(),
    "casefold": _casefold,
}


def values_equal(got: Any, want: Any, normalize: str = "exact", tolerance: float = 0.0) -> bool:
    """Compare an answer's value with the reference under a normalizer.

    ``exact`` compares values as they are (``"4" != 4``); ``strip`` compares text with
    surrounding whitespace removed; ``casefold`` also ignores case and collapses inner
    whitespace; ``numeric`` parses both as numbers and allows ``|got - want| <= tolerance``
    (a value that is not a number does not match).
    """
    if normalize == "numeric":
        try:
            g, w = float(got), float(want)
        except (TypeError, ValueError):
            return False
        return math.isclose(g, w, rel_tol=0.0, abs_tol=tolerance)
    fn = _TEXT[normalize]
    return fn(got) == fn(want)


def check_normalize(normalize: str, tolerance: float) -> None:
    """Reject unknown normalizers and negative tolerances at build time."""
    if normalize not in NORMALIZERS:
        raise ValueError(f"normalize={normalize!r} is not one of {', '.join(NORMALIZERS)}")
    if tolerance < 0:
        raise ValueError(f"tolerance={tolerance} must be >= 0")
