"""The incident-triage example data: shape, schema validity, split hygiene, freshness."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "suites" / "data"
SCHEMA = ROOT / "suites" / "incident-triage.schema.json"
SCRIPT = ROOT / "scripts" / "make_incident_data.py"
EXPECTED = {"eval": 200, "train": 600}
KEYS = ["id", "report", "severity", "component", "summary", "source"]


def load(split: str) -> list[dict]:
    path = DATA / f"incident-triage.{split}.jsonl"
    assert path.is_file(), f"missing {path}; run {SCRIPT.relative_to(ROOT)}"
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def schema() -> dict:
    doc = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(doc)
    return doc


@pytest.mark.parametrize("split", sorted(EXPECTED))
def test_row_counts_and_keys(split):
    rows = load(split)
    assert len(rows) == EXPECTED[split]
    for row in rows:
        assert list(row) == KEYS
        assert row["report"].strip() and row["source"].startswith(row["component"] + "/")
        assert len(row["summary"]) <= 120


@pytest.mark.parametrize("split", sorted(EXPECTED))
def test_answers_validate_against_schema(split, schema):
    validator = jsonschema.Draft202012Validator(schema)
    for row in load(split):
        answer = {k: row[k] for k in ("severity", "component", "summary")}
        errors = list(validator.iter_errors(answer))
        assert not errors, f"{row['id']}: {errors[0].message}"


def test_schema_rejects_bad_answers(schema):
    validator = jsonschema.Draft202012Validator(schema)
    good = {"severity": "SEV2", "component": "auth", "summary": "Login failures for most users."}
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "severity": "SEV5"})
    assert not validator.is_valid({**good, "component": "frontend"})
    assert not validator.is_valid({**good, "extra": 1})
    assert not validator.is_valid({k: v for k, v in good.items() if k != "summary"})


def test_every_label_value_is_used(schema):
    rows = load("eval") + load("train")
    props = schema["properties"]
    assert {r["severity"] for r in rows} == set(props["severity"]["enum"])
    assert {r["component"] for r in rows} == set(props["component"]["enum"])


def test_ids_unique_and_prefixed():
    ids = [r["id"] for r in load("eval")] + [r["id"] for r in load("train")]
    assert len(ids) == len(set(ids))
    assert all(i.startswith("inc-e") for i in ids[: EXPECTED["eval"]])
    assert all(i.startswith("inc-t") for i in ids[EXPECTED["eval"]:])


def test_splits_disjoint_by_report_text():
    eval_reports = {r["report"] for r in load("eval")}
    train_reports = {r["report"] for r in load("train")}
    assert len(eval_reports) == EXPECTED["eval"] and len(train_reports) == EXPECTED["train"]
    assert not eval_reports & train_reports


def test_committed_files_are_up_to_date():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
