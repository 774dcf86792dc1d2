"""Metrics for structured answers: JSON validity, JSON Schema conformance, field match.

The JSON in an answer is found with ``extract.extract_json`` (fenced block, whole
text, or first complete object); an answer with no JSON scores 0 with the reason
in the detail. A missing reference field in the data is an error, not a 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema

from evalkit._util import json_path
from evalkit.metrics.base import Scorer, metric
from evalkit.metrics.extract import NoJSON, extract_json
from evalkit.metrics.normalize import check_normalize, values_equal
from evalkit.records import Item, Score

__all__ = ["field_match", "json_schema", "json_valid"]


@metric("json_valid", binary=True)
def json_valid() -> Scorer:
    """1 when the answer contains a JSON object or array (see the extraction rule), else 0."""

    def score(output: str, item: Item) -> Score:
        try:
            extract_json(output)
        except NoJSON as exc:
            return Score(0.0, detail=str(exc))
        return Score(1.0)

    return score


@metric("json_schema", binary=True)
def json_schema(schema: str | dict[str, Any], *, base_dir: Path) -> Scorer:
    """1 when the answer's JSON validates against a JSON Schema (a file relative to the suite, or inline)."""
    if isinstance(schema, str):
        schema_path = (base_dir / schema).resolve()
        try:
            schema_doc = json.loads(schema_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"schema file {schema_path} not found; give a path relative to the suite") from None
        except IsADirectoryError:
            raise ValueError(f"schema file {schema_path} is a folder; give the .json file inside it") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"schema file {schema_path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"schema file {schema_path} is not JSON ({exc.msg} at line {exc.lineno}); fix the file") from None
        except OSError as exc:
            raise ValueError(f"schema file {schema_path}: cannot read ({exc.strerror or exc})") from None
    else:
        schema_doc = schema
    cls = jsonschema.validators.validator_for(schema_doc)
    try:
        cls.check_schema(schema_doc)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"invalid JSON Schema: {exc.message}") from None
    _check_refs(schema_doc, cls)
    validator = cls(schema_doc)

    def score(output: str, item: Item) -> Score:
        try:
            answer = extract_json(output)
        except NoJSON as exc:
            return Score(0.0, detail=str(exc))
        error = next(validator.iter_errors(answer), None)  # the first error, in the validator's order
        if error is None:
            return Score(1.0)
        return Score(0.0, detail=f"{json_path(['$', *error.absolute_path])}: {error.message}")

    return score


_DATA_KEYWORDS = ("enum", "const", "default", "examples")
"""Keywords whose values are data, not subschemas: a ``$ref`` key inside them is not a reference."""


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for key, value in node.items():
            if key not in _DATA_KEYWORDS:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _has_nested_id(node: Any, top: bool = True) -> bool:
    if isinstance(node, dict):
        return (not top and "$id" in node) or any(_has_nested_id(v, False) for v in node.values())
    return isinstance(node, list) and any(_has_nested_id(v, False) for v in node)


def _check_refs(schema: Any, cls: Any) -> None:
    """Every ``$ref`` must resolve inside the schema: an unresolvable one would make the metric error on
    every item, after generation, instead of now. (Nothing is fetched; a schema with nested ``$id``
    scopes is left to the validator.)"""
    if not isinstance(schema, dict) or _has_nested_id(schema):
        return
    from referencing import Registry, Resource
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import specification_with

    base = schema.get("$id") if isinstance(schema.get("$id"), str) else "urn:evalkit:schema"
    spec = specification_with(cls.META_SCHEMA.get("$schema", ""), default=specification_with("https://json-schema.org/draft/2020-12/schema"))
    resolver = Registry().with_resource(base, Resource.from_contents(schema, default_specification=spec)).resolver(base_uri=base)
    for ref in _refs(schema):
        try:
            resolver.lookup(ref)
        except Unresolvable:
            raise ValueError(f"schema $ref {ref!r} does not resolve (evalkit fetches nothing); point it into the schema, e.g. #/$defs/name") from None


def get_path(obj: Any, dotted: str) -> Any:
    """``obj["a"]["b"][0]`` for ``"a.b.0"``; KeyError when any step is missing."""
    for part in dotted.split("."):
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        elif isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            raise KeyError(dotted)
    return obj


@metric("field_match", binary=True)
def field_match(
    field: str | None = None,
    fields: list[str] | None = None,
    reference: str | dict[str, str] | None = None,
    normalize: str = "exact",
    tolerance: float = 0.0,
) -> Scorer:
    """1 when every named field of the answer's JSON equals the reference in the row.

    Args:
        field: One answer field (dotted paths reach into nested objects).
        fields: Several answer fields; all must match.
        reference: Row field holding the expected value (one field), or a mapping
            answer field → row field; by default the row field of the same name. Dotted
            paths reach into nested row values (``expected.product``).
        normalize: exact, strip, casefold or numeric (see ``normalize.values_equal``).
        tolerance: Allowed absolute difference for ``numeric``.
    """
    if (field is None) == (fields is None):
        raise ValueError("give exactly one of field or fields")
    names = [field] if field is not None else list(fields or [])
    if not names:
        raise ValueError("fields must name at least one field")
    check_normalize(normalize, tolerance)
    if isinstance(reference, str):
        if len(names) != 1:
            raise ValueError("reference as a string needs a single field; use a mapping for several")
        refs = {names[0]: reference}
    else:
        refs = {n: (reference or {}).get(n, n) for n in names}

    def score(output: str, item: Item) -> Score:
        wants = {}
        for n in names:
            try:
                wants[n] = get_path(item.row, refs[n])
            except KeyError:
                return Score.failed(f"row has no reference field {refs[n]!r}")
            if wants[n] is None:
                return Score.failed(f"reference field {refs[n]!r} is null in this row")
        try:
            answer = extract_json(output)
        except NoJSON as exc:
            return Score(0.0, detail=str(exc))
        wrong = []
        for n in names:
            want = wants[n]
            try:
                got = get_path(answer, n)
            except KeyError:
                wrong.append(f"{n}: missing (want {want!r})")
                continue
            if not values_equal(got, want, normalize, tolerance):
                wrong.append(f"{n}: got {got!r}, want {want!r}")
        return Score(0.0 if wrong else 1.0, detail="; ".join(wrong))

    return score
