"""Bad suites, data files and templates given to ``evalkit validate``: one line, exit 2, the place named.

Each case starts from a valid suite (``conftest.SUITE`` with ``conftest.ROWS``) and breaks one
thing the way a new user does: a typo in a key, a value of the wrong type, a path relative to
the wrong folder, a file saved in the wrong encoding, a template that fails on a row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests.bad_inputs.conftest import ROWS, SUITE, assert_one_error, cli


def sub(old: str, new: str, text: str = SUITE) -> str:
    """SUITE with one piece replaced (the piece must be there, so a case cannot silently test nothing)."""
    assert old in text, f"{old!r} not in the suite"
    return text.replace(old, new, 1)


@dataclass(frozen=True)
class Case:
    id: str
    yaml: str | bytes = SUITE
    needles: tuple[str, ...] = ()
    rows: list[dict] | None = None
    files: dict[str, str | bytes] = field(default_factory=dict)


METRICS = "metrics:\n  - name: format\n    type: json_valid\n  - name: severity\n    type: field_match\n    params: {field: severity}\n"


def metric(type_: str, params: str) -> str:
    """SUITE whose only metric is ``type_`` with ``params`` (inline YAML)."""
    return sub(METRICS, f"metrics:\n  - name: m\n    type: {type_}\n    params: {params}\n")


def rows(**changes: object) -> list[dict]:
    """ROWS with the first row changed."""
    return [{**ROWS[0], **changes}, *ROWS[1:]]


CSV_SUITE = sub("path: data.jsonl", "path: data.csv")

FILE_CASES = [
    Case("empty-file", "", ("suite.yaml", "mapping")),
    Case("only-comments", "# my suite\n# TODO: fill in\n", ("suite.yaml", "mapping")),
    Case("invalid-utf8", b"name: triage\ndescription: caf\xe9\n", ("suite.yaml", "UTF-8")),
    Case("utf16-file", SUITE.encode("utf-16"), ("suite.yaml", "UTF-8")),
    Case("top-level-list", "- name: triage\n- data: data.jsonl\n", ("suite.yaml", "mapping")),
    Case("top-level-string", "triage\n", ("suite.yaml", "mapping")),
    Case("unclosed-bracket", sub("id_field: id", "id_field: [id"), ("suite.yaml", "invalid YAML")),
    Case("tab-indentation", sub("  path: data.jsonl", "\tpath: data.jsonl"), ("suite.yaml", "invalid YAML", ":4:")),
    Case("python-tag", "!!python/object/apply:os.system ['echo owned']\n", ("suite.yaml", "invalid YAML")),
    Case("duplicate-key", SUITE + "metrics:\n  - {name: other, type: json_valid}\n", ("suite.yaml", "'metrics'", "twice")),
    Case("duplicate-nested-key", sub("  id_field: id\n", "  id_field: id\n  path: other.jsonl\n"), ("suite.yaml", "'path'", "twice")),
]

TOP_LEVEL_CASES = [
    Case("zero-metrics", sub(METRICS, "metrics: []\n"), ("suite.yaml", "metrics", "non-empty")),
    Case("no-metrics-key", sub(METRICS, ""), ("suite.yaml", "'metrics'", "required")),
    Case("typo-metric-key", sub("metrics:", "metric:"), ("suite.yaml", "'metric'", "allowed")),
    Case("typo-prompt-usr", sub("  user:", "  usr:"), ("suite.yaml", "prompt", "'usr'")),
    Case("typo-generation-key", sub("max_new_tokens: 4", "max_tokens: 4"), ("suite.yaml", "generation", "'max_tokens'")),
    Case("name-with-space", sub("name: triage", "name: incident triage"), ("suite.yaml", "name", "incident triage")),
    Case("name-unicode", sub("name: triage", "name: triagé"), ("suite.yaml", "name", "triagé")),
    Case("name-number", sub("name: triage", "name: 2024"), ("suite.yaml", "name", "string")),
    Case("name-missing", sub("name: triage\n", ""), ("suite.yaml", "'name'", "required")),
    Case("description-number", sub("description: a small suite as a new user writes it", "description: 5"), ("suite.yaml", "description")),
    Case("data-as-string", sub("data:\n  path: data.jsonl\n  id_field: id\n", "data: data.jsonl\n"), ("suite.yaml", "data", "object")),
    Case("data-path-and-hf", sub("  id_field: id\n", "  id_field: id\n  hf: {path: org/set}\n"), ("suite.yaml", "data", "only one of path, hf")),
    Case("data-neither-path-nor-hf", sub("  path: data.jsonl\n", ""), ("suite.yaml", "data", "one of path, hf")),
    Case("data-path-null", sub("path: data.jsonl", "path:"), ("suite.yaml", "data.path", "None")),
    Case("data-limit-zero", sub("  id_field: id\n", "  id_field: id\n  limit: 0\n"), ("suite.yaml", "data.limit")),
    Case("data-limit-negative", sub("  id_field: id\n", "  id_field: id\n  limit: -5\n"), ("suite.yaml", "data.limit")),
    Case("data-limit-float", sub("  id_field: id\n", "  id_field: id\n  limit: 2.0\n"), ("suite.yaml", "data.limit", "integer")),
    Case("data-limit-string", sub("  id_field: id\n", "  id_field: id\n  limit: ten\n"), ("suite.yaml", "data.limit")),
    Case("data-hf-path-number", sub("  path: data.jsonl\n", "  hf: {path: 5}\n"), ("suite.yaml", "data.hf.path")),
    Case("train-data-empty", SUITE + "train_data: {}\n", ("suite.yaml", "train_data", "one of path, hf")),
    Case("prompt-user-number", sub('user: "Report: {{ report }}"', "user: 42"), ("suite.yaml", "prompt.user", "string")),
    Case("prompt-user-empty", sub('"Report: {{ report }}"', '""'), ("suite.yaml", "prompt.user")),
    Case("prompt-missing-user", sub('  user: "Report: {{ report }}"\n', ""), ("suite.yaml", "prompt", "'user'")),
    Case("prompt-as-string", sub(
        "prompt:\n  system: Answer with JSON.\n  user: \"Report: {{ report }}\"\n  target: '{\"severity\": \"{{ severity }}\"}'\n",
        "prompt: \"Report: {{ report }}\"\n"), ("suite.yaml", "prompt", "object")),
]

GENERATION_CASES = [
    Case("max-new-tokens-negative", sub("max_new_tokens: 4", "max_new_tokens: -1"), ("suite.yaml", "generation.max_new_tokens")),
    Case("max-new-tokens-zero", sub("max_new_tokens: 4", "max_new_tokens: 0"), ("suite.yaml", "generation.max_new_tokens")),
    Case("max-new-tokens-huge", sub("max_new_tokens: 4", "max_new_tokens: 100000000000"), ("suite.yaml", "generation.max_new_tokens", "8192")),
    Case("max-new-tokens-quoted", sub("max_new_tokens: 4", "max_new_tokens: '64'"), ("suite.yaml", "generation.max_new_tokens", "integer")),
    Case("max-new-tokens-float", sub("max_new_tokens: 4", "max_new_tokens: 64.0"), ("suite.yaml", "generation.max_new_tokens", "integer")),
    Case("max-new-tokens-bool", sub("max_new_tokens: 4", "max_new_tokens: yes"), ("suite.yaml", "generation.max_new_tokens")),
    Case("temperature-negative", sub("max_new_tokens: 4", "max_new_tokens: 4\n  temperature: -0.5"), ("suite.yaml", "generation.temperature")),
    Case("temperature-nan", sub("max_new_tokens: 4", "max_new_tokens: 4\n  temperature: .nan"), ("suite.yaml", "generation.temperature", "finite")),
    Case("temperature-inf", sub("max_new_tokens: 4", "max_new_tokens: 4\n  temperature: .inf"), ("suite.yaml", "generation.temperature", "finite")),
    Case("top-p-zero", sub("max_new_tokens: 4", "max_new_tokens: 4\n  top_p: 0"), ("suite.yaml", "generation.top_p")),
    Case("top-p-above-one", sub("max_new_tokens: 4", "max_new_tokens: 4\n  top_p: 1.5"), ("suite.yaml", "generation.top_p")),
    Case("seed-float", sub("max_new_tokens: 4", "max_new_tokens: 4\n  seed: 1.5"), ("suite.yaml", "generation.seed")),
    Case("batch-size-zero", sub("max_new_tokens: 4", "max_new_tokens: 4\n  batch_size: 0"), ("suite.yaml", "generation.batch_size")),
    Case("generation-null", sub("generation:\n  max_new_tokens: 4\n", "generation:\n"), ("suite.yaml", "generation", "object")),
    Case("generation-list", sub("generation:\n  max_new_tokens: 4\n", "generation: [4]\n"), ("suite.yaml", "generation", "object")),
]

METRIC_CASES = [
    Case("metric-unknown-type", sub("type: json_valid", "type: json_validd"), ("suite.yaml", "metrics[0]", "json_validd", "known metrics")),
    Case("metric-type-number", sub("type: json_valid", "type: 5"), ("suite.yaml", "metrics[0].type")),
    Case("metric-name-twice", sub("name: severity", "name: format"), ("suite.yaml", "metrics[1].name", "twice")),
    Case("metric-name-space", sub("name: format", "name: valid json"), ("suite.yaml", "metrics[0].name")),
    Case("metric-name-unicode", sub("name: format", "name: fórmat"), ("suite.yaml", "metrics[0].name")),
    Case("metric-missing-name", sub("  - name: format\n    type: json_valid\n", "  - type: json_valid\n"), ("suite.yaml", "metrics[0]", "'name'")),
    Case("metric-as-string", sub("  - name: format\n    type: json_valid\n", "  - json_valid\n"), ("suite.yaml", "metrics[0]", "object")),
    Case("metrics-as-mapping", sub(METRICS, "metrics:\n  format: json_valid\n"), ("suite.yaml", "metrics", "array")),
    Case("params-as-list", sub("params: {field: severity}", "params: [severity]"), ("suite.yaml", "metrics[1].params", "object")),
    Case("params-unknown-name", sub("params: {field: severity}", "params: {feild: severity}"), ("suite.yaml", "metrics[1]", "feild", "accepts")),
    Case("params-base-dir", metric("json_schema", "{schema: {}, base_dir: /tmp}"), ("suite.yaml", "params.base_dir")),
    Case("json-valid-with-params", sub("type: json_valid", "type: json_valid\n    params: {strict: true}"), ("suite.yaml", "metrics[0]", "strict")),
    Case("regex-must-match-quoted", metric("regex", '{pattern: down, must_match: "false"}'), ("suite.yaml", "params.must_match", "'false'", "bool")),
    Case("regex-must-match-int", metric("regex", "{pattern: down, must_match: 0}"), ("suite.yaml", "params.must_match", "bool")),
    Case("regex-bad-pattern", metric("regex", '{pattern: "(SEV[12"}'), ("suite.yaml", "metrics[0]", "regular expression")),
    Case("regex-flags-as-string", metric("regex", "{pattern: down, flags: IGNORECASE}"), ("suite.yaml", "params.flags")),
    Case("regex-flag-typo", metric("regex", "{pattern: down, flags: [IGNORCASE]}"), ("suite.yaml", "metrics[0]", "IGNORCASE")),
    Case("regex-no-pattern", metric("regex", "{flags: [IGNORECASE]}"), ("suite.yaml", "metrics[0]", "'pattern'")),
    Case("regex-pattern-null", metric("regex", "{pattern: null}"), ("suite.yaml", "params.pattern")),
    Case("regex-pattern-number", metric("regex", "{pattern: 404}"), ("suite.yaml", "params.pattern")),
    Case("field-match-fields-as-string", metric("field_match", "{fields: severity}"), ("suite.yaml", "params.fields", "'severity'")),
    Case("field-match-field-as-list", metric("field_match", "{field: [severity]}"), ("suite.yaml", "params.field")),
    Case("field-match-field-and-fields", metric("field_match", "{field: severity, fields: [severity]}"), ("suite.yaml", "metrics[0]", "exactly one")),
    Case("field-match-no-field", metric("field_match", "{normalize: casefold}"), ("suite.yaml", "metrics[0]", "exactly one")),
    Case("field-match-fields-empty", metric("field_match", "{fields: []}"), ("suite.yaml", "metrics[0]", "at least one")),
    Case("field-match-normalize-typo", metric("field_match", "{field: severity, normalize: lower}"), ("suite.yaml", "metrics[0]", "lower")),
    Case("field-match-tolerance-negative", metric("field_match", "{field: severity, normalize: numeric, tolerance: -1}"), ("suite.yaml", "tolerance")),
    Case("field-match-tolerance-quoted", metric("field_match", '{field: severity, normalize: numeric, tolerance: "0.1"}'), ("suite.yaml", "params.tolerance")),
    Case("field-match-tolerance-nan", metric("field_match", "{field: severity, normalize: numeric, tolerance: .nan}"), ("suite.yaml", "tolerance", "finite")),
    Case("field-match-reference-number", metric("field_match", "{field: severity, reference: 5}"), ("suite.yaml", "params.reference")),
    Case("field-match-reference-map-of-numbers", metric("field_match", "{fields: [severity], reference: {severity: 1}}"), ("suite.yaml", "params.reference")),
    Case("field-match-string-reference-many-fields", metric("field_match", "{fields: [severity, product], reference: severity}"), ("suite.yaml", "metrics[0]", "single field")),
    Case("field-match-reference-missing", metric("field_match", "{field: severity, reference: sevrity}"), ("suite.yaml", "metrics (m)", "'sevrity'")),
    Case("field-match-default-reference-missing", metric("field_match", "{field: priority}"), ("suite.yaml", "metrics (m)", "'priority'")),
    Case("field-match-dotted-reference-missing", metric("field_match", "{field: product, reference: expected.prodcut}"), ("suite.yaml", "metrics (m)", "'expected.prodcut'")),
    Case("field-match-gold-null", metric("field_match", "{field: severity}"), ("suite.yaml", "metrics (m)", "'severity'", "null"),
         rows=[{**r, "severity": None} for r in ROWS]),
    Case("exact-match-no-reference", metric("exact_match", "{normalize: strip}"), ("suite.yaml", "metrics[0]", "'reference'")),
    Case("exact-match-reference-missing", metric("exact_match", "{reference: answer}"), ("suite.yaml", "metrics (m)", "'answer'")),
    Case("exact-match-gold-null", metric("exact_match", "{reference: severity}"), ("suite.yaml", "metrics (m)", "null"),
         rows=[{**r, "severity": None} for r in ROWS]),
    Case("json-schema-file-missing", metric("json_schema", "{schema: schemas/triage.json}"), ("suite.yaml", "metrics[0]", "triage.json", "not found")),
    Case("json-schema-file-is-folder", metric("json_schema", "{schema: schemas}"), ("suite.yaml", "metrics[0]", "schemas", "folder"),
         files={"schemas/other.json": "{}"}),
    Case("json-schema-file-not-utf8", metric("json_schema", "{schema: s.json}"), ("suite.yaml", "metrics[0]", "s.json", "UTF-8"),
         files={"s.json": b'{"title": "caf\xe9"}'}),
    Case("json-schema-file-not-json", metric("json_schema", "{schema: s.json}"), ("suite.yaml", "metrics[0]", "s.json", "not JSON"),
         files={"s.json": "{type: object}"}),
    Case("json-schema-invalid-schema", metric("json_schema", "{schema: {type: 5}}"), ("suite.yaml", "metrics[0]", "invalid JSON Schema")),
    Case("json-schema-file-holds-list", metric("json_schema", "{schema: s.json}"), ("suite.yaml", "metrics[0]", "invalid JSON Schema"),
         files={"s.json": "[1, 2]"}),
    Case("json-schema-as-list", metric("json_schema", "{schema: [object]}"), ("suite.yaml", "params.schema")),
    Case("json-schema-ref-typo", metric("json_schema", '{schema: {"$defs": {"sev": {}}, properties: {severity: {"$ref": "#/$defs/severity"}}}}'),
         ("suite.yaml", "metrics[0]", "#/$defs/severity")),
    Case("json-schema-remote-ref", metric("json_schema", '{schema: {"$ref": "https://example.com/triage.json"}}'),
         ("suite.yaml", "metrics[0]", "example.com")),
]

GATE_CASES = [
    Case("gate-as-string", SUITE + "gate: strict\n", ("suite.yaml", "gate", "object")),
    Case("gate-rules-empty", SUITE + "gate:\n  rules: []\n", ("suite.yaml", "gate.rules")),
    Case("gate-rule-unknown-metric", SUITE + "gate:\n  rules:\n    - {metric: formatt, min_delta: 0}\n", ("suite.yaml", "gate.rules[0].metric", "'formatt'")),
    Case("gate-rule-key-typo", SUITE + "gate:\n  rules:\n    - {metric: format, min_delt: 0.1}\n", ("suite.yaml", "gate.rules[0]", "'min_delt'")),
    Case("gate-rule-checks-nothing", SUITE + "gate:\n  rules:\n    - {metric: format}\n", ("suite.yaml", "gate.rules[0]", "min_delta")),
    Case("gate-rule-without-metric", SUITE + "gate:\n  rules:\n    - {min_delta: 0.1}\n", ("suite.yaml", "gate.rules[0]", "give a metric")),
    Case("gate-only-require-significant-false", SUITE + "gate:\n  rules:\n    - {metric: format, require_significant: false}\n", ("suite.yaml", "gate.rules", "checks anything")),
    Case("gate-min-delta-quoted", SUITE + "gate:\n  rules:\n    - {metric: format, min_delta: '0.1'}\n", ("suite.yaml", "gate.rules[0].min_delta")),
    Case("gate-min-delta-nan", SUITE + "gate:\n  rules:\n    - {metric: format, min_delta: .nan}\n", ("suite.yaml", "gate.rules[0].min_delta", "finite")),
    Case("gate-alpha-too-big", SUITE + "gate:\n  alpha: 5\n  rules:\n    - {metric: format, min_delta: 0}\n", ("suite.yaml", "gate.alpha")),
    Case("gate-min-n-float", SUITE + "gate:\n  rules:\n    - {min_n: 20.0}\n", ("suite.yaml", "gate.rules[0].min_n", "integer")),
]

DATA_CASES = [
    Case("data-file-missing", sub("path: data.jsonl", "path: dta.jsonl"), ("dta.jsonl", "not found", "relative to the suite")),
    Case("data-path-relative-to-cwd", sub("path: data.jsonl", "path: suite/data.jsonl"), ("suite/suite/data.jsonl", "relative to the suite")),
    Case("data-path-is-folder", sub("path: data.jsonl", "path: rows"), ("rows", "folder", "data.path"), files={"rows/a.jsonl": "{}\n"}),
    Case("data-path-folder-named-jsonl", sub("path: data.jsonl", "path: rows.jsonl"), ("rows.jsonl", "folder"), files={"rows.jsonl/x": ""}),
    Case("data-path-empty-string", sub("path: data.jsonl", "path: ''"), ("folder", "data.path")),
    Case("data-unsupported-format", sub("path: data.jsonl", "path: data.txt"), ("data.txt", ".jsonl or .csv"), files={"data.txt": "hello\n"}),
    Case("data-empty-file", sub("path: data.jsonl", "path: empty.jsonl"), ("suite.yaml", "no rows", "empty.jsonl"), files={"empty.jsonl": ""}),
    Case("data-only-blank-lines", sub("path: data.jsonl", "path: blank.jsonl"), ("suite.yaml", "no rows"), files={"blank.jsonl": "\n\n  \n"}),
    Case("data-line-is-list", rows=[], needles=("data.jsonl:1", "JSON object", "list"), files={"data.jsonl": '["r0", "db down"]\n'}),
    Case("data-line-is-string", rows=[], needles=("data.jsonl:2", "JSON object", "str"), files={"data.jsonl": '{"id": "a", "report": "x"}\n"db down"\n'}),
    Case("data-line-is-number", rows=[], needles=("data.jsonl:1", "JSON object"), files={"data.jsonl": "42\n"}),
    Case("data-trailing-comma", rows=[], needles=("data.jsonl:1", "not valid JSON"), files={"data.jsonl": '{"id": "a", "report": "x",}\n'}),
    Case("data-single-quotes", rows=[], needles=("data.jsonl:1", "not valid JSON"), files={"data.jsonl": "{'id': 'a', 'report': 'x'}\n"}),
    Case("data-invalid-utf8", rows=[], needles=("data.jsonl", "UTF-8"), files={"data.jsonl": b'{"id": "a", "report": "caf\xe9"}\n'}),
    Case("data-json-array-file", rows=[], needles=("data.jsonl:1", "JSON object", "list"), files={"data.jsonl": '[{"id": "a", "report": "x"}]\n'}),
    Case("row-missing-template-field", rows=[{"id": "r0", "text": "db down"}, *ROWS[1:]], needles=("suite.yaml", "prompt.user", "'r0'", "report")),
    Case("row-template-field-null", rows=rows(report=None), needles=("suite.yaml", "prompt.user", "'r0'", "'report'", "null")),
    Case("row-nested-field-null", sub("{{ report }}", "{{ report }} ({{ expected.product }})"), ("suite.yaml", "prompt.user", "'r0'", "null"),
         rows=rows(expected={"product": None})),
    Case("row-empty-report", rows=rows(report=""), needles=("suite.yaml", "prompt.user", "'r0'", "empty"),
         yaml=sub('"Report: {{ report }}"', '"{{ report }}"')),
    Case("duplicate-ids", rows=[ROWS[0], {**ROWS[1], "id": "r0"}], needles=("suite.yaml", "rows 1 and 2", "'r0'")),
    Case("id-field-missing-in-row", rows=[{k: v for k, v in ROWS[0].items() if k != "id"}, *ROWS[1:]], needles=("suite.yaml", "row 1", "'id'")),
    Case("id-field-typo", sub("id_field: id", "id_field: ID"), ("suite.yaml", "row 1", "'ID'", "data.id_field")),
    Case("id-null", rows=rows(id=None), needles=("suite.yaml", "row 1", "data.id_field", "None")),
    Case("id-object", rows=rows(id={"n": 1}), needles=("suite.yaml", "row 1", "data.id_field")),
    Case("cluster-field-missing", sub("  id_field: id\n", "  id_field: id\n  cluster_field: team\n"), ("suite.yaml", "row 1", "'team'", "cluster_field")),
    Case("hf-dataset-offline", sub("  path: data.jsonl\n", "  hf: {path: nobody/no-such-dataset}\n"), ("nobody/no-such-dataset", "--allow-network")),
    Case("csv-row-shorter-than-header", CSV_SUITE, ("data.csv:3", "fewer values", "2 columns"), files={"data.csv": "id,report\nr0,db down\nr1\n"}),
    Case("csv-row-longer-than-header", CSV_SUITE, ("data.csv:2", "more values"), files={"data.csv": "id,report\nr0,db down, every checkout fails\n"}),
    Case("csv-duplicate-header", CSV_SUITE, ("data.csv:1", "'report'", "more than once"), files={"data.csv": "id,report,report\nr0,a,b\n"}),
    Case("csv-unbalanced-quote", CSV_SUITE, ("data.csv", "not valid CSV", "quoting"), files={"data.csv": 'id,report\nr0,"db down\nr1,ok\n'}),
    Case("csv-header-only", CSV_SUITE, ("suite.yaml", "no rows"), files={"data.csv": "id,report\n"}),
    Case("csv-empty", CSV_SUITE, ("suite.yaml", "no rows"), files={"data.csv": ""}),
    Case("csv-latin1", CSV_SUITE, ("data.csv", "UTF-8"), files={"data.csv": b"id,report\nr0,caf\xe9 down\n"}),
    Case("csv-huge-field", CSV_SUITE, ("data.csv", "not valid CSV"), files={"data.csv": 'id,report\nr0,"' + "x" * 200_000 + '"\n'}),
    Case("csv-missing-template-column", CSV_SUITE, ("suite.yaml", "prompt.user", "'report'", "id, text"), files={"data.csv": "id,text\nr0,db down\n"}),
]

TEMPLATE_CASES = [
    Case("template-divides-by-zero", sub("{{ report }}", "{{ 1/0 }}"), ("suite.yaml", "prompt.user", "ZeroDivisionError")),
    Case("template-adds-number-to-text", sub("{{ report }}", "{{ report + 1 }}"), ("suite.yaml", "prompt.user", "TypeError")),
    Case("template-include", sub("{{ report }}", "{% include 'header.txt' %}{{ report }}"), ("suite.yaml", "prompt.user", "include")),
    Case("template-import", sub("{{ report }}", "{% import 'macros.txt' as m %}{{ report }}"), ("suite.yaml", "prompt.user", "include or import")),
    Case("template-extends", sub("{{ report }}", "{% extends 'base.txt' %}"), ("suite.yaml", "prompt.user", "include or import")),
    Case("template-syntax-error", sub("{{ report }}", "{{ report }"), ("suite.yaml", "prompt.user", "syntax error")),
    Case("template-unclosed-block", sub("{{ report }}", "{% if report %}{{ report }}"), ("suite.yaml", "prompt.user", "syntax error")),
    Case("template-unknown-filter", sub("{{ report }}", "{{ report | shout }}"), ("suite.yaml", "prompt.user", "shout")),
    Case("template-sandbox-escape", sub("{{ report }}", "{{ report.__class__.__mro__ }}"), ("suite.yaml", "prompt.user", "sandbox")),
    Case("template-huge-range", sub("{{ report }}", "{% for i in range(10**9) %}x{% endfor %}"), ("suite.yaml", "prompt.user", "Range too big")),
    Case("template-filter-on-wrong-type", sub("{{ report }}", "{{ report | sum }}"), ("suite.yaml", "prompt.user", "'r0'")),
    Case("template-undefined-attribute", sub("{{ report }}", "{{ report.text }}"), ("suite.yaml", "prompt.user", "'r0'", "text")),
    Case("template-field-typo", sub("{{ report }}", "{{ reprot }}"), ("suite.yaml", "prompt.user", "'reprot'", "report")),
    Case("template-system-fails", sub("system: Answer with JSON.", "system: '{{ 1/0 }}'"), ("suite.yaml", "prompt.system", "ZeroDivisionError")),
    Case("template-system-syntax", sub("system: Answer with JSON.", "system: '{% for %}'"), ("suite.yaml", "prompt.system", "syntax error")),
    Case("template-user-blank", sub('"Report: {{ report }}"', '"   "'), ("suite.yaml", "prompt.user", "empty")),
]

ALL = FILE_CASES + TOP_LEVEL_CASES + GENERATION_CASES + METRIC_CASES + GATE_CASES + DATA_CASES + TEMPLATE_CASES


@pytest.mark.parametrize("case", ALL, ids=lambda c: c.id)
def test_validate_refuses_with_one_line(case: Case, capsys, suite_dir, forbid_model_load):
    path = suite_dir(case.yaml, rows=case.rows, files=case.files)
    assert_one_error(cli(capsys, "validate", path), *case.needles)


def test_case_ids_are_distinct():
    ids = [c.id for c in ALL]
    assert len(ids) == len(set(ids))


def test_the_unbroken_suite_validates(capsys, suite_dir):
    """The base every case breaks is itself valid (so each case fails for its own reason)."""
    code, out, err = cli(capsys, "validate", suite_dir())
    assert code == 0 and "4 items render" in out, err


def test_suite_path_relative_to_another_cwd(capsys, suite_dir, monkeypatch, tmp_path):
    suite_dir()
    monkeypatch.chdir(tmp_path / "suite")
    assert cli(capsys, "validate", "suite.yaml")[0] == 0  # from its own folder it works
    monkeypatch.chdir(tmp_path)
    assert_one_error(cli(capsys, "validate", "triage.yaml"), "triage.yaml", "not found")


def test_suite_path_is_a_folder(capsys, suite_dir, tmp_path):
    suite_dir()
    assert_one_error(cli(capsys, "validate", tmp_path / "suite"), "suite", "folder", "YAML file inside")


def test_dotted_reference_into_nested_gold_validates(capsys, suite_dir):
    """Issue 7: ``reference: expected.product`` passed validate, then errored on every item of the run."""
    path = suite_dir(metric("field_match", "{field: product, reference: expected.product}"))
    code, out, err = cli(capsys, "validate", path)
    assert code == 0 and "score every row" in out, err


def test_exponent_numbers_are_numbers(capsys, suite_dir):
    """``tolerance: 1e-3`` is a number (PyYAML alone reads it as the string "1e-3")."""
    path = suite_dir(metric("field_match", "{field: severity, normalize: numeric, tolerance: 1e-3}"))
    code, _, err = cli(capsys, "validate", path)
    assert code == 0, err


def test_target_that_cannot_render_is_not_blamed_on_the_metric(capsys, suite_dir):
    """A prompt.target failing on every row left dry scoring with empty answers and a misleading warning."""
    path = suite_dir(sub("{{ severity }}", "{{ severity_label }}"))
    code, _, err = cli(capsys, "validate", path)
    assert code == 0 and "fails the suite's own prompt.target" not in err, err


def test_yaml_with_byte_order_mark_is_fine(capsys, suite_dir):
    code, _, err = cli(capsys, "validate", suite_dir(b"\xef\xbb\xbf" + SUITE.encode()))
    assert code == 0, err


def test_unicode_text_in_rows_is_fine(capsys, suite_dir):
    code, _, err = cli(capsys, "validate", suite_dir(rows=rows(report="Base de données en panne 🔥, 결제 실패")))
    assert code == 0, err
