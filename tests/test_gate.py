"""Gate rules pass and fail on constructed runs; the CLI maps verdicts to exit codes 0, 1 and 2."""

from __future__ import annotations

import pytest

from evalkit.cli import main
from evalkit.errors import GateError
from evalkit.gate import evaluate_gate, load_policy
from evalkit.rundir import load_run
from tests.rundirs import make_run

N = 120
# format: base passes 30%, adapter 90% (Δ = +0.6, highly significant)
# faith:  base 80%, adapter 78% on a few flips each way (Δ ≈ −0.02, CI spans about ±0.07)
BASE = {"format": [1.0] * 36 + [0.0] * 84, "faith": [1.0] * 96 + [0.0] * 24}
ADAPTER = {"format": [1.0] * 108 + [0.0] * 12, "faith": [1.0] * 90 + [0.0] * 6 + [1.0] * 4 + [0.0] * 20}


@pytest.fixture
def run(tmp_path):
    return load_run(make_run(tmp_path / "run", {"base": BASE, "v1": ADAPTER}))


def _verdict(run, *rules, **policy):
    return evaluate_gate(run.summary, load_policy(None, {"rules": list(rules), **policy}))


def test_min_delta_passes_and_fails(run):
    assert _verdict(run, {"metric": "format", "min_delta": 0.5}).passed
    failed = _verdict(run, {"metric": "format", "min_delta": 0.7})
    assert not failed.passed and failed.failures[0].shortfall == pytest.approx(0.1)


def test_require_significant_passes_and_fails(run):
    assert _verdict(run, {"metric": "format", "require_significant": True}).passed
    assert not _verdict(run, {"metric": "faith", "require_significant": True}).passed


def test_max_drop_is_non_inferiority_on_the_ci_lower_bound(run):
    d = run.summary.delta("faith", "v1")
    assert d.delta < 0 < d.ci_high  # not a significant drop
    assert _verdict(run, {"metric": "faith", "max_drop": 0.2}).passed
    tight = _verdict(run, {"metric": "faith", "max_drop": 0.01})
    assert not tight.passed, "a CI lower bound below −0.01 must fail a 0.01 non-inferiority margin"
    assert "CI lower bound" in tight.failures[0].observed


def test_min_value_passes_and_fails(run):
    assert _verdict(run, {"metric": "format", "min_value": 0.85}).passed
    assert not _verdict(run, {"metric": "format", "min_value": 0.95}).passed


def test_min_n_applies_to_every_metric_when_no_metric_is_named(run):
    ok = _verdict(run, {"min_n": N})
    assert ok.passed and len(ok.results) == 2
    assert not _verdict(run, {"min_n": N + 1}).passed


def test_unknown_metric_in_a_rule_is_a_gate_error(run):
    with pytest.raises(GateError, match="'accuracy' is not a metric of this run"):
        _verdict(run, {"metric": "accuracy", "min_delta": 0.1})


def test_malformed_policy_is_a_gate_error():
    with pytest.raises(GateError, match="rules"):
        load_policy(None, {"rule": []})
    with pytest.raises(GateError, match="max_drop"):
        load_policy(None, {"rules": [{"metric": "x", "max_drop": -1}]})


def test_cli_exit_codes_0_1_2(tmp_path, capsys):
    run_dir = make_run(tmp_path / "run", {"base": BASE, "v1": ADAPTER},
                       gate={"rules": [{"metric": "format", "min_delta": 0.5, "require_significant": True}]})
    assert main(["gate", str(run_dir)]) == 0
    assert "✅" in (run_dir / "gate.md").read_text()
    policy = tmp_path / "strict.yaml"
    policy.write_text("rules:\n  - {metric: format, min_delta: 0.9}\n  - {metric: faith, max_drop: 0.01}\n")
    assert main(["gate", str(run_dir), "--policy", str(policy)]) == 1
    md = (run_dir / "gate.md").read_text()
    assert "❌" in md and "short by 0.300" in md and "faith: max_drop 0.01" in md
    policy.write_text("rules: [{metric: format, min_delta: 'big'}]\n")
    assert main(["gate", str(run_dir), "--policy", str(policy)]) == 2
    assert main(["gate", str(tmp_path / "missing")]) == 2
    capsys.readouterr()


def test_no_policy_anywhere_exits_2(tmp_path, capsys):
    run_dir = make_run(tmp_path / "run", {"base": BASE, "v1": ADAPTER})
    assert main(["gate", str(run_dir)]) == 2
    assert "no gate policy" in capsys.readouterr().err


def test_a_policy_that_checks_nothing_is_an_error(run):
    with pytest.raises(GateError, match="no rule checks anything"):
        _verdict(run, {"metric": "format", "require_significant": False})


# ---------------------------------------------------------------- forgetting budgets

def _forgetting_run(tmp_path, *, adapter_right: int, mean_kl: float = 0.02, max_drop: float | None = None, max_kl: float | None = None):
    from tests.rundirs import add_forgetting

    path = make_run(tmp_path / "run", {"base": BASE, "v1": ADAPTER})
    # arc_easy, 200 items: base right on 120; the adapter keeps 120 - adapter_right … as given
    base = [True] * 120 + [False] * 80
    adapter = [True] * adapter_right + [False] * (200 - adapter_right)
    return add_forgetting(path, "arc_easy", base[:200], adapter, mean_kl=mean_kl, max_drop=max_drop, max_kl=max_kl)


def test_panel_budget_is_non_inferiority_on_the_panel_ci(tmp_path):
    run = load_run(_forgetting_run(tmp_path, adapter_right=80))  # Δ = −0.20 on arc_easy
    failed = _verdict(run, {"panel": "arc_easy", "max_drop": 0.05})
    assert not failed.passed
    (f,) = failed.failures
    assert f.rule == "arc_easy/acc_norm: max_drop 0.05" and f.arm == "v1"
    assert _verdict(run, {"panel": "arc_easy", "metric": "acc", "max_drop": 0.5}).passed


def test_max_kl_passes_and_fails(tmp_path):
    run = load_run(_forgetting_run(tmp_path, adapter_right=120, mean_kl=0.3))
    assert _verdict(run, {"max_kl": 0.5}).passed
    failed = _verdict(run, {"max_kl": 0.1})
    assert not failed.passed and failed.failures[0].observed == "mean KL 0.3000" and failed.failures[0].shortfall == pytest.approx(0.2)


def test_a_panel_the_run_did_not_score_is_a_gate_error(tmp_path):
    run = load_run(_forgetting_run(tmp_path, adapter_right=120))
    with pytest.raises(GateError, match=r"rules\[0\].panel: 'hellaswag' is not a forgetting panel of this run \(arc_easy\)"):
        _verdict(run, {"panel": "hellaswag", "max_drop": 0.05})


def test_max_kl_on_a_run_without_drift_is_a_gate_error(run):
    with pytest.raises(GateError, match="measured no KL drift"):
        _verdict(run, {"max_kl": 0.1})


def test_violated_forgetting_budget_exits_1_naming_the_panel(tmp_path, capsys):
    path = _forgetting_run(tmp_path, adapter_right=80, max_drop=0.05, max_kl=1.0)  # budgets from the forgetting section, no gate:
    code = main(["gate", str(path)])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  v1 · arc_easy/acc_norm: max_drop 0.05" in out and "pass  v1 · kl: max_kl 1" in out
    assert "arc_easy/acc_norm" in (path / "gate.md").read_text()


def test_forgetting_budgets_within_limits_exit_0(tmp_path, capsys):
    path = _forgetting_run(tmp_path, adapter_right=120, max_drop=0.2, max_kl=0.5)
    assert main(["gate", str(path)]) == 0
