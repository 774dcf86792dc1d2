"""Summaries pair by item; `evalkit compare` pairs two runs of one suite by item id."""

from __future__ import annotations

import math

import pytest

from evalkit.cli import main
from evalkit.compare import compare_runs
from evalkit.errors import RunDirError
from evalkit.rundir import load_run
from tests.rundirs import make_run


def test_summary_pairs_by_item_and_counts_flips(tmp_path):
    run = load_run(make_run(tmp_path / "r", {"base": {"m": [0, 0, 1, 1, 0]}, "a": {"m": [1, 0, 1, 0, 1]}}))
    d = run.summary.delta("m", "a")
    assert (d.reference_mean, d.arm_mean, d.n) == (0.4, 0.6, 5)
    assert (d.fail_to_pass, d.pass_to_fail) == (2, 1)
    assert d.test == "mcnemar-exact" and d.p_value == pytest.approx(1.0)
    assert sorted(f.item_id for f in run.summary.flips if f.direction == "fail→pass") == ["i000", "i004"]


def test_metric_errors_are_counted_and_excluded_from_means(tmp_path):
    run = load_run(make_run(tmp_path / "r", {"base": {"m": [1, None, 0, 1]}, "a": {"m": [1, 1, None, 1]}}))
    d = run.summary.delta("m", "a")
    assert d.n == 2 and d.reference_errors == 1 and d.arm_errors == 1
    assert run.summary.means["base"]["m"] == pytest.approx(2 / 3)


def test_identical_outputs_share_is_measured(tmp_path):
    texts = {"base": ["x", "y", "z", "w"], "a": ["x", "y", "z", "DIFFERENT"]}
    run = load_run(make_run(tmp_path / "r", {"base": {"m": [1, 0, 1, 0]}, "a": {"m": [1, 0, 1, 1]}}, texts=texts))
    assert run.summary.identical_outputs["a"] == pytest.approx(0.75)


def test_holm_adjusts_across_the_metrics_of_an_arm(tmp_path):
    base = {"m1": [0] * 30, "m2": [0] * 30}
    adapter = {"m1": [1] * 8 + [0] * 22, "m2": [1] * 6 + [0] * 24}
    s = load_run(make_run(tmp_path / "r", {"base": base, "a": adapter})).summary
    d1, d2 = s.delta("m1", "a"), s.delta("m2", "a")
    assert d1.p_adjusted == pytest.approx(min(1, 2 * d1.p_value))  # smallest p × 2
    assert d2.p_adjusted == pytest.approx(max(d1.p_adjusted, d2.p_value))


def test_compare_runs_matches_by_item_id(tmp_path):
    a = make_run(tmp_path / "a", {"base": {"m": [0] * 10}, "v1": {"m": [1] * 5 + [0] * 5}})
    b = make_run(tmp_path / "b", {"base": {"m": [0] * 10}, "v2": {"m": [1] * 8 + [0] * 2}})
    s = compare_runs(load_run(a), load_run(b))
    assert s.arms == ["A:v1", "B:v2"]
    d = s.delta("m", "B:v2")
    assert (d.reference_mean, d.arm_mean, d.fail_to_pass, d.pass_to_fail) == (0.5, 0.8, 3, 0)


def test_compare_refuses_runs_of_different_suites(tmp_path):
    a = make_run(tmp_path / "a", {"base": {"m": [0, 1]}, "v1": {"m": [1, 1]}}, suite="one")
    b = make_run(tmp_path / "b", {"base": {"m": [0, 1]}, "v1": {"m": [1, 1]}}, suite="two")
    with pytest.raises(RunDirError, match="different suites"):
        compare_runs(load_run(a), load_run(b))


def test_compare_cli_prints_the_paired_table(tmp_path, capsys):
    a = make_run(tmp_path / "a", {"base": {"m": [0] * 10}, "v1": {"m": [1] * 5 + [0] * 5}})
    b = make_run(tmp_path / "b", {"base": {"m": [0] * 10}, "v2": {"m": [1] * 8 + [0] * 2}})
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp.md")]) == 0
    out = capsys.readouterr().out
    assert "| m | 0.500 | 0.800 | +0.300 |" in out and (tmp_path / "cmp.md").exists()
    assert main(["compare", str(a), str(b), "--arm-b", "nope"]) == 2


def test_summary_json_is_strict_json_even_with_nan(tmp_path):
    import json

    path = make_run(tmp_path / "r", {"base": {"m": [None, None]}, "a": {"m": [None, None]}})
    doc = json.loads((path / "summary.json").read_text())
    assert doc["deltas"][0]["delta"] is None
    assert math.isnan(load_run(path).summary.delta("m", "a").delta)
