"""Bad input to ``evalkit run``: refused in one line, exit 2, before any model weights load.

Every case runs under ``forbid_model_load``: a mistake found only after the model loaded
(or, worse, after generating) fails the test. The base is the tiny Llama, so a case that
slipped through would still be quick to diagnose.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.bad_inputs.conftest import ROWS, SUITE, assert_one_error, cli, edit_json
from tests.bad_inputs.test_validate import CSV_SUITE, metric, rows, sub


@pytest.fixture
def run_cli(capsys, tmp_path, tiny_model, forbid_model_load):
    """``run_cli(suite, *options)``: ``evalkit run`` on the tiny model with a fresh runs dir and cache."""

    def run(suite: Path | str, *options: str) -> tuple[int, str, str]:
        base = () if "--base" in options else ("--base", str(tiny_model.path))
        runs = () if "--runs-dir" in options else ("--runs-dir", str(tmp_path / "runs"))
        cache = () if any(o in options for o in ("--cache", "--no-cache")) else ("--cache", str(tmp_path / "cache.sqlite"))
        return cli(capsys, "run", suite, *base, *runs, *cache, *options)

    return run


# ---------------------------------------------------------------- the suite's own mistakes, through run


@dataclass(frozen=True)
class SuiteCase:
    id: str
    yaml: str | bytes = SUITE
    needles: tuple[str, ...] = ()
    rows: list[dict] | None = None
    files: dict[str, str | bytes] | None = None


SUITE_CASES = [
    SuiteCase("template-divides-by-zero", sub("{{ report }}", "{{ 1/0 }}"), ("prompt.user", "ZeroDivisionError")),
    SuiteCase("template-adds-number-to-text", sub("{{ report }}", "{{ report + 1 }}"), ("prompt.user", "TypeError")),
    SuiteCase("template-include", sub("{{ report }}", "{% include 'x.txt' %}"), ("prompt.user", "include")),
    SuiteCase("suite-invalid-utf8", b"name: triage\ndescription: caf\xe9\n", ("suite.yaml", "UTF-8")),
    SuiteCase("data-line-not-object", needles=("data.jsonl:1", "JSON object"), rows=[], files={"data.jsonl": "[1, 2]\n"}),
    SuiteCase("data-path-is-folder", sub("path: data.jsonl", "path: rows"), ("rows", "folder"), files={"rows/a.jsonl": "{}\n"}),
    SuiteCase("dotted-reference-missing", metric("field_match", "{field: product, reference: expected.prodcut}"), ("metrics (m)", "expected.prodcut")),
    SuiteCase("fields-as-string", metric("field_match", "{fields: severity}"), ("params.fields", "'severity'")),
    SuiteCase("must-match-quoted", metric("regex", '{pattern: down, must_match: "false"}'), ("params.must_match", "'false'")),
    SuiteCase("csv-row-shorter-than-header", CSV_SUITE, ("data.csv:3", "fewer values"), files={"data.csv": "id,report\nr0,a\nr1\n"}),
    SuiteCase("csv-duplicate-header", CSV_SUITE, ("data.csv:1", "'report'"), files={"data.csv": "id,report,report\nr0,a,b\n"}),
    SuiteCase("template-field-null", needles=("prompt.user", "'report'", "null"), rows=rows(report=None)),
    SuiteCase("gold-field-null", metric("exact_match", "{reference: severity}"), ("metrics (m)", "null"), rows=[{**r, "severity": None} for r in ROWS]),
    SuiteCase("gate-rule-on-unknown-metric", SUITE + "gate:\n  rules:\n    - {metric: sev, min_delta: 0}\n", ("gate.rules[0].metric", "'sev'")),
    SuiteCase("duplicate-key", SUITE + "generation:\n  max_new_tokens: 64\n", ("suite.yaml", "'generation'", "twice")),
]


@pytest.mark.parametrize("case", SUITE_CASES, ids=lambda c: c.id)
def test_suite_mistakes_stop_run_before_loading(case: SuiteCase, run_cli, suite_dir):
    path = suite_dir(case.yaml, rows=case.rows, files=case.files)
    assert_one_error(run_cli(path), *case.needles)


# ---------------------------------------------------------------- adapters


def _write(name: str, content: str | bytes) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        target = folder / name
        target.write_bytes(content) if isinstance(content, bytes) else target.write_text(content)

    return mutate


def _truncate(name: str, keep: int) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[:keep] if keep >= 0 else data[:keep])

    return mutate


def _replace_by_folder(name: str) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        (folder / name).unlink()
        (folder / name).mkdir()

    return mutate


CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
RECORD = "evalkit-train.json"

ADAPTER_CASES = [
    ("config-is-a-list", _write(CONFIG, "[8, 16]"), (CONFIG, "JSON object", "list")),
    ("config-not-utf8", _write(CONFIG, b'{"r": 8, "peft_type": "LORA", "base": "caf\xe9"}'), (CONFIG, "UTF-8")),
    ("config-not-json", _write(CONFIG, "r: 8\npeft_type: LORA\n"), (CONFIG, "not valid JSON")),
    ("config-empty", _write(CONFIG, ""), (CONFIG, "not valid JSON")),
    ("config-r-eight", edit_json(CONFIG, lambda c: c.update(r="eight")), (CONFIG, "r is 'eight'")),
    ("config-r-zero", edit_json(CONFIG, lambda c: c.update(r=0)), (CONFIG, "r is 0")),
    ("config-r-float", edit_json(CONFIG, lambda c: c.update(r=4.0)), (CONFIG, "r is 4.0")),
    ("config-r-disagrees-with-weights", edit_json(CONFIG, lambda c: c.update(r=8)), (CONFIG, "r is 8", "rank 4")),
    ("config-rank-pattern-disagrees", edit_json(CONFIG, lambda c: c.update(rank_pattern={"q_proj": 16})), (CONFIG, "rank_pattern", "rank 4")),
    ("config-rank-pattern-bad-regex", edit_json(CONFIG, lambda c: c.update(rank_pattern={"q_proj(": 4})), (CONFIG, "rank_pattern", "q_proj(")),
    ("config-alpha-string", edit_json(CONFIG, lambda c: c.update(lora_alpha="16")), (CONFIG, "lora_alpha")),
    ("config-alpha-zero", edit_json(CONFIG, lambda c: c.update(lora_alpha=0)), (CONFIG, "lora_alpha is 0")),
    ("config-use-dora-string", edit_json(CONFIG, lambda c: c.update(use_dora="false")), (CONFIG, "use_dora", "'false'")),
    ("config-bias-unknown", edit_json(CONFIG, lambda c: c.update(bias="some")), (CONFIG, "bias", "'some'")),
    ("config-not-lora", edit_json(CONFIG, lambda c: c.update(peft_type="PREFIX_TUNING")), (CONFIG, "PREFIX_TUNING")),
    ("config-target-modules-number", edit_json(CONFIG, lambda c: c.update(target_modules=5)), (CONFIG, "target_modules")),
    ("config-modules-to-save-string", edit_json(CONFIG, lambda c: c.update(modules_to_save="lm_head")), (CONFIG, "modules_to_save")),
    ("config-base-name-number", edit_json(CONFIG, lambda c: c.update(base_model_name_or_path=135)), (CONFIG, "base_model_name_or_path")),
    ("config-other-base", edit_json(CONFIG, lambda c: c.update(base_model_name_or_path="meta-llama/Llama-3.1-8B")), ("Llama-3.1-8B", "--allow-base-mismatch")),
    ("weights-missing", lambda d: (d / WEIGHTS).unlink(), ("adapter_model.safetensors", "no weights")),
    ("weights-only-pickled", lambda d: (d / WEIGHTS).rename(d / "adapter_model.bin"), ("adapter_model.bin", "--allow-pickle")),
    ("weights-truncated-header", _truncate(WEIGHTS, 40), (WEIGHTS, "truncated or damaged")),
    ("weights-truncated-tail", _truncate(WEIGHTS, -100), (WEIGHTS, "truncated or damaged")),
    ("weights-garbage", _write(WEIGHTS, b"not a tensor file" * 20), (WEIGHTS, "truncated or damaged")),
    ("weights-empty", _write(WEIGHTS, b""), (WEIGHTS, "truncated or damaged")),
    ("weights-is-a-folder", _replace_by_folder(WEIGHTS), (WEIGHTS,)),
    ("train-record-is-a-list", _write(RECORD, "[]"), (RECORD, "JSON object")),
    ("train-record-not-utf8", _write(RECORD, b'{"base": "\xff"}'), (RECORD, "UTF-8")),
    ("train-record-base-string", _write(RECORD, '{"base": "smollm2"}'), (RECORD, "base is 'smollm2'")),
    ("train-record-config-list", _write(RECORD, '{"config": []}'), (RECORD, "config")),
    ("train-record-quantization-string", _write(RECORD, '{"config": {"quantization": "nf4"}}'), (RECORD, "config.quantization")),
    ("train-record-template-hash-number", _write(RECORD, '{"chat_template_sha256": 5}'), (RECORD, "chat_template_sha256")),
]


@pytest.mark.parametrize(("mutate", "needles"), [c[1:] for c in ADAPTER_CASES], ids=[c[0] for c in ADAPTER_CASES])
def test_bad_adapter_stops_run_before_loading(mutate, needles, run_cli, suite_dir, adapter_copy):
    adapter = adapter_copy(mutate)
    assert_one_error(run_cli(suite_dir(), "--adapter", f"tuned={adapter}"), *needles)


@pytest.mark.parametrize(
    ("argument", "needles"),
    [
        pytest.param("{tmp}/no-such-adapter", ("no-such-adapter", "no such directory"), id="adapter-missing"),
        pytest.param("{suite}", ("suite.yaml", "adapter_config.json"), id="adapter-is-a-file"),
        pytest.param("{tmp}", ("adapter_config.json",), id="adapter-folder-without-config"),
        pytest.param("tuned=", ("tuned=", "no path"), id="adapter-name-without-path"),
        pytest.param("", ("--adapter", "empty"), id="adapter-empty-argument"),
        pytest.param("réglé={adapter}", ("'réglé'", "arm name"), id="adapter-unicode-arm-name"),
        pytest.param("base={adapter}", ("'base'", "--adapter NAME=PATH"), id="adapter-named-base"),
    ],
)
def test_bad_adapter_argument(argument, needles, run_cli, suite_dir, tiny_adapter, tmp_path):
    suite = suite_dir()
    arg = argument.format(tmp=tmp_path, suite=suite, adapter=tiny_adapter)
    assert_one_error(run_cli(suite, "--adapter", arg), *needles)


def test_same_arm_name_twice(run_cli, suite_dir, tiny_adapter):
    assert_one_error(run_cli(suite_dir(), "--adapter", f"v1={tiny_adapter}", "--adapter", f"v1={tiny_adapter}"), "'v1'", "twice")


def test_adapter_path_relative_to_another_cwd(run_cli, suite_dir, tiny_adapter, monkeypatch, tmp_path):
    suite = suite_dir()
    monkeypatch.chdir(tmp_path)
    assert_one_error(run_cli(suite, "--adapter", "adapters/tiny-lora"), "adapters/tiny-lora", "no such directory")


# ---------------------------------------------------------------- base models


def _base_copy(tiny_model, tmp_path: Path, mutate: Callable[[Path], object]) -> Path:
    import shutil

    target = tmp_path / "base-copy"
    shutil.copytree(tiny_model.path, target)
    mutate(target)
    return target


BASE_CASES = [
    ("base-weights-garbage", _write("model.safetensors", b"\x00garbage" * 200), ("model.safetensors", "truncated or damaged")),
    ("base-weights-truncated-header", _truncate("model.safetensors", 100), ("model.safetensors", "truncated or damaged")),
    ("base-weights-truncated-tail", _truncate("model.safetensors", -4096), ("model.safetensors", "truncated or damaged")),
    ("base-weights-missing", lambda d: (d / "model.safetensors").unlink(), ("no weights", "config.json")),
    ("base-config-missing", lambda d: (d / "config.json").unlink(), ("not a model directory", "config.json")),
    ("base-config-not-json", _write("config.json", "{"), ("config.json", "not a valid JSON")),
    ("base-config-a-list", _write("config.json", "[]"), ("tokenizer",)),
    ("base-tokenizer-garbage", _write("tokenizer.json", "garbage"), ("tokenizer", "damaged")),
]


@pytest.mark.parametrize(("mutate", "needles"), [c[1:] for c in BASE_CASES], ids=[c[0] for c in BASE_CASES])
def test_bad_base_stops_run_before_loading(mutate, needles, run_cli, suite_dir, tiny_model, tmp_path):
    base = _base_copy(tiny_model, tmp_path, mutate)
    assert_one_error(run_cli(suite_dir(), "--base", str(base)), *needles)


@pytest.mark.parametrize(
    ("base", "needles"),
    [
        pytest.param("{tmp}/no-such-model", ("no-such-model", "not found"), id="base-missing-folder"),
        pytest.param("{suite}", ("not a model directory",), id="base-is-a-file"),
        pytest.param("nobody/no-such-model", ("nobody/no-such-model", "--allow-network"), id="base-hub-id-offline"),
        pytest.param("smollm2-135m", ("smollm2-135m", "smollm2-135m-instruct"), id="base-alias-typo"),
        pytest.param("SmolLM2-135M-Instruct", ("SmolLM2-135M-Instruct", "not found"), id="base-alias-wrong-case"),
    ],
)
def test_bad_base_argument(base, needles, run_cli, suite_dir, tmp_path):
    suite = suite_dir()
    assert_one_error(run_cli(suite, "--base", base.format(tmp=tmp_path, suite=suite)), *needles)


# ---------------------------------------------------------------- where results and the cache go


def test_runs_dir_is_a_file(run_cli, suite_dir):
    suite = suite_dir()
    assert_one_error(run_cli(suite, "--runs-dir", str(suite)), "--runs-dir", "suite.yaml", "is a file")


def test_runs_dir_inside_a_file(run_cli, suite_dir):
    suite = suite_dir()
    assert_one_error(run_cli(suite, "--runs-dir", f"{suite}/runs"), "--runs-dir", "suite.yaml/runs")


def test_runs_dir_unwritable(run_cli, suite_dir, unwritable):
    assert_one_error(run_cli(suite_dir(), "--runs-dir", str(unwritable / "runs")), "--runs-dir", str(unwritable), "writable")


def test_evalkit_home_is_a_file(capsys, suite_dir, tiny_model, monkeypatch, tmp_path, forbid_model_load):
    """The default cache lives in EVALKIT_HOME: checked before generating, not when the first batch is stored."""
    suite = suite_dir()
    monkeypatch.setenv("EVALKIT_HOME", str(suite))
    result = cli(capsys, "run", suite, "--base", tiny_model.path, "--runs-dir", tmp_path / "runs")
    assert_one_error(result, "EVALKIT_HOME", "suite.yaml", "is a file")


def test_evalkit_home_unwritable(capsys, suite_dir, tiny_model, monkeypatch, tmp_path, unwritable, forbid_model_load):
    monkeypatch.setenv("EVALKIT_HOME", str(unwritable / "evalkit"))
    result = cli(capsys, "run", suite_dir(), "--base", tiny_model.path, "--runs-dir", tmp_path / "runs")
    assert_one_error(result, "EVALKIT_HOME", str(unwritable), "writable")


def test_evalkit_home_unwritable_for_the_embedded_model(capsys, suite_dir, monkeypatch, tmp_path, unwritable, forbid_model_load):
    """The embedded model is converted into EVALKIT_HOME once: an unusable home was found only after ~20 s of loading."""
    monkeypatch.setenv("EVALKIT_HOME", str(unwritable / "evalkit"))
    result = cli(capsys, "run", suite_dir(), "--no-cache", "--runs-dir", tmp_path / "runs")
    assert_one_error(result, "EVALKIT_HOME", str(unwritable), "writable")


def test_cache_is_a_folder(run_cli, suite_dir, tmp_path):
    assert_one_error(run_cli(suite_dir(), "--cache", str(tmp_path)), "is a folder", "--no-cache")


def test_cache_inside_a_file(run_cli, suite_dir):
    suite = suite_dir()
    assert_one_error(run_cli(suite, "--cache", f"{suite}/cache.sqlite"), "suite.yaml/cache.sqlite", "--no-cache")


def test_cache_unwritable(run_cli, suite_dir, unwritable):
    assert_one_error(run_cli(suite_dir(), "--cache", str(unwritable / "cache.sqlite")), "cache.sqlite", "--no-cache")


def test_cache_is_not_sqlite(run_cli, suite_dir, tmp_path):
    cache = tmp_path / "cache.sqlite"
    cache.write_bytes(b"garbage, not sqlite" * 500)
    assert_one_error(run_cli(suite_dir(), "--cache", str(cache)), "cache.sqlite", "not an evalkit cache")


def test_cache_of_another_program(run_cli, suite_dir, tmp_path):
    cache = tmp_path / "cache.sqlite"
    db = sqlite3.connect(cache)
    db.execute("CREATE TABLE generations (id INTEGER PRIMARY KEY, payload BLOB)")
    db.commit()
    db.close()
    assert_one_error(run_cli(suite_dir(), "--cache", str(cache)), "cache.sqlite", "belongs to something else")


def test_cache_with_damaged_pages(run_cli, suite_dir, tmp_path):
    """Issue 7: opening was guarded but reads and writes were not; a damaged page surfaced after generating."""
    from evalkit.cache import GenerationCache
    from evalkit.models.base import BackendOutput

    cache = tmp_path / "cache.sqlite"
    with GenerationCache(cache) as store:
        store.put_many((f"key-{i}", BackendOutput("x" * 2000, 1, 1), 0.1) for i in range(200))
    data = bytearray(cache.read_bytes())
    for offset in range(4096 * 3, len(data), 4096):  # keep the header page, damage every later page
        data[offset : offset + 64] = b"\xde\xad" * 32
    cache.write_bytes(bytes(data))
    assert_one_error(run_cli(suite_dir(), "--cache", str(cache)), "cache.sqlite", "damaged")


# ---------------------------------------------------------------- options


OPTION_CASES = [
    ("limit-zero", ("--limit", "0"), ("--limit", "at least 1")),
    ("limit-negative", ("--limit", "-3"), ("--limit",)),
    ("limit-word", ("--limit", "all"), ("--limit", "'all'")),
    ("batch-size-zero", ("--batch-size", "0"), ("--batch-size",)),
    ("batch-size-float", ("--batch-size", "8.5"), ("--batch-size", "'8.5'")),
    ("shard-index-too-big", ("--shard", "3/2"), ("--shard", "3/2")),
    ("shard-not-a-fraction", ("--shard", "first"), ("--shard", "'first'")),
    ("shard-zero-of-zero", ("--shard", "0/0"), ("--shard",)),
    ("shard-without-items", ("--shard", "5/8"), ("--shard 5/8", "no items")),
    ("seed-word", ("--seed", "random"), ("--seed", "'random'")),
    ("dtype-unknown", ("--dtype", "fp32"), ("--dtype", "'fp32'", "float32")),
    ("quantize-unknown", ("--quantize", "4bit"), ("--quantize", "nf4")),
    ("device-unknown", ("--device", "gpu"), ("--device", "'gpu'")),
    ("backend-unknown", ("--backend", "llamacpp"), ("'llamacpp'", "known backends")),
    ("endpoint-with-hf", ("--endpoint", "http://127.0.0.1:8000/v1"), ("--endpoint", "--backend openai")),
    ("api-key-env-with-hf", ("--api-key-env", "OPENAI_API_KEY"), ("--api-key-env", "--backend openai")),
    ("tensor-parallel-with-hf", ("--tensor-parallel-size", "2"), ("--tensor-parallel-size", "--backend vllm")),
    ("timeout-negative", ("--timeout", "-1"), ("--timeout", "positive")),
    ("timeout-nan", ("--timeout", "nan"), ("--timeout", "finite")),
    ("concurrency-zero", ("--concurrency", "0"), ("--concurrency",)),
    ("max-retries-negative", ("--max-retries", "-1"), ("--max-retries", "0 or more")),
    ("option-typo", ("--adaptor", "x"), ("--adaptor", "unrecognized")),
    ("option-missing-value", ("--limit",), ("--limit", "expected one argument")),
]


@pytest.mark.parametrize(("options", "needles"), [c[1:] for c in OPTION_CASES], ids=[c[0] for c in OPTION_CASES])
def test_bad_run_option(options, needles, run_cli, suite_dir):
    assert_one_error(run_cli(suite_dir(), *options), *needles)


def test_device_cuda_without_cuda(run_cli, suite_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert_one_error(run_cli(suite_dir(), "--device", "cuda"), "--device cuda", "--device cpu")


def test_suite_missing(run_cli, tmp_path):
    assert_one_error(run_cli(tmp_path / "suites" / "triage.yaml"), "triage.yaml", "not found")


def test_suite_relative_to_another_cwd(run_cli, suite_dir, monkeypatch, tmp_path):
    suite_dir()
    monkeypatch.chdir(tmp_path.parent)
    assert_one_error(run_cli("suite/suite.yaml"), "suite/suite.yaml", "not found")
