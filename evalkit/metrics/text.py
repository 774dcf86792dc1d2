"""Metrics over the answer's text: exact match against a reference, regular expressions."""

from __future__ import annotations

import re

from evalkit.metrics.base import Scorer, metric
from evalkit.metrics.normalize import check_normalize, values_equal
from evalkit.metrics.structured import get_path
from evalkit.records import Item, Score

__all__ = ["exact_match", "regex"]


@metric("exact_match", binary=True)
def exact_match(reference: str, normalize: str = "strip") -> Scorer:
    """1 when the whole answer equals the row's ``reference`` field under ``normalize``."""
    check_normalize(normalize, 0.0)

    def score(output: str, item: Item) -> Score:
        try:
            want = get_path(item.row, reference)
        except KeyError:
            return Score.failed(f"row has no reference field {reference!r}")
        if want is None:
            return Score.failed(f"reference field {reference!r} is null in this row")
        if values_equal(output, want, normalize):
            return Score(1.0)
        return Score(0.0, detail=f"want {str(want)[:80]!r}")

    return score


_FLAGS = {"IGNORECASE": re.IGNORECASE, "MULTILINE": re.MULTILINE, "DOTALL": re.DOTALL}


@metric("regex", binary=True)
def regex(pattern: str, flags: list[str] | None = None, must_match: bool = True) -> Scorer:
    """1 when ``pattern`` is found in the answer (or, with ``must_match: false``, when it is not)."""
    bits = 0
    for name in flags or []:
        if name not in _FLAGS:
            raise ValueError(f"flag {name!r} is not one of {', '.join(_FLAGS)}")
        bits |= _FLAGS[name]
    try:
        compiled = re.compile(pattern, bits)
    except re.error as exc:
        raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {exc}") from None

    def score(output: str, item: Item) -> Score:
        found = compiled.search(output)
        ok = bool(found) == must_match
        return Score(float(ok), detail=f"matched {found.group(0)[:60]!r}" if found else "no match")

    return score
