"""Suite loading: schema validation, metric building, error messages, decoding parameters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.errors import SuiteError
from evalkit.suite import GenerationSpec, load_suite

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "suites" / "incident-triage.yaml"

HEAD = """\
name: tiny
data:
  path: data.jsonl
  id_field: id
prompt:
  user: "Report: {{ report }}"
"""


def suite_with_metrics(metrics_yaml: str) -> str:
    """A valid suite head followed by a ``metrics:`` block (already indented as list items)."""
    return HEAD + "metrics:\n" + metrics_yaml


def second_metric(type_: str, params: dict | None = None) -> str:
    """A metrics block whose second entry (``metrics[1]``) is the one under test."""
    entry = f"  - name: probe\n    type: {type_}\n"
    if params is not None:
        entry += f"    params: {json.dumps(params)}\n"
    return suite_with_metrics("  - name: format\n    type: json_valid\n" + entry)


# --- the shipped suite ---------------------------------------------------------------


def test_shipped_incident_triage_suite_loads_with_its_three_metrics():
    suite = load_suite(SHIPPED)

    assert suite.name == "incident-triage"
    assert [(m.name, m.type) for m in suite.metrics] == [
        ("format", "json_schema"),
        ("severity", "field_match"),
        ("component", "field_match"),
        ("faithfulness", "faithfulness"),
    ]


def test_shipped_suite_data_paths_resolve_relative_to_the_suite_file(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the working directory must not matter

    suite = load_suite(SHIPPED)

    assert suite.data.path == (REPO / "suites" / "data" / "incident-triage.eval.jsonl").resolve()
    assert suite.data.path.is_file()
    assert suite.data.id_field == "id"
    assert suite.data.cluster_field == "source"
    assert suite.train_data is not None
    assert suite.train_data.path == (REPO / "suites" / "data" / "incident-triage.train.jsonl").resolve()


def test_data_path_resolves_against_the_suite_folder_when_loaded_from_elsewhere(make_suite, monkeypatch, tmp_path):
    path = make_suite()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    suite = load_suite(path)

    assert suite.data.path == (path.parent / "data.jsonl").resolve()
    assert suite.dir == path.parent.resolve()


def test_suite_records_the_sha256_of_the_file_bytes(make_suite):
    import hashlib

    path = make_suite()

    assert load_suite(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_generation_block_is_read_into_generation_spec(make_suite):
    suite = load_suite(make_suite(max_new_tokens=17))

    assert suite.generation.max_new_tokens == 17
    assert suite.generation.temperature == 0.0


# --- malformed files -----------------------------------------------------------------


def test_malformed_yaml_error_names_the_file_and_line(make_suite):
    text = "name: tiny\ndata:\n  path: data.jsonl\nprompt:\n  user: x\n   system: y\nmetrics: []\n"
    path = make_suite(yaml_text=text)

    with pytest.raises(SuiteError) as info:
        load_suite(path)

    assert f"{path}:6:" in str(info.value)
    assert "invalid YAML" in str(info.value)


def test_missing_suite_file_is_a_suite_error_naming_the_path(tmp_path):
    path = tmp_path / "nope.yaml"

    with pytest.raises(SuiteError, match="nope.yaml: file not found"):
        load_suite(path)


def test_yaml_that_is_not_a_mapping_is_rejected(make_suite):
    path = make_suite(yaml_text="- just\n- a list\n")

    with pytest.raises(SuiteError, match="must be a YAML mapping"):
        load_suite(path)


# --- schema violations ---------------------------------------------------------------


def test_missing_prompt_is_rejected_naming_the_field(make_suite):
    text = "name: tiny\ndata: {path: data.jsonl}\nmetrics:\n  - {name: format, type: json_valid}\n"

    with pytest.raises(SuiteError) as info:
        load_suite(make_suite(yaml_text=text))

    assert "'prompt' is a required property" in str(info.value)


def test_misspelled_top_level_key_is_rejected_naming_it_and_the_allowed_keys(make_suite):
    text = HEAD + "metircs:\n  - {name: format, type: json_valid}\n"

    with pytest.raises(SuiteError) as info:
        load_suite(make_suite(yaml_text=text))

    message = str(info.value)
    assert "'metircs' was unexpected" in message
    assert "allowed: " in message and "metrics" in message


def test_max_new_tokens_zero_is_rejected_naming_the_field(make_suite):
    path = make_suite(max_new_tokens=0)

    with pytest.raises(SuiteError, match=r"generation\.max_new_tokens: 0 is less than the minimum of 1"):
        load_suite(path)


def test_misspelled_generation_key_is_rejected_naming_it(make_suite):
    text = suite_with_metrics("  - {name: format, type: json_valid}\n") + "generation: {temprature: 0.7}\n"

    with pytest.raises(SuiteError, match=r"generation: .*'temprature' was unexpected"):
        load_suite(make_suite(yaml_text=text))


def test_data_with_neither_path_nor_hf_is_rejected(make_suite):
    text = "name: tiny\ndata: {id_field: id}\nprompt: {user: x}\nmetrics:\n  - {name: format, type: json_valid}\n"

    with pytest.raises(SuiteError, match=r"tiny\.yaml: data: "):
        load_suite(make_suite(yaml_text=text))


# --- metrics -------------------------------------------------------------------------


def test_unknown_metric_type_is_rejected_listing_the_known_metrics(make_suite):
    path = make_suite(yaml_text=second_metric("json_vaild"))

    with pytest.raises(SuiteError) as info:
        load_suite(path)

    message = str(info.value)
    assert "metrics[1]" in message
    assert "'json_vaild'" in message
    for known in ("json_valid", "json_schema", "field_match", "exact_match", "regex"):
        assert known in message


@pytest.mark.parametrize(
    ("type_", "params", "fragment"),
    [
        pytest.param("regex", {"pattern": "x", "flgas": ["IGNORECASE"]}, "accepts: pattern, flags, must_match", id="unknown-param"),
        pytest.param("field_match", {"field": "severity", "normalize": "fuzzy"}, "normalize='fuzzy' is not one of", id="unknown-normalizer"),
        pytest.param("regex", {"pattern": "(unclosed"}, "not a valid regular expression", id="invalid-regex"),
        pytest.param("json_schema", {"schema": "no-such-schema.json"}, "no-such-schema.json not found", id="missing-schema-file"),
        pytest.param("field_match", {}, "exactly one of field or fields", id="field-match-without-field"),
        pytest.param("regex", {}, "missing a required argument: 'pattern'", id="missing-required-param"),
    ],
)
def test_bad_metric_params_are_rejected_naming_the_metric_index(make_suite, type_, params, fragment):
    path = make_suite(yaml_text=second_metric(type_, params))

    with pytest.raises(SuiteError) as info:
        load_suite(path)

    message = str(info.value)
    assert "metrics[1] (probe)" in message
    assert fragment in message


def test_json_schema_file_is_resolved_relative_to_the_suite(make_suite):
    path = make_suite(yaml_text=second_metric("json_schema", {"schema": "answer.schema.json"}))
    (path.parent / "answer.schema.json").write_text(json.dumps({"type": "object"}))

    suite = load_suite(path)

    assert suite.metrics[1].params == {"schema": "answer.schema.json"}


def test_duplicate_metric_names_are_rejected(make_suite):
    text = suite_with_metrics("  - {name: format, type: json_valid}\n  - {name: format, type: regex, params: {pattern: x}}\n")

    with pytest.raises(SuiteError, match=r"metrics\[1\]\.name: 'format' is used twice"):
        load_suite(make_suite(yaml_text=text))


# --- decoding parameters -------------------------------------------------------------


def test_decoding_is_greedy_by_default():
    assert GenerationSpec().decoding() == {"max_new_tokens": 128, "do_sample": False}


def test_greedy_decoding_ignores_sampling_parameters():
    """Under greedy decoding top_p and seed do not change outputs, so they must not change cache keys."""
    assert GenerationSpec(top_p=0.5, seed=7).decoding() == GenerationSpec().decoding()


def test_sampling_decoding_includes_temperature_top_p_and_seed():
    spec = GenerationSpec(max_new_tokens=32, temperature=0.7, top_p=0.9, seed=3)

    assert spec.decoding() == {"max_new_tokens": 32, "do_sample": True, "temperature": 0.7, "top_p": 0.9, "seed": 3}


def test_batch_size_is_not_part_of_decoding():
    assert GenerationSpec(batch_size=4).decoding() == GenerationSpec(batch_size=32).decoding()


def test_suite_gate_section_is_validated_when_the_suite_loads(make_suite):
    """Regression: a typo in the suite's gate: section only failed at `evalkit gate`, after the whole run."""
    path = make_suite()
    path.write_text(path.read_text() + "gate:\n  rules:\n    - {metric: formatt, min_delta: 0.1}\n")
    with pytest.raises(SuiteError, match=r"gate.rules\[0\].metric: 'formatt' is not a metric"):
        load_suite(path)
    path.write_text(path.read_text().replace("metric: formatt, min_delta", "metric: format, min_deltaa"))
    with pytest.raises(SuiteError, match="gate"):
        load_suite(path)
