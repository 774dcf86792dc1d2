"""Bad gate policies and bad ``--out`` paths for ``gate``, ``compare`` and ``report``: one line, exit 2.

A gate that cannot be evaluated must never read as a verdict: exit 2 for a broken policy,
never 0 (passed) or 1 (failed).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bad_inputs.conftest import assert_one_error, cli
from tests.rundirs import make_run


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    values = {
        "base": {"format": [0.0, 1.0, 0.0, 1.0, 0.0, 1.0], "length": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]},
        "lora": {"format": [1.0, 1.0, 1.0, 1.0, 0.0, 1.0], "length": [0.2, 0.2, 0.3, 0.5, 0.5, 0.7]},
    }
    return make_run(tmp_path_factory.mktemp("runs") / "run", values, binary={"format": True, "length": False})


@pytest.fixture(scope="module")
def base_only(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs") / "base-only", {"base": {"format": [0.0, 1.0, 1.0]}})


POLICIES = [
    ("empty-file", "", ("policy.yaml", "mapping with rules")),
    ("only-comments", "# rules go here\n", ("policy.yaml", "mapping with rules")),
    ("a-list-of-rules", "- {metric: format, min_delta: 0}\n", ("policy.yaml", "mapping with rules")),
    ("not-utf8", b"rules:\n  - {metric: format, min_delta: 0}  # \xe9\n", ("policy.yaml", "UTF-8")),
    ("invalid-yaml", "rules: [\n", ("policy.yaml", "invalid YAML")),
    ("no-rules", "alpha: 0.05\n", ("policy.yaml", "'rules'", "required")),
    ("rules-empty", "rules: []\n", ("policy.yaml", "rules", "non-empty")),
    ("rules-a-mapping", "rules: {metric: format, min_delta: 0}\n", ("policy.yaml", "rules", "array")),
    ("rule-null", "rules:\n  -\n", ("policy.yaml", "rules[0]", "object")),
    ("rule-a-string", "rules: [format]\n", ("policy.yaml", "rules[0]", "object")),
    ("rule-key-typo", "rules:\n  - {metric: format, min_delt: 0.1}\n", ("policy.yaml", "rules[0]", "'min_delt'")),
    ("rule-checks-nothing", "rules:\n  - {metric: format}\n", ("policy.yaml", "rules[0]", "give one of")),
    ("rule-without-metric", "rules:\n  - {min_delta: 0.1}\n", ("policy.yaml", "rules[0]", "give a metric")),
    ("only-require-significant-false", "rules:\n  - {metric: format, require_significant: false}\n", ("policy.yaml", "checks anything")),
    ("unknown-metric", "rules:\n  - {metric: formatt, min_delta: 0}\n", ("rules[0].metric", "'formatt'", "format, length")),
    ("metric-a-number", "rules:\n  - {metric: 5, min_delta: 0}\n", ("policy.yaml", "rules[0].metric")),
    ("min-delta-quoted", "rules:\n  - {metric: format, min_delta: '0.1'}\n", ("policy.yaml", "rules[0].min_delta", "number")),
    ("min-delta-percent", "rules:\n  - {metric: format, min_delta: 5%}\n", ("policy.yaml", "rules[0].min_delta")),
    ("min-delta-nan", "rules:\n  - {metric: format, min_delta: .nan}\n", ("policy.yaml", "rules[0].min_delta", "finite")),
    ("min-delta-inf", "rules:\n  - {metric: format, min_delta: .inf}\n", ("policy.yaml", "rules[0].min_delta", "finite")),
    ("min-delta-minus-inf", "rules:\n  - {metric: format, min_delta: -.inf}\n", ("policy.yaml", "rules[0].min_delta", "finite")),
    ("max-drop-negative", "rules:\n  - {metric: format, max_drop: -0.05}\n", ("policy.yaml", "rules[0].max_drop")),
    ("min-value-string", "rules:\n  - {metric: format, min_value: high}\n", ("policy.yaml", "rules[0].min_value")),
    ("min-n-zero", "rules:\n  - {min_n: 0}\n", ("policy.yaml", "rules[0].min_n")),
    ("min-n-float", "rules:\n  - {min_n: 50.0}\n", ("policy.yaml", "rules[0].min_n", "integer")),
    ("require-significant-yes-string", "rules:\n  - {metric: format, require_significant: 'yes'}\n", ("policy.yaml", "rules[0].require_significant")),
    ("alpha-zero", "alpha: 0\nrules:\n  - {metric: format, require_significant: true}\n", ("policy.yaml", "alpha")),
    ("alpha-percent", "alpha: 5\nrules:\n  - {metric: format, require_significant: true}\n", ("policy.yaml", "alpha")),
    ("alpha-quoted", "alpha: '0.05'\nrules:\n  - {metric: format, require_significant: true}\n", ("policy.yaml", "alpha")),
    ("arms-a-string", "arms: lora\nrules:\n  - {metric: format, min_delta: 0}\n", ("policy.yaml", "arms", "array")),
    ("arms-empty", "arms: []\nrules:\n  - {metric: format, min_delta: 0}\n", ("policy.yaml", "arms", "non-empty")),
    ("arms-unknown", "arms: [lorra]\nrules:\n  - {metric: format, min_delta: 0}\n", ("arms", "'lorra'", "lora")),
    ("arms-base", "arms: [base]\nrules:\n  - {metric: format, min_delta: 0}\n", ("arms", "'base'")),
    ("rules-given-twice", "rules:\n  - {metric: format, min_delta: 0}\nrules:\n  - {metric: format, min_delta: 0.9}\n", ("policy.yaml", "'rules'", "twice")),
    ("unknown-top-level-key", "rule:\n  - {metric: format, min_delta: 0}\n", ("policy.yaml", "'rule'")),
]


@pytest.mark.parametrize(("policy", "needles"), [p[1:] for p in POLICIES], ids=[p[0] for p in POLICIES])
def test_bad_policy_is_exit_2_not_a_verdict(policy, needles, run, tmp_path, capsys):
    path = tmp_path / "policy.yaml"
    path.write_bytes(policy) if isinstance(policy, bytes) else path.write_text(policy)
    assert_one_error(cli(capsys, "gate", run, "--policy", path), *needles)


@pytest.mark.parametrize(
    ("policy_path", "needles"),
    [
        pytest.param("{tmp}/gate.yml", ("gate.yml", "not found"), id="policy-missing"),
        pytest.param("{tmp}", ("folder", "YAML file inside"), id="policy-is-a-folder"),
    ],
)
def test_bad_policy_path(policy_path, needles, run, tmp_path, capsys):
    assert_one_error(cli(capsys, "gate", run, "--policy", policy_path.format(tmp=tmp_path)), *needles)


def test_no_policy_anywhere(run, capsys):
    assert_one_error(cli(capsys, "gate", run), "no gate policy", "--policy")


def test_gate_on_a_run_without_adapters(base_only, tmp_path, capsys):
    (tmp_path / "policy.yaml").write_text("rules:\n  - {metric: format, min_delta: 0}\n")
    assert_one_error(cli(capsys, "gate", base_only, "--policy", tmp_path / "policy.yaml"), "no adapter arm", "--adapter")


# ---------------------------------------------------------------- --out of gate, compare and report


@pytest.fixture
def policy(tmp_path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text("rules:\n  - {metric: format, min_delta: 0}\n")
    return path


def test_gate_out_onto_the_runs_own_manifest(run, policy, capsys):
    """Issue 7's "nothing finished is overwritten": ``--out RUN/manifest.json`` replaced the manifest with Markdown."""
    manifest = (run / "manifest.json").read_bytes()
    assert_one_error(cli(capsys, "gate", run, "--policy", policy, "--out", run / "manifest.json"), "--out", "manifest.json", "--overwrite")
    assert (run / "manifest.json").read_bytes() == manifest


@pytest.mark.parametrize(
    ("command", "out", "needles"),
    [
        pytest.param("gate", "{tmp}", ("--out", "folder"), id="gate-out-is-a-folder"),
        pytest.param("gate", "{policy}/gate.md", ("--out folder", "policy.yaml", "is a file"), id="gate-out-inside-a-file"),
        pytest.param("gate", "{unwritable}/gate.md", ("--out folder", "writable"), id="gate-out-unwritable"),
        pytest.param("compare", "{tmp}", ("--out", "folder"), id="compare-out-is-a-folder"),
        pytest.param("compare", "{policy}", ("--out", "policy.yaml", "--overwrite"), id="compare-out-exists"),
        pytest.param("compare", "{policy}/table.md", ("--out folder", "policy.yaml"), id="compare-out-inside-a-file"),
        pytest.param("compare", "{unwritable}/table.md", ("--out folder", "writable"), id="compare-out-unwritable"),
    ],
)
def test_bad_out_path(command, out, needles, run, policy, tmp_path, unwritable, capsys):
    target = out.format(tmp=tmp_path, policy=policy, unwritable=unwritable)
    argv = ("gate", run, "--policy", policy, "--out", target) if command == "gate" else ("compare", run, run, "--out", target)
    assert_one_error(cli(capsys, *argv), *needles)


def test_gate_out_overwrite_is_explicit(run, policy, tmp_path, capsys):
    target = tmp_path / "gate.md"
    target.write_text("old summary\n")
    code, _, err = cli(capsys, "gate", run, "--policy", policy, "--out", target, "--overwrite")
    assert code == 0 and "evalkit gate" in target.read_text(), err


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0, reason="root writes into read-only folders")
def test_report_into_a_read_only_run(tmp_path, capsys):
    run_dir = make_run(tmp_path / "ro", {"base": {"f": [0.0, 1.0]}, "lora": {"f": [1.0, 1.0]}})
    run_dir.chmod(0o500)
    try:
        assert_one_error(cli(capsys, "report", run_dir), "cannot write", "--stdout")
        assert cli(capsys, "report", run_dir, "--stdout")[0] == 0
    finally:
        run_dir.chmod(0o700)


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        pytest.param(("--arm-a", "lorra"), ("no arm 'lorra'", "--arm-a"), id="compare-unknown-arm-a"),
        pytest.param(("--arm-b", "v2"), ("no arm 'v2'", "--arm-b"), id="compare-unknown-arm-b"),
        pytest.param(("--seed", "abc"), ("--seed", "'abc'"), id="compare-seed-word"),
    ],
)
def test_bad_compare_options(argv, needles, run, capsys):
    assert_one_error(cli(capsys, "compare", run, run, *argv), *needles)


def test_compare_runs_of_two_suites(run, tmp_path, capsys):
    other = make_run(tmp_path / "other", {"base": {"format": [0.0, 1.0]}, "lora": {"format": [1.0, 1.0]}}, suite="other")
    assert_one_error(cli(capsys, "compare", run, other), "different suites", "'other'")
