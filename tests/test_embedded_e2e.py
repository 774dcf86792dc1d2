"""End to end on the real embedded SmolLM2-135M-Instruct: base and an adapter on incident-triage items."""

from __future__ import annotations

import json

import pytest

from evalkit.report import write_report
from evalkit.runner import RunOptions, run_suite
from evalkit.suite import load_suite
from tests.conftest import REPO, make_adapter


@pytest.mark.slow
def test_real_model_base_vs_adapter_on_incident_triage(tmp_path, embedded):
    adapter = make_adapter(embedded.path, tmp_path / "smol-lora", target=("q_proj", "v_proj"), r=4, seed=3)
    suite = load_suite(REPO / "suites/incident-triage.yaml")
    result = run_suite(suite, RunOptions(adapters=(f"lora={adapter}",), runs_dir=tmp_path / "runs",
                                         cache_path=tmp_path / "cache.sqlite", limit=6))
    assert result.manifest.base.source == "embedded"
    assert result.manifest.base.fingerprint == embedded.fingerprint
    assert result.summary.metrics == ["format", "severity", "component", "faithfulness"]
    assert result.manifest.extra["judge"]["reused_run_base"], "the default judge is the run's own loaded base"
    gens = [json.loads(line) for line in (result.run_dir / "generations.jsonl").read_text().splitlines()]
    base = [g["text"] for g in gens if g["arm"] == "base"]
    assert all(base), "the real model answers every prompt"
    assert any(g["text"] != b for g, b in zip([g for g in gens if g["arm"] == "lora"], base))
    report = write_report(result.run_dir).read_text()
    assert "| format |" in report and "## Run facts" in report
    # the suite's forgetting section ran too, capped by --limit: ARC-Easy on the real model, KL of a random adapter
    fs = result.summary.forgetting
    assert fs is not None and fs.panels[0].name == "arc_easy" and fs.panels[0].n == 6
    assert 0 <= fs.means["base"]["arc_easy/acc"] <= 1 and fs.drift_of("lora").mean_kl > 1e-4
    assert "## Forgetting" in report
