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


def _as_messages(value: Any, role: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list) and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in value):
        return [{"role": m["role"], "content": m["content"]} for m in value]
    raise ValueError(f"{role} must be a string or a list of {{role, content}} messages")


def examples_from_jsonl(path: Path, limit: int | None = None) -> list[Example]:
    """Rows of chat ``messages`` (the last, an assistant turn, is the completion) or ``prompt``/``completion``."""
    if not path.exists():
        raise DataError(f"{path}: training data file not found; data.path is relative to the training config")
    out: list[Example] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not valid JSON ({exc.msg})") from None
            try:
                if "messages" in row:
                    msgs = _as_messages(row["messages"], "user")
                    if len(msgs) < 2 or msgs[-1]["role"] != "assistant":
                        raise ValueError("messages must end with an assistant turn (the text to learn)")
                    out.append({"prompt": msgs[:-1], "completion": msgs[-1:]})
                elif "prompt" in row and "completion" in row:
                    out.append({"prompt": _as_messages(row["prompt"], "user"), "completion": _as_messages(row["completion"], "assistant")})
                else:
                    raise ValueError("each row needs `messages`, or `prompt` and `completion`")
            except ValueError as exc:
                raise DataError(f"{where}: {exc}") from None
            if limit and len(out) >= limit:
                break
    if not out:
        raise DataError(f"{path}: no training examples")
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
