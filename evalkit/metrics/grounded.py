"""``grounded_fields``: every value an answer extracts must be found in the source text. No model.

The cheap, deterministic companion of ``faithfulness`` for extraction tasks. Each string
or number in the answer's JSON (or in the listed ``fields``) is looked up in a source field
of the row, first as it is, then *normalised*: Unicode NFKC, case folded, every run of
punctuation and spaces collapsed to one space, thousands separators dropped (``1,000`` →
``1000``), and matched on word boundaries. A value found neither way is *invented*; the
detail lists every invented value. Booleans and nulls are not text and are not checked.

An answer with no JSON, or with no text or number to check, scores 0 (the model extracted
nothing; ``json_schema`` says why), as the other structured metrics do; a row whose source
is not text is an error (the data's fault, not the model's).
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from evalkit.metrics.base import metric
from evalkit.metrics.extract import NoJSON, extract_json
from evalkit.records import Item, Score

__all__ = ["grounded_fields", "normalise"]

_THOUSANDS = re.compile(r"(?<=\d)[,_ ](?=\d{3}\b)")
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    """Text reduced for matching: NFKC, case folded, thousands separators dropped, punctuation runs → one space."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _THOUSANDS.sub("", text)
    return " ".join(_NON_WORD.sub(" ", text).split())


def _values(doc: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, text) of every string and number in a JSON value, in document order."""
    if isinstance(doc, dict):
        return [pv for k, v in doc.items() for pv in _values(v, f"{path}.{k}" if path else str(k))]
    if isinstance(doc, list):
        return [pv for i, v in enumerate(doc) for pv in _values(v, f"{path}[{i}]")]
    if isinstance(doc, bool) or doc is None:
        return []
    if isinstance(doc, (int, float)):
        return [(path, json.dumps(doc))]
    return [(path, str(doc))]


def _found(value: str, source: str, source_norm: str) -> bool:
    if not value.strip():
        return True  # an empty string claims nothing
    if re.search(rf"(?<!\w){re.escape(value.strip())}(?!\w)", source):  # as it is, as a whole word ("25" is not in "1,250")
        return True
    norm = normalise(value)
    return bool(norm) and re.search(rf"(?<!\w){re.escape(norm)}(?!\w)", source_norm) is not None


class _Grounded:
    def __init__(self, source: str, fields: list[str] | None, pass_fail: bool) -> None:
        self.source, self.fields, self.binary = source, fields, pass_fail

    def check_item(self, item: Item) -> str | None:
        value = item.row.get(self.source)
        if self.source not in item.row:
            return f"params.source: the row has no field {self.source!r}"
        return None if isinstance(value, str) else f"params.source: the row's {self.source!r} is {value!r}, not text"

    def __call__(self, output: str, item: Item) -> Score:
        source = item.row.get(self.source)
        if not isinstance(source, str):
            return Score.failed(f"the row's {self.source!r} is {source!r}, not text")
        try:
            doc = extract_json(output)
        except NoJSON as exc:
            return Score(0.0, detail=f"nothing extracted: {exc}")
        if self.fields is not None:
            if not isinstance(doc, dict):
                return Score(0.0, detail="nothing extracted: the answer's JSON is not an object")
            values = [pv for f in self.fields if f in doc for pv in _values(doc[f], f)]
        else:
            values = _values(doc)
        values = [(p, v) for p, v in values if v.strip()]
        if not values:
            return Score(0.0, detail="nothing extracted: the answer's JSON holds no text or numbers" +
                         (f" in {', '.join(self.fields)}" if self.fields else ""))
        source_norm = normalise(source)
        invented = [{"field": p, "value": v} for p, v in values if not _found(v, source, source_norm)]
        grounded = len(values) - len(invented)
        detail = json.dumps({"grounded": grounded, "total": len(values), "invented": invented}, ensure_ascii=False)
        if self.binary:
            return Score(float(not invented), detail=detail)
        return Score(grounded / len(values), detail=detail)


@metric("grounded_fields")
def grounded_fields(source: str, fields: list[str] | None = None, pass_fail: bool = False) -> _Grounded:
    """Share of the answer's extracted JSON values found (as is, or normalised) in a source field of the row; no model."""
    if fields is not None and not fields:
        raise ValueError("fields is empty: list the JSON fields to check, or leave it out to check every value")
    return _Grounded(source, fields, pass_fail)
