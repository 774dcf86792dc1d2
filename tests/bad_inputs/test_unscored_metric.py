"""A metric that errors on every item is named unscored everywhere: run, report, compare and gate.

Issue 7: such a metric was counted in the headline as "unchanged within noise", ``compare``
dropped even its error note, and a gate rule on it could pass. Here a plugin metric fails
on every model answer (it passes the dry score on the suite's own targets, as a buggy
plugin would), with a plugin backend, through the real CLI; no model is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit import registry
from evalkit.metrics import metric
from evalkit.models.adapters import parse_adapter_arg
from evalkit.models.base import backend
from evalkit.models.fake import FakeBackend
from evalkit.records import Score
from tests.bad_inputs.conftest import SUITE, cli

PLUGIN_SUITE = SUITE.replace(
    "    type: field_match\n    params: {field: severity}\n",
    "    type: corpus_severity_plugin\n",
)


@pytest.fixture
def plugins():
    """A backend and a metric registered as plugins are, removed afterwards."""

    @backend("corpus-fake")
    def corpus_fake(base, adapters, options):
        names = [parse_adapter_arg(a)[0] or a for a in adapters]
        answers = {"base": "I think it is serious.", **{n: '{"sev": 1}' for n in names}}
        return FakeBackend(lambda request, arm: answers[arm], arms=names, model=base)

    @metric("corpus_severity_plugin", binary=True)
    def corpus_severity_plugin():
        """A plugin with a bug: it reads the answer's severity without checking the answer has one."""

        def score(output, item):
            return Score(float(json.loads(output)["severity"] == item.row["severity"]))

        return score

    yield
    registry._REGISTRY.pop(("backend", "corpus-fake"), None)
    registry._REGISTRY.pop(("metric", "corpus_severity_plugin"), None)


@pytest.fixture
def run_dir(plugins, suite_dir, tmp_path, capsys, forbid_model_load) -> tuple[Path, str, str]:
    suite = suite_dir(PLUGIN_SUITE)
    code, out, err = cli(capsys, "run", suite, "--backend", "corpus-fake", "--base", "fake-base", "--adapter", "tuned=tuned",
                         "--runs-dir", tmp_path / "runs", "--cache", tmp_path / "cache.sqlite")
    assert code == 0, err
    return next((tmp_path / "runs").iterdir()), out, err


def test_run_names_the_unscored_metric_on_stderr_and_in_the_headline(run_dir):
    _, out, err = run_dir
    assert "Traceback" not in out + err
    warning = next(line for line in err.splitlines() if "'severity'" in line)
    assert warning.startswith("warning:") and "could not score any item" in warning
    headline = out.splitlines()[0]
    assert "not scored" in headline and "severity" in headline and "unchanged" not in headline


def test_report_names_it_in_its_first_lines_and_its_table(run_dir, capsys):
    path, _, _ = run_dir
    code, out, err = cli(capsys, "report", path, "--stdout")
    assert code == 0, err
    first_lines = "\n".join(out.splitlines()[:4])
    assert "**not scored**: severity" in first_lines
    row = next(line for line in out.splitlines() if line.startswith("| severity |"))
    assert "**not scored**" in row and "0 (4 + 4 err)" in row


def test_compare_names_it(run_dir, capsys):
    path, _, _ = run_dir
    code, out, err = cli(capsys, "compare", path, path)
    assert code == 0, err
    assert "**not scored**: severity" in out.splitlines()[2]
    row = next(line for line in out.splitlines() if line.startswith("| severity |"))
    assert "**not scored**" in row
    assert "could not score" in out  # the error note compare used to drop


def test_gate_rule_on_it_fails_with_that_reason(run_dir, tmp_path, capsys):
    path, _, _ = run_dir
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - {metric: severity, max_drop: 1.0}\n")  # the loosest rule there is: still no verdict
    code, out, err = cli(capsys, "gate", path, "--policy", policy)
    assert code == 1, err
    fail = next(line for line in out.splitlines() if "severity" in line)
    assert fail.startswith("FAIL") and "not scored" in fail
    assert "not scored" in (path / "gate.md").read_text()


def test_gate_on_the_scored_metric_alone_still_passes(run_dir, tmp_path, capsys):
    path, _, _ = run_dir
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - {metric: format, min_delta: 0}\n")
    code, _, err = cli(capsys, "gate", path, "--policy", policy)
    assert code == 0, err
