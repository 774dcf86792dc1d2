"""The forgetting stage inside `evalkit run` (tiny model): rows, summary, report, cache, forgetting-only runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from evalkit.errors import ForgettingError, SuiteError
from evalkit.forgetting import ForgettingSpec, PanelSpec, load_panel, subsample
from evalkit.forgetting.spec import DriftSpec
from evalkit.models import HFBackend, LoadOptions, resolve_adapter
from evalkit.report import write_report
from evalkit.runner import RunOptions, run_suite
from evalkit.rundir import load_run
from evalkit.suite import load_suite
from tests.conftest import SUITE_YAML
from tests.models.test_hf_loglikelihood import _zero_adapter

FORGETTING = """
forgetting:
  panels:
    - {name: arc_easy, n: 6, max_drop: 0.5}
    - {name: winogrande, n: 4}
  kl: {passages: 3, max_tokens: 32}
"""


@pytest.fixture(scope="module")
def zero_adapter(tiny_model_dir, tmp_path_factory) -> Path:
    return _zero_adapter(tiny_model_dir, tmp_path_factory.mktemp("zero") / "zero-lora")


def _options(tmp_path: Path, model, adapters=(), **kw) -> RunOptions:
    return RunOptions(base=str(model.path), adapters=tuple(str(a) for a in adapters), runs_dir=tmp_path / "runs",
                      cache_path=tmp_path / "cache.sqlite", **kw)


class CountingLL:
    """Counts the log-likelihood requests and drift passages a backend is asked to compute."""

    def __init__(self, inner):
        self.inner, self.requests, self.passages = inner, 0, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def loglikelihood(self, requests, arm):
        self.requests += len(requests)
        return self.inner.loglikelihood(requests, arm)

    def kl_drift(self, texts, arm, max_tokens=256):
        self.passages += len(texts)
        return self.inner.kl_drift(texts, arm, max_tokens=max_tokens)


def test_a_zero_adapter_shows_kl_zero_no_flips_and_a_no_effect_warning(tmp_path, make_suite, tiny_model, zero_adapter):
    suite = load_suite(make_suite(n=2, max_new_tokens=2, yaml_text=SUITE_YAML.format(max_new_tokens=2) + FORGETTING))
    result = run_suite(suite, _options(tmp_path, tiny_model, [zero_adapter]))
    fs = result.summary.forgetting
    assert fs is not None and [p.name for p in fs.panels] == ["arc_easy", "winogrande"]
    assert {d.metric for d in fs.deltas} == {"arc_easy/acc", "arc_easy/acc_norm", "winogrande/acc"}
    for d in fs.deltas:
        assert d.delta == 0 and d.fail_to_pass == 0 and d.pass_to_fail == 0 and d.n in (6, 4)
    (drift,) = fs.drift
    assert drift.arm == "zero-lora" and drift.passages == 3 and drift.mean_kl < 1e-6 and drift.top1_agreement == 1.0
    assert drift.no_effect
    assert any("'zero-lora' had no effect" in w for w in result.warnings)
    report = write_report(result.run_dir).read_text()
    assert "## Forgetting" in report and "zero-lora had no effect" in report and "arc_easy" in report


def test_run_directory_holds_every_choice_and_passage_and_the_config(tmp_path, make_suite, tiny_model, tiny_adapter):
    suite = load_suite(make_suite(n=2, max_new_tokens=2, yaml_text=SUITE_YAML.format(max_new_tokens=2) + FORGETTING))
    result = run_suite(suite, _options(tmp_path, tiny_model, [tiny_adapter]))
    with (result.run_dir / "forgetting.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    arc = subsample(load_panel("arc_easy"), 6)
    assert len(rows) == 2 * (sum(len(it.choices) for it in arc) + 4 * 2)  # arms × choices
    first = [r for r in rows if r["item_id"] == arc[0].id and r["arm"] == "base"]
    assert [int(r["choice"]) for r in first] == list(range(len(arc[0].choices)))
    assert sum(int(r["is_gold"]) for r in first) == 1 and all(float(r["logprob"]) < 0 for r in first)
    with (result.run_dir / "drift.csv").open() as fh:
        drift = list(csv.DictReader(fh))
    assert len(drift) == 3 and {r["arm"] for r in drift} == {"tiny-lora"} and all(float(r["mean_kl"]) > 0 for r in drift)
    run = load_run(result.run_dir)
    assert run.summary.version == 3 and run.summary.forgetting == result.summary.forgetting
    config = run.manifest.extra["forgetting"]["config"]
    assert config["panels"][0] == {"name": "arc_easy", "n": 6, "max_drop": 0.5, "metric": None}
    assert run.manifest.extra["forgetting"]["data_package"] == "0.9.0"


def test_a_rerun_computes_no_loglikelihood_and_no_drift(tmp_path, make_suite, tiny_model, tiny_adapter):
    suite = load_suite(make_suite(n=2, max_new_tokens=2, yaml_text=SUITE_YAML.format(max_new_tokens=2) + FORGETTING))
    first = run_suite(suite, _options(tmp_path, tiny_model, [tiny_adapter]))
    backend = CountingLL(HFBackend(tiny_model, [resolve_adapter(str(tiny_adapter))], LoadOptions(device="cpu")))
    second = run_suite(suite, _options(tmp_path, tiny_model, [tiny_adapter]), backend=backend)
    assert backend.requests == 0 and backend.passages == 0
    assert second.summary.forgetting == first.summary.forgetting


def test_forgetting_only_without_a_suite_runs_panels_and_drift_and_no_generation(tmp_path, tiny_model, tiny_adapter):
    spec = ForgettingSpec(panels=(PanelSpec("piqa", n=4, max_drop=0.1),), kl=DriftSpec(passages=2, max_tokens=16))
    result = run_suite(None, _options(tmp_path, tiny_model, [tiny_adapter], forgetting_only=True), forgetting=spec)
    assert result.run_dir.name.endswith("-forgetting")
    assert result.summary.metrics == [] and (result.run_dir / "generations.jsonl").read_text().strip() == ""
    assert result.summary.forgetting.drift[0].mean_kl > 0
    report = write_report(result.run_dir).read_text()
    assert "## Forgetting" in report and "piqa" in report and "## Flips" not in report


def test_forgetting_only_with_a_suite_skips_the_task(tmp_path, make_suite, tiny_model):
    suite = load_suite(make_suite(n=2, max_new_tokens=2, yaml_text=SUITE_YAML.format(max_new_tokens=2) + FORGETTING))
    result = run_suite(suite, _options(tmp_path, tiny_model, forgetting_only=True))
    assert result.summary.metrics == [] and [p.name for p in result.summary.forgetting.panels] == ["arc_easy", "winogrande"]
    assert result.summary.forgetting.drift == []  # no adapter arm: nothing drifts


def test_unknown_panel_in_a_suite_is_refused_when_it_loads(make_suite):
    path = make_suite(yaml_text=SUITE_YAML.format(max_new_tokens=2) + "forgetting:\n  panels: [arc_eazy]\n")
    with pytest.raises(ForgettingError, match=r"forgetting.panels\[0\]: forgetting panel 'arc_eazy' does not exist; panels: arc_easy"):
        load_suite(path)


def test_gate_rule_on_a_panel_the_suite_does_not_run_is_refused(make_suite):
    text = SUITE_YAML.format(max_new_tokens=2) + "forgetting:\n  panels: [arc_easy]\ngate:\n  rules:\n    - {panel: hellaswag, max_drop: 0.1}\n"
    with pytest.raises(SuiteError, match=r"gate.rules\[0\].panel: 'hellaswag' is not a panel of this suite's forgetting section \(arc_easy\)"):
        load_suite(make_suite(yaml_text=text))


def test_compare_pairs_the_forgetting_panels_of_two_runs(tmp_path, make_suite, tiny_model, tiny_adapter, zero_adapter):
    """`evalkit compare` of adapter v1 vs v2 puts their panel results side by side, paired by (panel, item id)."""
    from evalkit.cli import main
    from evalkit.compare import compare_runs

    suite = load_suite(make_suite(n=2, max_new_tokens=2, yaml_text=SUITE_YAML.format(max_new_tokens=2) + FORGETTING))
    one = run_suite(suite, _options(tmp_path, tiny_model, [tiny_adapter]))
    two = run_suite(suite, _options(tmp_path, tiny_model, [zero_adapter]))
    run_a, run_b = load_run(one.run_dir), load_run(two.run_dir)
    fs = compare_runs(run_a, run_b).forgetting
    assert [(p.name, p.n) for p in fs.panels] == [("arc_easy", 6), ("winogrande", 4)]
    assert fs.drift == [] and {d.metric for d in fs.deltas} == {"arc_easy/acc", "arc_easy/acc_norm", "winogrande/acc"}
    # Each side's means are that run's own means for the arm compared.
    assert fs.means["A:tiny-lora"] == one.summary.forgetting.means["tiny-lora"]
    assert fs.means["B:zero-lora"] == two.summary.forgetting.means["zero-lora"]
    # The zero adapter is base: against run A's base arm, every panel item agrees.
    same = compare_runs(run_a, run_b, "base", "zero-lora").forgetting
    assert all(d.delta == 0 and d.fail_to_pass == d.pass_to_fail == 0 for d in same.deltas)
    assert main(["compare", str(one.run_dir), str(two.run_dir), "--out", str(tmp_path / "c.md")]) == 0
    text = (tmp_path / "c.md").read_text()
    assert "## Forgetting" in text and "| arc_easy | **acc_norm** |" in text
    damaged = two.run_dir / "forgetting.csv"
    header, first, *rest = damaged.read_text().splitlines()
    cells = first.split(",")
    cells[header.split(",").index("acc")] = "7"
    damaged.write_text("\n".join([header, ",".join(cells), *rest]) + "\n")
    assert main(["compare", str(one.run_dir), str(two.run_dir)]) == 2  # one line naming the file and line, no traceback


def test_compare_says_when_only_one_run_has_a_forgetting_section(tmp_path, make_suite, tiny_model, tiny_adapter):
    from evalkit.compare import compare_runs

    with_panels = run_suite(load_suite(make_suite(n=2, max_new_tokens=2, yaml_text=SUITE_YAML.format(max_new_tokens=2) + FORGETTING)),
                            _options(tmp_path, tiny_model, [tiny_adapter]))
    without = run_suite(load_suite(make_suite(n=2, max_new_tokens=2)), _options(tmp_path, tiny_model, [tiny_adapter]))
    s = compare_runs(load_run(with_panels.run_dir), load_run(without.run_dir))
    assert s.forgetting is None
    assert "only run A has a forgetting section; forgetting is not compared" in s.extra["differences"]
