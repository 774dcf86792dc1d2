"""Option parsing of every command (except ``train``, covered in tests/train) and the exit-code contract.

argparse's own errors are one line and exit 2 like every other user mistake; an
unexpected exception is exit 3 with one line pointing at ``--debug``, never 1 (which
means "the gate failed").
"""

from __future__ import annotations

import pytest

from tests.bad_inputs.conftest import assert_one_error, cli

PARSER_CASES = [
    ("no-command", (), ("COMMAND", "required")),
    ("command-typo", ("rnu",), ("'rnu'", "'run'")),
    ("command-wrong-case", ("Run",), ("'Run'",)),
    ("global-option-typo", ("--verbose", "metrics"), ("--verbose",)),
    ("metrics-extra-argument", ("metrics", "json_valid"), ("json_valid", "unrecognized")),
    ("metrics-unknown-option", ("metrics", "--json"), ("--json", "unrecognized")),
    ("validate-without-suite", ("validate",), ("suite", "required")),
    ("validate-two-suites", ("validate", "a.yaml", "b.yaml"), ("b.yaml", "unrecognized")),
    ("validate-option-typo", ("validate", "a.yaml", "--allow-netwrok"), ("--allow-netwrok",)),
    ("run-without-suite", ("run",), ("suite file", "--forgetting-only")),
    ("run-adapter-without-value", ("run", "s.yaml", "--adapter"), ("--adapter", "expected one argument")),
    ("report-without-run", ("report",), ("run_dir", "required")),
    ("report-format-unknown", ("report", "runs/x", "--format", "pdf"), ("--format", "'pdf'", "md")),
    ("report-format-without-value", ("report", "runs/x", "--format"), ("--format",)),
    ("report-option-typo", ("report", "runs/x", "--stout"), ("--stout",)),
    ("compare-one-run", ("compare", "runs/a"), ("run_b", "required")),
    ("compare-three-runs", ("compare", "runs/a", "runs/b", "runs/c"), ("runs/c", "unrecognized")),
    ("compare-seed-float", ("compare", "runs/a", "runs/b", "--seed", "1.5"), ("--seed", "'1.5'")),
    ("gate-without-run", ("gate",), ("run_dir", "required")),
    ("gate-policy-without-value", ("gate", "runs/a", "--policy"), ("--policy", "expected one argument")),
    ("adapter-without-action", ("adapter",), ("ACTION", "required")),
    ("adapter-action-typo", ("adapter", "merg", "x"), ("'merg'", "'inspect'")),
    ("adapter-inspect-without-path", ("adapter", "inspect"), ("path", "required")),
    ("adapter-merge-without-path", ("adapter", "merge", "--out", "m"), ("path", "required")),
]


@pytest.mark.parametrize(("argv", "needles"), [c[1:] for c in PARSER_CASES], ids=[c[0] for c in PARSER_CASES])
def test_bad_command_line(argv, needles, capsys, forbid_model_load):
    line = assert_one_error(cli(capsys, *argv), *needles)
    assert "--help" in line, "a parsing error says where the help is"


def test_debug_after_the_command_is_accepted(capsys):
    code, out, _ = cli(capsys, "metrics", "--debug")
    assert code == 0 and "json_valid" in out


def test_an_internal_error_is_exit_3_and_one_line(capsys, monkeypatch, suite_dir):
    """A bug is not the user's fault and must not read as a failed gate (exit 1)."""
    import evalkit.validate

    def broken(*args, **kwargs):
        raise RuntimeError("boom\nsecond line of a library message")

    monkeypatch.setattr(evalkit.validate, "check_suite", broken)
    code, out, err = cli(capsys, "validate", suite_dir())
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 3 and len(lines) == 1 and "Traceback" not in out + err
    assert lines[0].startswith("internal error") and "RuntimeError: boom" in lines[0] and "--debug" in lines[0]


def test_an_error_message_with_newlines_is_still_one_line(capsys, monkeypatch, suite_dir):
    """Messages that quote a library's multi-line text (sqlite, safetensors) are joined into one line."""
    import evalkit.validate
    from evalkit.errors import DataError

    def multi_line(*args, **kwargs):
        raise DataError("data.jsonl: cannot read\n  detail from a library\n")

    monkeypatch.setattr(evalkit.validate, "check_suite", multi_line)
    assert_one_error(cli(capsys, "validate", suite_dir()), "data.jsonl: cannot read detail from a library")


@pytest.fixture
def broken_plugin(monkeypatch):
    """A metrics plugin whose module fails to import (an installed package with a bug or a missing dependency)."""
    from importlib.metadata import EntryPoint

    from evalkit import registry

    plugin = EntryPoint(name="toxicity", value="evalkit_no_such_plugin_module:toxicity", group="evalkit.metrics")
    monkeypatch.setattr(registry, "entry_points", lambda group: [plugin] if group == "evalkit.metrics" else [])
    monkeypatch.setattr(registry, "_PLUGINS_LOADED", set())
    monkeypatch.setattr(registry, "_PLUGIN_FAILURES", {})


def test_metrics_lists_built_ins_and_warns_about_a_broken_plugin(broken_plugin, capsys):
    code, out, err = cli(capsys, "metrics")
    assert code == 0 and "json_valid" in out and "Traceback" not in out + err
    warning = [line for line in err.splitlines() if line.strip()]
    assert len(warning) == 1 and warning[0].startswith("warning:") and "'toxicity'" in warning[0] and "uninstall" in warning[0]


def test_suite_naming_a_metric_of_a_broken_plugin(broken_plugin, capsys, suite_dir):
    from tests.bad_inputs.conftest import SUITE

    path = suite_dir(SUITE.replace("type: json_valid", "type: toxicity"))
    assert_one_error(cli(capsys, "validate", path), "metrics[0]", "'toxicity'", "failed to import", "evalkit_no_such_plugin_module")
