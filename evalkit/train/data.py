"""Training examples: conversational prompt/completion pairs, rendered with the eval template.

Every example becomes ``{"prompt": [system?, user], "completion": [assistant]}``.
TRL renders it with the tokenizer's chat template (the same one ``evalkit run``
uses) and, with completion-only loss, masks the prompt out of the loss.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evalkit._util import canonical_json, sha256_text
from evalkit.data import Renderer, load_items
from evalkit.errors import DataError, TrainError
from evalkit.suite import load_suite

__all__ = ["Example", "contamination", "examples_from_jsonl", "examples_from_suite"]

Example = dict[str, list[dict[str, str]]]


def examples_from_suite(suite_path: Path, limit: int | None = None) -> list[Example]:
    """The suite's ``train_data`` rendered with its prompt; ``prompt.target`` is the assistant turn."""
    suite = load_suite(suite_path)
    if suite.train_data is None:
        raise TrainError(f"{suite_path}: the suite has no train_data; add it, or give data.path in the training config")
    items = load_items(suite.train_data, str(suite_path))[:limit]
    renderer = Renderer(suite.prompt, str(suite_path))
    return [{"prompt": renderer.messages(it), "completion": [{"role": "assistant", "content": renderer.target(it)}]} for it in items]


ROLES = ("system", "user", "assistant")


def _as_messages(value: Any, field: str, role: str) -> list[dict[str, str]]:
    """A string (one ``role`` turn) or a list of ``{role, content}`` messages with string contents."""
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if not isinstance(value, list) or not value:
        raise ValueError(f"`{field}` must be a string or a non-empty list of {{role, content}} messages, not {type(value).__name__}")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not {"role", "content"} <= set(m):
            raise ValueError(f"`{field}[{i}]` must be an object with `role` and `content`")
        if m["role"] not in ROLES:
            raise ValueError(f"`{field}[{i}].role` is {m['role']!r}; use one of {', '.join(ROLES)}")
        if not isinstance(m["content"], str):
            raise ValueError(f"`{field}[{i}].content` must be a string, not {type(m['content']).__name__}")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _example(row: Any) -> Example:
    if not isinstance(row, dict):
        raise ValueError(f"each line must be a JSON object, not {type(row).__name__}")
    if "messages" in row:
        msgs = _as_messages(row["messages"], "messages", "user")
        if len(msgs) < 2 or msgs[-1]["role"] != "assistant":
            raise ValueError("`messages` must end with an assistant turn (the text to learn) after at least one prompt turn")
        return {"prompt": msgs[:-1], "completion": msgs[-1:]}
    if "prompt" in row and "completion" in row:
        completion = _as_messages(row["completion"], "completion", "assistant")
        if any(m["role"] != "assistant" for m in completion):
            raise ValueError("`completion` must hold assistant turns only")
        return {"prompt": _as_messages(row["prompt"], "prompt", "user"), "completion": completion}
    raise ValueError("each row needs `messages`, or `prompt` and `completion`")


def examples_from_jsonl(path: Path, limit: int | None = None) -> list[Example]:
    """Rows of chat ``messages`` (the last, an assistant turn, is the completion) or ``prompt``/``completion``.

    Raises:
        DataError: a missing or unreadable file, or a line that is not UTF-8, not JSON, or not a
            training example, naming ``file:line``.
    """
    if path.is_dir():
        raise DataError(f"{path}: data.path is a folder; give a JSONL file (one training example per line)")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: training data file not found; data.path is relative to the training config") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the training data: {exc.strerror}") from exc
    out: list[Example] = []
    for lineno, data in enumerate(raw.splitlines(), 1):
        where = f"{path}:{lineno}"
        try:
            line = data.decode("utf-8-sig" if lineno == 1 else "utf-8")  # tolerate a BOM
        except UnicodeDecodeError as exc:
            raise DataError(f"{where}: not valid UTF-8 (byte {exc.start + 1} of the line); save the file as UTF-8") from None
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); one JSON object per line") from None
        try:
            out.append(_example(row))
        except ValueError as exc:
            raise DataError(f"{where}: {exc}") from None
        if limit and len(out) >= limit:
            break
    if not out:
        raise DataError(f"{path}: no training examples; the file is empty")
    return out


def data_hash(examples: list[Example]) -> str:
    return sha256_text(canonical_json(examples))


def contamination(examples: list[Example], eval_suite: Path, render: Any) -> list[str]:
    """Ids of eval items whose rendered prompt also appears among the training prompts.

    Args:
        render: renders a list of messages with the chat template (the eval rendering).
    """
    suite = load_suite(eval_suite)
    items = load_items(suite.data, str(eval_suite))
    renderer = Renderer(suite.prompt, str(eval_suite))
    train = {sha256_text(render(ex["prompt"])) for ex in examples}
    return [it.id for it in items if sha256_text(render(renderer.messages(it))) in train]
