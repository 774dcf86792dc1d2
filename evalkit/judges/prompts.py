"""The judge prompts: templates, reply schemas and built-in rubrics, in one place.

Templates use ``string.Template`` (``$name``) so the JSON shown to the judge needs no
escaping, and substituted text (a report, an answer) is never parsed as a template.
Each template's sha256 goes into the manifest: a changed prompt is a different judge.

No template names an arm. Pairwise prompts call the answers "A" and "B", and the
metric shows them in both orders.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import Template
from typing import Any

from evalkit._util import sha256_text
from evalkit.judges.parse import verdict_schema
from evalkit.models.base import Message

__all__ = ["BUILTIN_RUBRICS", "CLAIM_SPLIT", "CLAIM_VERDICT", "PAIRWISE", "RUBRIC", "PromptTemplate", "rubric_example", "task_text"]


@dataclass(frozen=True)
class PromptTemplate:
    """A system and a user template, rendered to chat messages."""

    name: str
    system: str
    user: str

    @property
    def sha256(self) -> str:
        return sha256_text(self.system + "\x00" + self.user)

    def messages(self, **values: Any) -> tuple[Message, ...]:
        """Substitute every ``$name`` (a missing one raises KeyError: a bug, not user input)."""
        return ({"role": "system", "content": Template(self.system).substitute(values)},
                {"role": "user", "content": Template(self.user).substitute(values)})


# The reply format is shown as literal JSON examples, last: small judges copy a format they have just seen,
# while a template such as {"supported": true or false} is copied verbatim and is not JSON (measured with
# SmolLM2-135M: every reply failed to parse with that wording).
CLAIM_VERDICT_EXAMPLE = '{"supported": true, "reason": "<a few words>"} or {"supported": false, "reason": "<a few words>"}'
CLAIM_VERDICT = PromptTemplate(
    "claim_verdict",
    system="You check whether a claim is supported by a source text, using only the source text. "
    "Reply with only a JSON object.",
    user='Source: """$source"""\nClaim: $claim\n'
    "Is the claim supported by the source (stated there, or following directly from it)? "
    f"Answer in JSON: {CLAIM_VERDICT_EXAMPLE}",
)
CLAIM_VERDICT_SCHEMA = verdict_schema({"supported": {"type": "boolean"}, "reason": {"type": "string"}})

CLAIM_SPLIT_EXAMPLE = '{"claims": ["<first claim>", "<second claim>"]}'
CLAIM_SPLIT = PromptTemplate(
    "claim_split",
    system="You split a text into short, self-contained factual claims. Reply with only a JSON object.",
    user='Text: """$text"""\nList every factual claim the text makes, each as one short sentence that can be '
    f"checked on its own. Answer in JSON: {CLAIM_SPLIT_EXAMPLE}",
)
CLAIM_SPLIT_SCHEMA = verdict_schema({"claims": {"type": "array", "items": {"type": "string"}, "maxItems": 32}})

RUBRIC = PromptTemplate(
    "rubric",
    system="You are a strict evaluator. You grade an answer with a rubric on a scale from $low to $high. "
    "Reply with only a JSON object.",
    user='Task given to the assistant:\n"""\n$task\n"""\n$reference\nAnswer to grade:\n"""\n$answer\n"""\n\n'
    "Rubric: $rubric\nScale: $low (worst) to $high (best).$anchors\n"
    'Answer in JSON: {"reason": "<a short reason>", "score": $example_score} with a whole number from $low to $high as the score.',
)


def rubric_example(low: int, high: int) -> str:
    """The reply format shown to the judge (and in the repair turn), with a score mid-scale."""
    return f'{{"reason": "<a short reason>", "score": {(low + high) // 2}}}'


def rubric_schema(low: int, high: int) -> dict[str, Any]:
    return verdict_schema({"reason": {"type": "string"}, "score": {"type": "integer", "minimum": low, "maximum": high}})


PAIRWISE_EXAMPLE = '{"reason": "<a short reason>", "winner": "A"} or {"reason": "<a short reason>", "winner": "B"} or {"reason": "<a short reason>", "winner": "tie"}'
PAIRWISE = PromptTemplate(
    "pairwise",
    system="You compare two answers to the same task and decide which is better. Judge only their content: "
    "the order in which they are shown says nothing about their quality. Reply with only a JSON object.",
    user='Task:\n"""\n$task\n"""\n\nAnswer A:\n"""\n$a\n"""\n\nAnswer B:\n"""\n$b\n"""\n\n'
    "Criterion: $criterion\n"
    f"Which answer is better? Answer in JSON: {PAIRWISE_EXAMPLE}",
)
PAIRWISE_SCHEMA = verdict_schema({"reason": {"type": "string"}, "winner": {"type": "string", "enum": ["A", "B", "tie"]}})
PAIRWISE_CRITERION = "Which answer follows the task's instructions better and is more accurate, complete and concise?"

BUILTIN_RUBRICS: dict[str, dict[str, Any]] = {
    "correctness": {
        "rubric": "Is the answer correct and complete compared with the reference answer? Judge meaning, not wording: "
        "5 = same meaning as the reference, nothing wrong or missing; 3 = partly correct; 1 = wrong or unrelated.",
        "scale": [1, 5],
        "needs_reference": True,
    },
    "helpfulness": {
        "rubric": "How well does the answer do the task: relevant, accurate, complete, clear and concise? "
        "5 = does the task fully and well; 3 = partly; 1 = does not do the task.",
        "scale": [1, 5],
        "needs_reference": False,
    },
}
"""Rubrics usable by name (``builtin: correctness``); each states its scale."""


def task_text(messages: tuple[dict[str, str], ...] | list[dict[str, str]]) -> str:
    """What the model was asked: its system and user messages, in order."""
    return "\n\n".join(m["content"] for m in messages if m.get("role") in ("system", "user")).strip()
