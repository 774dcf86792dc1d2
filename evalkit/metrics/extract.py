"""Finding the JSON in a model's answer.

Models wrap JSON in prose and code fences. The rule, in order:

1. If the text has a fenced code block (```json ... ``` or ``` ... ```), parse the
   first such block (blocks in other languages are skipped).
2. Otherwise, if the whole text (stripped) parses as a JSON object or array, use it.
   (A bare number, string or boolean is not taken as a structured answer.)
3. Otherwise, use the first ``{`` or ``[`` from which a complete JSON value can be
   decoded (``json.JSONDecoder.raw_decode``), ignoring what follows it.

Nothing else is repaired: trailing commas, single quotes and truncated objects are
not JSON, and a metric that needs JSON reports that the output has none.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["NoJSON", "extract_json"]

_FENCE = re.compile(r"```([^\n`]*)\n(.*?)```", re.DOTALL)  # group 1: the language tag
_DECODER = json.JSONDecoder()


class NoJSON(ValueError):
    """The text contains no parseable JSON value."""


def extract_json(text: str) -> Any:
    """Return the JSON value in ``text`` by the rule in this module's docstring.

    Raises:
        NoJSON: when no rule finds a JSON value; the message says why.
    """
    # finditer pairs each opening fence with its closing one, so a block in another
    # language is skipped whole rather than its closing fence read as an opening one
    fence = next((m for m in _FENCE.finditer(text) if m.group(1).strip() in ("", "json", "JSON")), None)
    if fence:
        body = fence.group(2).strip()
        try:
            return json.loads(body)
        except json.JSONDecodeError as exc:
            raise NoJSON(f"fenced block is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    stripped = text.strip()
    try:
        whole = json.loads(stripped)
        if isinstance(whole, (dict, list)):
            return whole
    except json.JSONDecodeError:
        pass
    for match in re.finditer(r"[{\[]", stripped):
        try:
            value, _ = _DECODER.raw_decode(stripped, match.start())
        except json.JSONDecodeError:
            continue
        return value
    raise NoJSON("no JSON object or array found in the output")
