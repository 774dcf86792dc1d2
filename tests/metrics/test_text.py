"""Text metrics: exact_match against a row field, regex search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evalkit.errors import MetricError
from evalkit.metrics import Metric, build_metric
from evalkit.records import Item, Score
from evalkit.suite import MetricSpec

ITEM = Item(id="i1", row={"answer": "Paris", "count": 4})


def build(type_: str, **params: Any) -> Metric:
    return build_metric(MetricSpec(name="m", type=type_, params=params), Path("."))


# --- exact_match ---------------------------------------------------------------------


def test_exact_match_default_strips_surrounding_whitespace():
    metric = build("exact_match", reference="answer")

    assert metric.score("  Paris\n", ITEM) == Score(1.0)


def test_exact_match_default_is_case_sensitive():
    result = build("exact_match", reference="answer").score("paris", ITEM)

    assert result.value == 0.0
    assert result.detail == "want 'Paris'"


def test_exact_match_exact_normalizer_keeps_whitespace_significant():
    metric = build("exact_match", reference="answer", normalize="exact")

    assert metric.score("Paris", ITEM).value == 1.0
    assert metric.score("Paris\n", ITEM).value == 0.0


def test_exact_match_casefold_ignores_case_and_inner_whitespace():
    metric = build("exact_match", reference="answer", normalize="casefold")
    item = Item(id="i", row={"answer": "New  York"})

    assert metric.score(" new york ", item).value == 1.0


def test_exact_match_numeric_compares_numbers():
    metric = build("exact_match", reference="count", normalize="numeric")

    assert metric.score("4.0", ITEM).value == 1.0
    assert metric.score("four", ITEM).value == 0.0


def test_exact_match_compares_against_a_non_string_reference_as_text():
    assert build("exact_match", reference="count").score("4", ITEM).value == 1.0


def test_exact_match_missing_reference_field_is_an_error_not_a_0():
    result = build("exact_match", reference="gold").score("Paris", ITEM)

    assert result.value is None
    assert result.error == "row has no reference field 'gold'"


def test_exact_match_requires_reference():
    with pytest.raises(MetricError, match="missing a required argument: 'reference'"):
        build("exact_match")


def test_exact_match_rejects_an_unknown_normalizer():
    with pytest.raises(MetricError, match="normalize='fuzzy' is not one of exact, strip, casefold, numeric"):
        build("exact_match", reference="answer", normalize="fuzzy")


# --- regex ---------------------------------------------------------------------------


def test_regex_scores_1_when_the_pattern_is_found_and_reports_the_match():
    result = build("regex", pattern=r"SEV[1-4]").score("It is SEV2, clearly.", ITEM)

    assert result.value == 1.0
    assert result.detail == "matched 'SEV2'"


def test_regex_scores_0_when_the_pattern_is_not_found():
    result = build("regex", pattern=r"SEV[1-4]").score("no idea", ITEM)

    assert result == Score(0.0, detail="no match")


def test_regex_is_case_sensitive_without_flags():
    assert build("regex", pattern="database").score("DATABASE down", ITEM).value == 0.0


def test_regex_ignorecase_flag():
    assert build("regex", pattern="database", flags=["IGNORECASE"]).score("DATABASE down", ITEM).value == 1.0


def test_regex_multiline_and_dotall_flags():
    text = "summary:\nSEV1\nend"

    assert build("regex", pattern=r"^SEV1$").score(text, ITEM).value == 0.0
    assert build("regex", pattern=r"^SEV1$", flags=["MULTILINE"]).score(text, ITEM).value == 1.0
    assert build("regex", pattern=r"summary:.SEV1", flags=["DOTALL"]).score(text, ITEM).value == 1.0


def test_regex_must_match_false_scores_1_when_the_pattern_is_absent():
    metric = build("regex", pattern=r"(?i)as an ai", must_match=False)

    assert metric.score("SEV1", ITEM).value == 1.0
    assert metric.score("As an AI, I cannot", ITEM).value == 0.0


def test_regex_rejects_an_unknown_flag():
    with pytest.raises(MetricError, match="flag 'VERBOSE' is not one of IGNORECASE, MULTILINE, DOTALL"):
        build("regex", pattern="x", flags=["VERBOSE"])


def test_regex_rejects_an_invalid_pattern():
    with pytest.raises(MetricError, match="not a valid regular expression"):
        build("regex", pattern="[unclosed")
