"""Typed records that flow between the layers: items, generations and scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Generation", "Item", "Score", "ScoreRow"]


@dataclass(frozen=True)
class Item:
    """One evaluation example: a data row with a stable id."""

    id: str
    """Stable identifier: the suite's ``id_field`` or a hash of the row."""
    row: dict[str, Any]
    """The row's fields, as read from the data file."""
    cluster: str | None = None
    """Items sharing a source share a cluster (for clustered standard errors)."""


@dataclass(frozen=True)
class Generation:
    """One model output for one item in one arm."""

    item_id: str
    """The item this answers."""
    arm: str
    """``"base"`` or the adapter's name."""
    text: str
    """The decoded completion, special tokens removed."""
    prompt_tokens: int
    """Tokens in the rendered prompt."""
    completion_tokens: int
    """Tokens generated (up to and including the end-of-turn token)."""
    latency_s: float
    """Wall time of the batch that produced it, divided by the batch size."""
    cached: bool = False
    """True when it came from the generation cache rather than the model."""


@dataclass(frozen=True)
class Score:
    """What a metric says about one output.

    A metric that cannot score an item returns ``Score.failed(reason)``: the error
    is recorded, counted in the report, and excluded from means; it is never a 0.
    """

    value: float | None
    """The score; pass/fail metrics use 1.0 and 0.0. None when ``error`` is set."""
    detail: str = ""
    """Why: the first schema error's JSON path, the compared values, and so on."""
    error: str | None = None
    """Set when the metric could not score this item."""

    @classmethod
    def failed(cls, error: str, detail: str = "") -> Score:
        """A score that records why the metric could not score the item."""
        return cls(value=None, detail=detail, error=error)


@dataclass(frozen=True)
class ScoreRow:
    """One row of ``scores.csv``: a score placed in the long table."""

    item_id: str
    arm: str
    metric: str
    value: float | None
    error: str | None = None
    detail: str = ""
