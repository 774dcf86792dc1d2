"""A judge's reply: find its JSON, validate it against the verdict's schema, or say what is wrong.

Every judged verdict is a small JSON object with a JSON Schema (``{"supported": bool,
"reason": str}``, ``{"reason": str, "score": int}``, ...). The JSON is found with the
same rule as answers are (:func:`evalkit.metrics.extract_json`: a fenced block, the
whole text, or the first complete object), then validated strictly: a missing field,
a score off the scale or an extra key is a problem, never guessed around. A reply with
a problem gets one repair turn (:func:`repair_messages`); if that fails too, the
verdict is a recorded parse failure.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import jsonschema

from evalkit._util import json_path

__all__ = ["ReplyProblem", "parse_reply", "repair_messages", "response_format", "verdict_schema"]


class ReplyProblem(ValueError):
    """The reply has no JSON object, or one that does not match the schema; the message says which."""


def verdict_schema(properties: dict[str, Any], required: Sequence[str] | None = None) -> dict[str, Any]:
    """An object schema with exactly these properties, all required (as strict structured outputs want)."""
    return {"type": "object", "properties": properties, "required": list(required or properties), "additionalProperties": False}


def parse_reply(text: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The reply's JSON object, validated against ``schema``.

    Raises:
        ReplyProblem: no JSON object, or the first schema violation with its path.
    """
    from evalkit.metrics.extract import NoJSON, extract_json  # here: evalkit.metrics imports the judged metrics, which import judges

    try:
        value = extract_json(text)
    except NoJSON as exc:
        raise ReplyProblem(str(exc)) from None
    if not isinstance(value, dict):
        raise ReplyProblem(f"the JSON is a {type(value).__name__}, not an object")
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(value))
    if error is not None:
        where = json_path(error.absolute_path)
        raise ReplyProblem(f"{where}: {error.message}" if error.absolute_path else error.message)
    return value


def repair_messages(messages: Sequence[dict[str, str]], reply: str, problem: str, schema: dict[str, Any],
                    example: str = "") -> list[dict[str, str]]:
    """The conversation for the one repair attempt: the judge's reply, what is wrong with it, the format again.

    The format is the prompt's own example when there is one (small judges follow an example better
    than a schema), else the JSON Schema.
    """
    shape = f"like {example}" if example else f"matching this JSON Schema: {json.dumps(schema, separators=(',', ':'))}"
    return [
        *[dict(m) for m in messages],
        {"role": "assistant", "content": reply},
        {"role": "user", "content": f"That reply cannot be used: {problem}. Answer again with only a JSON object, {shape}"},
    ]


def response_format(kind: str, name: str, schema: dict[str, Any]) -> dict[str, Any] | None:
    """OpenAI's ``response_format`` for a verdict: a JSON Schema, any JSON object, or nothing."""
    if kind == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
    if kind == "json_object":
        return {"type": "json_object"}
    return None
