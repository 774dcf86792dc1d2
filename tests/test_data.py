"""Rows → items → chat messages: file loading, stable ids, and sandboxed prompt rendering."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from evalkit.data import Renderer, load_items, load_rows
from evalkit.errors import DataError, SuiteError
from evalkit.records import Item
from evalkit.suite import DataSpec, PromptSpec, load_suite

REPO = Path(__file__).resolve().parents[1]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


ROWS = [
    {"id": "a", "report": "Database down", "src": 1},
    {"id": "b", "report": "Typo in footer", "src": 1},
    {"id": "c", "report": "Search slow", "src": 2},
]


# --- reading files -------------------------------------------------------------------


def test_jsonl_rows_are_read_in_order_skipping_blank_lines(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[1]) + "\n   \n")

    assert load_rows(DataSpec(path=path)) == ROWS[:2]


def test_csv_rows_are_read_as_string_fields(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('id,report,src\na,"Database down, again",1\nb,Typo,2\n', encoding="utf-8")

    assert load_rows(DataSpec(path=path)) == [
        {"id": "a", "report": "Database down, again", "src": "1"},
        {"id": "b", "report": "Typo", "src": "2"},
    ]


def test_csv_with_a_byte_order_mark_keeps_the_first_column_name(tmp_path):
    """Spreadsheets save CSV with a BOM; it must not become part of the first header."""
    path = tmp_path / "d.csv"
    path.write_bytes("\ufeffid,report\na,x\n".encode())

    items = load_items(DataSpec(path=path, id_field="id"), "suite.yaml")

    assert items[0].id == "a"


def test_jsonl_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(("\ufeff" + json.dumps(ROWS[0]) + "\n").encode())

    assert load_rows(DataSpec(path=path)) == [ROWS[0]]


def test_csv_row_with_more_values_than_the_header_is_a_data_error_naming_file_and_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("id,report\na,fine\nb,unquoted, comma\n", encoding="utf-8")

    with pytest.raises(DataError, match=rf"{re.escape(str(path))}:3: more values than the header's 2 columns"):
        load_rows(DataSpec(path=path))


def test_missing_data_file_is_a_data_error_naming_the_path(tmp_path):
    path = tmp_path / "missing.jsonl"

    with pytest.raises(DataError) as info:
        load_rows(DataSpec(path=path))

    assert str(path) in str(info.value)
    assert "not found" in str(info.value)


def test_malformed_jsonl_line_is_a_data_error_naming_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps(ROWS[1]) + "\n" + '{"id": "c", "report": \n')

    with pytest.raises(DataError, match=rf"{re.escape(str(path))}:3: not valid JSON"):
        load_rows(DataSpec(path=path))


def test_jsonl_line_that_is_not_an_object_is_a_data_error_naming_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n[1, 2]\n")

    with pytest.raises(DataError, match=rf"{re.escape(str(path))}:2: each line must be a JSON object, got list"):
        load_rows(DataSpec(path=path))


def test_unsupported_data_format_is_a_data_error(tmp_path):
    path = tmp_path / "d.parquet"
    path.write_bytes(b"PAR1")

    with pytest.raises(DataError, match="unsupported data format '.parquet'"):
        load_rows(DataSpec(path=path))


def test_limit_keeps_only_the_first_rows(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ROWS)

    items = load_items(DataSpec(path=path, id_field="id", limit=2), "suite.yaml")

    assert [i.id for i in items] == ["a", "b"]


def test_data_without_rows_is_a_data_error(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n")

    with pytest.raises(DataError, match="suite.yaml: the data has no rows"):
        load_items(DataSpec(path=path), "suite.yaml")


# --- item ids and clusters -----------------------------------------------------------


def test_id_field_gives_the_item_ids(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ROWS)

    items = load_items(DataSpec(path=path, id_field="id"), "suite.yaml")

    assert [i.id for i in items] == ["a", "b", "c"]
    assert items[0].row == ROWS[0]


def test_non_string_id_values_become_strings(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"n": 7, "report": "x"}])

    assert load_items(DataSpec(path=path, id_field="n"), "suite.yaml")[0].id == "7"


def test_row_without_the_id_field_is_a_data_error_naming_the_row(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [ROWS[0], {"report": "no id"}])

    with pytest.raises(DataError, match=r"suite.yaml: row 2 has no id field 'id'"):
        load_items(DataSpec(path=path, id_field="id"), "suite.yaml")


def test_hashed_ids_are_stable_across_loads(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "id"} for r in ROWS]
    path = write_jsonl(tmp_path / "d.jsonl", rows)

    first = [i.id for i in load_items(DataSpec(path=path), "suite.yaml")]
    second = [i.id for i in load_items(DataSpec(path=path), "suite.yaml")]

    assert first == second


def test_hashed_ids_differ_for_different_rows(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "id"} for r in ROWS]
    path = write_jsonl(tmp_path / "d.jsonl", rows)

    ids = [i.id for i in load_items(DataSpec(path=path), "suite.yaml")]

    assert len(set(ids)) == len(ids)


def test_hashed_id_does_not_depend_on_field_order_or_file_position(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [{"x": 1}, {"report": "r", "sev": "SEV1"}])
    b = write_jsonl(tmp_path / "b.jsonl", [{"sev": "SEV1", "report": "r"}])

    id_a = load_items(DataSpec(path=a), "a")[1].id
    id_b = load_items(DataSpec(path=b), "b")[0].id

    assert id_a == id_b


def test_duplicate_ids_are_rejected(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [ROWS[0], ROWS[1], {**ROWS[2], "id": "a"}])

    with pytest.raises(DataError, match=r"rows 1 and 3 share the id 'a'"):
        load_items(DataSpec(path=path, id_field="id"), "suite.yaml")


def test_identical_rows_without_id_field_are_rejected_as_duplicates(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"report": "same"}, {"report": "same"}])

    with pytest.raises(DataError, match="rows 1 and 2 share the id"):
        load_items(DataSpec(path=path), "suite.yaml")


def test_cluster_field_is_read_as_a_string(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ROWS)

    items = load_items(DataSpec(path=path, id_field="id", cluster_field="src"), "suite.yaml")

    assert [i.cluster for i in items] == ["1", "1", "2"]


def test_cluster_is_none_without_cluster_field(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ROWS)

    items = load_items(DataSpec(path=path, id_field="id"), "suite.yaml")

    assert all(i.cluster is None for i in items)


# --- rendering -----------------------------------------------------------------------

ITEM = Item(id="inc-1", row={"report": "Database down", "severity": "SEV1", "component": "database"})


def test_renderer_renders_system_and_user_messages():
    renderer = Renderer(PromptSpec(system="Triage it.", user="Report: {{ report }}"), "suite.yaml")

    assert renderer.messages(ITEM) == [
        {"role": "system", "content": "Triage it."},
        {"role": "user", "content": "Report: Database down"},
    ]


def test_renderer_without_system_renders_only_the_user_message():
    renderer = Renderer(PromptSpec(user="{{ report }}\n"), "suite.yaml")

    assert renderer.messages(ITEM) == [{"role": "user", "content": "Database down"}]


def test_missing_template_field_is_a_data_error_naming_item_field_and_row_fields():
    renderer = Renderer(PromptSpec(user="{{ report }} in {{ region }}"), "suite.yaml")

    with pytest.raises(DataError) as info:
        renderer.messages(ITEM)

    message = str(info.value)
    assert "prompt.user" in message
    assert "'inc-1'" in message
    assert "'region' is undefined" in message
    assert "the row has fields: component, report, severity" in message


@pytest.mark.parametrize(
    "template",
    [
        "{{ report.__class__.__mro__ }}",
        "{{ ''.__class__.__subclasses__() }}",
        "{{ report.format.__globals__ }}",
    ],
)
def test_sandbox_blocks_unsafe_attribute_access_with_a_data_error(template):
    renderer = Renderer(PromptSpec(user=template), "suite.yaml")

    with pytest.raises(DataError, match=r"item 'inc-1'.*unsafe"):
        renderer.messages(ITEM)


def test_sandbox_is_immutable():
    """Templates must not be able to change the row that later templates and metrics see."""
    item = Item(id="x", row={"tags": ["a"]})
    renderer = Renderer(PromptSpec(user="{{ tags.append('b') }}{{ tags }}"), "suite.yaml")

    with pytest.raises(DataError, match="unsafe"):
        renderer.messages(item)
    assert item.row == {"tags": ["a"]}


def test_template_syntax_error_is_a_suite_error_naming_the_line():
    with pytest.raises(SuiteError, match=r"suite.yaml: prompt.user: template syntax error at line 2"):
        Renderer(PromptSpec(user="Report:\n{{ report }"), "suite.yaml")


def test_target_without_prompt_target_is_a_suite_error():
    renderer = Renderer(PromptSpec(user="{{ report }}"), "suite.yaml")

    with pytest.raises(SuiteError, match="prompt.target is needed"):
        renderer.target(ITEM)


def test_tojson_target_renders_valid_json_of_the_row_fields():
    row = {"severity": "SEV2", "component": "auth", "summary": "Users can't log in <after> \"deploy\" & café"}
    renderer = Renderer(
        PromptSpec(user="x", target='{{ {"severity": severity, "component": component, "summary": summary} | tojson }}'),
        "suite.yaml",
    )

    assert json.loads(renderer.target(Item(id="t", row=row))) == row


def test_shipped_suite_target_renders_valid_json_for_its_first_eval_rows():
    suite = load_suite(REPO / "suites" / "incident-triage.yaml")
    items = load_items(DataSpec(path=suite.data.path, id_field="id", limit=5), str(suite.path))
    renderer = Renderer(suite.prompt, str(suite.path))

    for item in items:
        answer = json.loads(renderer.target(item))
        assert answer == {k: item.row[k] for k in ("severity", "component", "summary")}


def test_hf_datasets_spec_loads_a_local_dataset_folder(tmp_path):
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "test.jsonl").write_text('{"id": "a", "q": "x"}\n{"id": "b", "q": "y"}\n')
    items = load_items(DataSpec(hf={"path": str(folder), "split": "test"}, id_field="id"), "suite.yaml")
    assert [it.id for it in items] == ["a", "b"] and items[1].row["q"] == "y"


def test_hf_dataset_not_available_offline_is_a_data_error():
    with pytest.raises(DataError, match="--allow-network"):
        load_items(DataSpec(hf={"path": "someorg/no-such-dataset-xyz"}), "suite.yaml")


def test_missing_cluster_field_is_a_data_error_naming_the_row(tmp_path):
    """Regression: a misspelt cluster_field silently ran the statistics unclustered."""
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a", "source": "x"}\n{"id": "b", "sourse": "y"}\n')
    with pytest.raises(DataError, match="row 2 has no cluster field 'source'"):
        load_items(DataSpec(path=path, id_field="id", cluster_field="source"), "suite.yaml")


def test_non_utf8_file_is_a_data_error(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("id,q\na,caf\xe9\n".encode("cp1252"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_items(DataSpec(path=path, id_field="id"), "suite.yaml")
