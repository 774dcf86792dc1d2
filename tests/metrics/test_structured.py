"""Structured-answer metrics: json_valid, json_schema, field_match; and Metric.score's error handling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evalkit.errors import MetricError
from evalkit.metrics import Metric, build_metric
from evalkit.records import Item, Score
from evalkit.suite import MetricSpec

SCHEMA = {
    "type": "object",
    "required": ["severity", "component"],
    "properties": {
        "severity": {"enum": ["SEV1", "SEV2", "SEV3", "SEV4"]},
        "component": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}
ITEM = Item(id="i1", row={"severity": "SEV1", "component": "database", "sev_gold": "SEV1", "eta": 30})


def build(type_: str, base_dir: Path = Path("."), **params: Any) -> Metric:
    return build_metric(MetricSpec(name="m", type=type_, params=params), base_dir)


def score(metric: Metric, output: Any, item: Item = ITEM) -> Score:
    return metric.score(output if isinstance(output, str) else json.dumps(output), item)


# --- json_valid ----------------------------------------------------------------------


def test_json_valid_scores_1_for_json_in_prose():
    assert score(build("json_valid"), 'Result: {"a": 1}') == Score(1.0)


def test_json_valid_scores_0_with_the_reason_when_there_is_no_json():
    result = score(build("json_valid"), "SEV1, database")

    assert result.value == 0.0
    assert result.error is None
    assert "no JSON" in result.detail


def test_json_valid_is_binary():
    assert build("json_valid").binary is True


# --- json_schema ---------------------------------------------------------------------


def test_json_schema_passes_a_conforming_answer(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps(SCHEMA))
    metric = build("json_schema", base_dir=tmp_path, schema="s.json")

    assert score(metric, {"severity": "SEV2", "component": "auth"}) == Score(1.0)


def test_json_schema_failure_detail_holds_the_json_path_of_the_error(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps(SCHEMA))
    metric = build("json_schema", base_dir=tmp_path, schema="s.json")

    result = score(metric, {"severity": "SEV9", "component": "auth"})

    assert result.value == 0.0
    assert result.detail.startswith("$.severity: ")
    assert "'SEV9' is not one of" in result.detail


def test_json_schema_failure_path_reaches_into_arrays():
    metric = build("json_schema", schema=SCHEMA)

    result = score(metric, {"severity": "SEV2", "component": "auth", "tags": ["ok", 3]})

    assert result.detail.startswith("$.tags[1]: ")


def test_json_schema_failure_at_the_top_level_is_reported_at_dollar():
    metric = build("json_schema", schema=SCHEMA)

    result = score(metric, {"severity": "SEV2"})

    assert result.value == 0.0
    assert result.detail == "$: 'component' is a required property"


def test_json_schema_accepts_an_inline_schema_dict():
    metric = build("json_schema", schema={"type": "array"})

    assert score(metric, [1, 2]).value == 1.0
    assert score(metric, {"a": 1}).value == 0.0


def test_json_schema_scores_0_when_the_answer_has_no_json():
    result = score(build("json_schema", schema=SCHEMA), "SEV1")

    assert result.value == 0.0
    assert result.error is None
    assert "no JSON" in result.detail


def test_json_schema_rejects_an_invalid_schema_at_build():
    with pytest.raises(MetricError, match="invalid JSON Schema"):
        build("json_schema", schema={"type": "objekt"})


def test_json_schema_rejects_a_schema_file_that_is_not_json(tmp_path):
    (tmp_path / "s.json").write_text("{not json")

    with pytest.raises(MetricError, match="is not JSON"):
        build("json_schema", base_dir=tmp_path, schema="s.json")


def test_json_schema_rejects_a_missing_schema_file_at_build(tmp_path):
    with pytest.raises(MetricError, match="not found"):
        build("json_schema", base_dir=tmp_path, schema="absent.json")


# --- field_match ---------------------------------------------------------------------


def test_field_match_single_field_matches():
    metric = build("field_match", field="severity")

    assert score(metric, {"severity": "SEV1", "component": "x"}) == Score(1.0)


def test_field_match_single_field_mismatch_says_got_and_want():
    result = score(build("field_match", field="severity"), {"severity": "SEV3"})

    assert result.value == 0.0
    assert result.detail == "severity: got 'SEV3', want 'SEV1'"


def test_field_match_missing_answer_field_scores_0_saying_missing():
    result = score(build("field_match", field="severity"), {"component": "database"})

    assert result.value == 0.0
    assert result.detail == "severity: missing (want 'SEV1')"


def test_field_match_several_fields_all_must_match():
    metric = build("field_match", fields=["severity", "component"])

    assert score(metric, {"severity": "SEV1", "component": "database"}).value == 1.0
    half = score(metric, {"severity": "SEV1", "component": "auth"})
    assert half.value == 0.0
    assert half.detail == "component: got 'auth', want 'database'"


def test_field_match_dotted_path_reaches_nested_fields():
    metric = build("field_match", field="triage.severity", reference="severity")

    assert score(metric, {"triage": {"severity": "SEV1"}}).value == 1.0
    assert score(metric, {"triage": {"severity": "SEV2"}}).value == 0.0


def test_field_match_dotted_path_can_index_lists():
    metric = build("field_match", field="items.1.severity", reference="severity")

    assert score(metric, {"items": [{"severity": "SEV4"}, {"severity": "SEV1"}]}).value == 1.0


def test_field_match_reference_names_a_different_row_field():
    metric = build("field_match", field="severity", reference="sev_gold")
    item = Item(id="i", row={"severity": "SEV4", "sev_gold": "SEV1"})

    assert score(metric, {"severity": "SEV1"}, item).value == 1.0


def test_field_match_reference_mapping_maps_answer_fields_to_row_fields():
    metric = build("field_match", fields=["sev", "component"], reference={"sev": "sev_gold"})

    assert score(metric, {"sev": "SEV1", "component": "database"}).value == 1.0


def test_field_match_reference_string_with_several_fields_is_rejected():
    with pytest.raises(MetricError, match="reference as a string needs a single field"):
        build("field_match", fields=["a", "b"], reference="x")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "exactly one of field or fields"),
        ({"field": "a", "fields": ["b"]}, "exactly one of field or fields"),
        ({"fields": []}, "at least one field"),
        ({"field": "a", "tolerance": -1.0}, "must be >= 0"),
    ],
)
def test_field_match_bad_params_are_rejected_at_build(params, message):
    with pytest.raises(MetricError, match=message):
        build("field_match", **params)


def test_field_match_exact_is_case_sensitive():
    assert score(build("field_match", field="severity"), {"severity": "sev1"}).value == 0.0


def test_field_match_exact_does_not_equate_a_number_with_its_text():
    item = Item(id="i", row={"eta": "30"})

    assert score(build("field_match", field="eta"), {"eta": 30}, item).value == 0.0


def test_field_match_casefold_ignores_case_and_extra_whitespace():
    metric = build("field_match", field="component", normalize="casefold")
    item = Item(id="i", row={"component": "API gateway"})

    assert score(metric, {"component": "  api   GATEWAY "}, item).value == 1.0


def test_field_match_strip_ignores_surrounding_whitespace_only():
    metric = build("field_match", field="severity", normalize="strip")

    assert score(metric, {"severity": " SEV1\n"}).value == 1.0
    assert score(metric, {"severity": "sev1"}).value == 0.0


def test_field_match_numeric_allows_the_tolerance():
    metric = build("field_match", field="eta", normalize="numeric", tolerance=5)

    assert score(metric, {"eta": "34.5"}).value == 1.0
    assert score(metric, {"eta": 35}).value == 1.0
    assert score(metric, {"eta": 35.5}).value == 0.0


def test_field_match_numeric_without_tolerance_is_exact_in_value():
    metric = build("field_match", field="eta", normalize="numeric")

    assert score(metric, {"eta": 30.0}).value == 1.0
    assert score(metric, {"eta": 30.01}).value == 0.0


def test_field_match_numeric_non_number_does_not_match():
    assert score(build("field_match", field="eta", normalize="numeric"), {"eta": "soon"}).value == 0.0


def test_field_match_answer_without_json_scores_0_with_a_detail_not_an_error():
    result = score(build("field_match", field="severity"), "I think SEV1.")

    assert result.value == 0.0
    assert result.error is None
    assert "no JSON" in result.detail


def test_field_match_row_without_the_reference_field_is_an_error_not_a_0():
    metric = build("field_match", field="severity", reference="gold")

    result = score(metric, {"severity": "SEV1"})

    assert result.value is None
    assert result.error == "row has no reference field 'gold'"


def test_field_match_missing_reference_is_an_error_even_when_the_answer_has_no_json():
    result = score(build("field_match", field="priority"), "no json here")

    assert result.value is None
    assert result.error is not None


# --- Metric.score ---------------------------------------------------------------------


def test_metric_score_turns_an_exception_in_the_scorer_into_an_error_score():
    def broken(output: str, item: Item) -> Score:
        raise KeyError("boom")

    result = Metric(name="m", type="t", scorer=broken).score("out", ITEM)

    assert result.value is None
    assert result.error == "KeyError: 'boom'"


def test_metric_score_turns_a_non_score_return_into_an_error_score():
    result = Metric(name="m", type="t", scorer=lambda output, item: 1.0).score("out", ITEM)

    assert result.value is None
    assert result.error == "metric returned float, expected Score"


def test_pass_fail_metric_returning_a_fraction_is_recorded_as_an_error():
    """Regression: a plugin declared pass/fail returning 0.5 crashed the statistics after generation."""
    from evalkit.metrics import Metric

    m = Metric(name="x", type="x", binary=True, scorer=lambda output, item: Score(0.5))
    score = m.score("out", Item(id="i", row={}))
    assert score.value is None and "expected 0 or 1" in score.error
    inf = Metric(name="y", type="y", scorer=lambda output, item: Score(float("inf"))).score("out", Item(id="i", row={}))
    assert inf.value is None and "non-finite" in inf.error
