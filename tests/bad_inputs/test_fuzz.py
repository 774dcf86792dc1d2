"""Property-based fuzzing of what users write by hand: suites, data rows, gate policies, training
configs, adapter configs and run-directory records.

Each property starts from a valid document and mutates it the way mistakes happen: a field
deleted, renamed (a typo), or replaced by another JSON value (a string for a number, a list for
a mapping, NaN, a template that fails). Loading must either succeed or raise an
``EvalkitError``; through the CLI the exit status is 0, 1 (gate verdicts only) or 2, never 3,
and there is never a traceback. No model is loaded.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit.errors import EvalkitError
from tests.bad_inputs.conftest import ROWS, cli
from tests.rundirs import make_run

FUZZ_EXAMPLES = int(os.environ.get("EVALKIT_FUZZ_EXAMPLES", "150"))
"""Examples per property; raise it (e.g. 2000) for a deeper search than the test suite runs."""
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

VALID_SUITE: dict[str, Any] = {
    "name": "triage",
    "description": "fuzzed",
    "data": {"path": "data.jsonl", "id_field": "id", "cluster_field": "team", "limit": 3},
    "prompt": {"system": "Answer with JSON.", "user": "Report: {{ report }}", "target": '{"severity": "{{ severity }}"}'},
    "generation": {"max_new_tokens": 8, "temperature": 0.0, "top_p": 1.0, "seed": 0, "batch_size": 4},
    "metrics": [
        {"name": "format", "type": "json_valid"},
        {"name": "schema", "type": "json_schema", "params": {"schema": "schema.json"}},
        {"name": "severity", "type": "field_match", "params": {"field": "severity", "normalize": "casefold"}},
        {"name": "product", "type": "field_match", "params": {"fields": ["product"], "reference": {"product": "expected.product"}}},
        {"name": "exact", "type": "exact_match", "params": {"reference": "severity", "normalize": "strip"}},
        {"name": "mentions", "type": "regex", "params": {"pattern": "SEV[12]", "flags": ["IGNORECASE"], "must_match": True}},
    ],
    "gate": {"alpha": 0.05, "rules": [{"metric": "format", "min_delta": 0.1, "require_significant": True}, {"min_n": 2}]},
}

VALID_POLICY: dict[str, Any] = {
    "arms": ["lora"],
    "alpha": 0.05,
    "rules": [
        {"metric": "format", "min_delta": 0.0, "require_significant": False},
        {"metric": "format", "max_drop": 0.1},
        {"metric": "format", "min_value": 0.5},
        {"min_n": 2},
    ],
}

VALID_TRAIN: dict[str, Any] = {
    "base": "smollm2-135m-instruct",
    "data": {"suite": "suite.yaml", "limit": 8},
    "eval_suite": "suite.yaml",
    "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"], "bias": "none",
             "use_rslora": False, "use_dora": False, "modules_to_save": [], "init": "default"},
    "quantization": {"mode": "none", "double_quant": True, "compute_dtype": "float32"},
    "training": {"epochs": 1.0, "max_steps": 4, "learning_rate": 1e-3, "scheduler": "cosine", "warmup_ratio": 0.05,
                 "batch_size": 2, "grad_accum": 1, "max_length": 128, "packing": False, "completion_only_loss": True,
                 "gradient_checkpointing": "auto", "precision": "auto", "seed": 0, "logging_steps": 1, "save_steps": 10,
                 "weight_decay": 0.0},
    "output_dir": "adapters/out",
    "report_to": "none",
}

# Values a user plausibly types in the wrong place, besides arbitrary JSON.
PLAUSIBLE = st.sampled_from([
    "", " ", "null", "none", "true", "false", "yes", "0", "1", "-1", "0.1", "1e-3", "64", "SEV1", "data.jsonl",
    "../data.jsonl", "/nonexistent/data.jsonl", "data", "schema.json", "suite.yaml", ".", "{{ report }}",
    "{{ 1/0 }}", "{{ report + 1 }}", "{% include 'x' %}", "{{ missing }}", "{{ expected.product }}", "(", "[a-z",
    "format", "severity", "expected.product", "json_valid", "regex", "field_match", "numeric", "all-linear",
    "q_proj", "nf4", "cosine", "émoji 🚀", "a" * 300,
])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12) | PLAUSIBLE,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8) | PLAUSIBLE, inner, max_size=3),
    max_leaves=6,
)


def _confusions(value: Any) -> list[Any]:
    """What a user types instead of ``value``: the same thing with the wrong type, sign, size or shape."""
    if isinstance(value, bool):
        return [str(value).lower(), int(value), None, [value]]
    if isinstance(value, int):
        return [float(value), str(value), -value, 0, -1, 10**12, value + 0.5, True, None, [value]]
    if isinstance(value, float):
        whole = [int(value)] if math.isfinite(value) else []
        return [str(value), *whole, -value, 0.0, float("nan"), float("inf"), -1.0, 1e308, None, f"{value:e}"]
    if isinstance(value, str):
        return ["", value.upper(), value + " ", [value], {value: value}, 1, None, value.replace("_", "-"), value[:-1]]
    if isinstance(value, list):
        return [value[0] if value else "", ", ".join(map(str, value)), {}, [], [None], None, value * 2]
    if isinstance(value, dict):
        return [list(value.values()), list(value), "", [value], {}, None]
    return [None, ""]


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        out.append((*prefix, key))
        out.extend(_paths(value, (*prefix, key)))
    return out


def _at(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, Any]) -> Any:
    """``valid`` with 1-3 mistakes: a key deleted or renamed, a value of the wrong type or replaced, a key added
    (or, rarely, the whole document replaced)."""
    if draw(st.integers(0, 30)) == 0:
        return draw(JSON)
    doc = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _at(doc, path[:-1]), path[-1]
        op = draw(st.sampled_from(["delete", "replace", "confuse", "confuse", "rename", "add"]))
        if op == "delete":
            del parent[key]
        elif op == "replace":
            parent[key] = draw(JSON)
        elif op == "confuse":
            parent[key] = draw(st.sampled_from(_confusions(parent[key])))
        elif op == "rename" and isinstance(parent, dict):
            typo = draw(st.sampled_from([f"{key}s", str(key)[:-1], str(key).upper(), str(key).replace("_", "-"), f" {key}"]) | st.text(max_size=8))
            parent[typo] = parent.pop(key)
        elif op == "add":
            target = _at(doc, path)
            if isinstance(target, dict):
                target[draw(st.text(max_size=8) | PLAUSIBLE)] = draw(JSON)
            elif isinstance(target, list):
                target.append(draw(JSON))
    return doc


def _yaml(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A suite folder with data and schema files that mutated documents may point at."""
    path = tmp_path_factory.mktemp("fuzz")
    rows = [{**r, "team": "ops", "product": r["expected"]["product"]} for r in ROWS]
    (path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (path / "schema.json").write_text(json.dumps({"type": "object", "required": ["severity"]}))
    (path / "suite.yaml").write_text(_yaml(VALID_SUITE))
    return path


def _call_or_evalkit_error(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except EvalkitError:
        return None


def _assert_exit(result: tuple[int, str, str], allowed: tuple[int, ...]) -> None:
    code, out, err = result
    assert code in allowed, f"exit {code}: {err}"
    assert "Traceback" not in out + err
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip() and not line.startswith("warning:")]
        assert len(lines) == 1 and lines[0].startswith("error:"), err


# ---------------------------------------------------------------- suites


def test_the_valid_documents_are_valid(folder, capsys):
    """Mutations start from documents that load, so each failure is the mutation's."""
    from evalkit.suite import load_suite
    from evalkit.train.config import load_train_config

    load_suite(folder / "suite.yaml")
    (folder / "train.yaml").write_text(_yaml(VALID_TRAIN))
    load_train_config(folder / "train.yaml")
    assert cli(capsys, "validate", folder / "suite.yaml")[0] == 0


@FUZZ
@given(doc=mutated(VALID_SUITE))
def test_mutated_suite_loads_or_raises_evalkit_error(doc, folder):
    from evalkit.suite import load_suite
    from evalkit.validate import check_suite

    path = folder / "fuzzed.yaml"
    path.write_text(_yaml(doc), encoding="utf-8")
    suite = _call_or_evalkit_error(load_suite, path)
    if suite is not None:
        _call_or_evalkit_error(check_suite, suite)


@FUZZ
@given(doc=mutated(VALID_SUITE))
def test_mutated_suite_validates_with_exit_0_or_2(doc, folder, capsys, forbid_model_load):
    path = folder / "fuzzed-cli.yaml"
    path.write_text(_yaml(doc), encoding="utf-8")
    _assert_exit(cli(capsys, "validate", path), (0, 2))


@FUZZ
@given(text=st.text(max_size=200) | st.binary(max_size=200))
def test_arbitrary_suite_file_content_is_exit_0_or_2(text, folder, capsys):
    path = folder / "noise.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    _assert_exit(cli(capsys, "validate", path), (0, 2))


ROW_KEYS = st.sampled_from(["id", "report", "severity", "expected", "team", "product"]) | st.text(max_size=6)


@FUZZ
@given(rows=st.lists(st.dictionaries(ROW_KEYS, JSON, max_size=6), min_size=1, max_size=4) | st.lists(JSON, min_size=1, max_size=3))
def test_arbitrary_data_rows_are_exit_0_or_2(rows, folder, capsys):
    data = folder / "fuzz-rows"
    data.mkdir(exist_ok=True)
    shutil.copy(folder / "schema.json", data / "schema.json")
    (data / "data.jsonl").write_text("".join(json.dumps(r, allow_nan=True) + "\n" for r in rows))
    (data / "suite.yaml").write_text(_yaml({**VALID_SUITE, "data": {"path": "data.jsonl"}}))
    _assert_exit(cli(capsys, "validate", data / "suite.yaml"), (0, 2))


# ---------------------------------------------------------------- gate policies


@pytest.fixture(scope="module")
def gate_run(tmp_path_factory) -> Path:
    values = {"base": {"format": [0.0, 1.0, 0.0, 1.0]}, "lora": {"format": [1.0, 1.0, 1.0, 0.0]}}
    return make_run(tmp_path_factory.mktemp("fuzz-runs") / "run", values)


@FUZZ
@given(doc=mutated(VALID_POLICY))
def test_mutated_policy_loads_or_raises_evalkit_error(doc, folder, gate_run):
    from evalkit.gate import evaluate_gate, load_policy
    from evalkit.rundir import load_run

    path = folder / "policy.yaml"
    path.write_text(_yaml(doc), encoding="utf-8")
    policy = _call_or_evalkit_error(load_policy, path)
    if policy is not None:
        _call_or_evalkit_error(evaluate_gate, load_run(gate_run).summary, policy)


@FUZZ
@given(doc=mutated(VALID_POLICY))
def test_mutated_policy_gates_with_exit_0_1_or_2(doc, folder, gate_run, capsys):
    path = folder / "policy-cli.yaml"
    path.write_text(_yaml(doc), encoding="utf-8")
    _assert_exit(cli(capsys, "gate", gate_run, "--policy", path, "--out", folder / "gate.md", "--overwrite"), (0, 1, 2))


# ---------------------------------------------------------------- training configs (read only: no training)


@FUZZ
@given(doc=mutated(VALID_TRAIN))
def test_mutated_training_config_loads_or_raises_evalkit_error(doc, folder):
    from evalkit.train.config import load_train_config

    path = folder / "train-fuzzed.yaml"
    path.write_text(_yaml(doc), encoding="utf-8")
    _call_or_evalkit_error(load_train_config, path)


# ---------------------------------------------------------------- adapter configs and run records


@pytest.fixture(scope="module")
def adapter_config(tiny_adapter) -> dict[str, Any]:
    return json.loads((tiny_adapter / "adapter_config.json").read_text())


@FUZZ
@given(data=st.data())
def test_mutated_adapter_config_inspects_with_exit_0_or_2(data, adapter_config, tiny_adapter, folder, capsys):
    target = folder / "fuzz-adapter"
    if not target.exists():
        shutil.copytree(tiny_adapter, target)
    doc = data.draw(mutated(adapter_config))
    (target / "adapter_config.json").write_text(json.dumps(doc, allow_nan=True))
    _assert_exit(cli(capsys, "adapter", "inspect", target), (0, 2))


@FUZZ
@given(data=st.data(), name=st.sampled_from(["summary.json", "manifest.json"]), command=st.sampled_from(["report", "gate", "compare"]))
def test_mutated_run_records_are_exit_0_1_or_2(data, name, command, gate_run, folder, capsys):
    target = folder / "fuzz-run"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(gate_run, target)
    doc = data.draw(mutated(json.loads((gate_run / name).read_text())))
    (target / name).write_text(json.dumps(doc, allow_nan=True))
    (folder / "p.yaml").write_text("rules:\n  - {metric: format, min_delta: 0}\n")
    argv = {"report": ("report", target, "--stdout"), "gate": ("gate", target, "--policy", folder / "p.yaml"),
            "compare": ("compare", gate_run, target)}[command]
    _assert_exit(cli(capsys, *argv), (0, 1, 2))
