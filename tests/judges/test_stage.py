"""Judged runs end to end: the local HF judge on the tiny model, one base load, zero calls on a re-run, resume, samples, report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from evalkit.judges import PARSE_FAILURE
from evalkit.models import HFBackend, LoadOptions
from evalkit.models.fake import FakeBackend
from evalkit.report import write_report
from evalkit.runner import RunOptions, run_suite
from evalkit.suite import load_suite
from tests.conftest import CountingBackend

SUITE = """\
name: judged
data: {path: data.jsonl, id_field: id}
prompt: {user: "Report: {{ report }}"}
generation: {max_new_tokens: 6}
judge: {backend: hf, model: "%s", max_new_tokens: 8, batch_size: %d}
metrics:
  - {name: format, type: json_valid}
  - {name: faithfulness, type: faithfulness, params: {source: report%s}}
"""


def judged_suite(make_suite, model: str, n: int = 4, batch_size: int = 32, extra: str = "") -> Path:
    return make_suite(n=n, yaml_text=SUITE % (model, batch_size, extra))


def options(tmp_path: Path, base: str, **kw) -> RunOptions:
    return RunOptions(base=base, runs_dir=tmp_path / "runs", cache_path=tmp_path / "cache.sqlite", **kw)


def rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "scores.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_the_tiny_model_judges_its_own_run_with_one_base_load_and_a_rerun_makes_zero_judge_calls(tmp_path, make_suite, tiny_model):
    suite = load_suite(judged_suite(make_suite, str(tiny_model.path)))
    first_backend = CountingBackend(HFBackend(tiny_model, (), LoadOptions(device="cpu")))
    first = run_suite(suite, options(tmp_path, str(tiny_model.path)), backend=first_backend)
    judge = first.manifest.extra["judge"]
    assert judge["reused_run_base"] is True, "the judge is the run's base: it must not be loaded a second time"
    stats = judge["stats"]["faithfulness"]
    assert stats["calls"] > 0 and first_backend.prompts == 4 + stats["calls"]
    faith = [r for r in rows(first.run_dir) if r["metric"] == "faithfulness"]
    assert len(faith) == 4 and all(r["value"] or r["error"] for r in faith)
    # a random 2-layer model cannot write the verdict JSON: every verdict is a counted parse failure, never a score
    assert all(r["error"].startswith(PARSE_FAILURE) for r in faith if not r["value"])

    second_backend = CountingBackend(HFBackend(tiny_model, (), LoadOptions(device="cpu")))
    second = run_suite(suite, options(tmp_path, str(tiny_model.path)), backend=second_backend)
    assert second_backend.prompts == 0, "a re-run of a judged suite must make zero judge calls"
    assert second_backend.inner._model is None, "nor load any weights"
    assert second.manifest.extra["judge"]["stats"]["faithfulness"]["calls"] == 0
    assert (second.run_dir / "scores.csv").read_text() == (first.run_dir / "scores.csv").read_text()


def test_a_judge_of_another_model_is_its_own_backend(tmp_path, make_suite, tiny_model, tiny_model_dir, embedded):
    suite = load_suite(judged_suite(make_suite, str(tiny_model.path), n=2))
    run = FakeBackend(lambda r, arm: '{"summary": "x"}')
    result = run_suite(suite, options(tmp_path, "fake"), backend=run)
    assert result.manifest.extra["judge"]["reused_run_base"] is False
    assert result.manifest.extra["judge"]["fingerprint"] == tiny_model.fingerprint


class Interrupting(FakeBackend):
    """A judge that is interrupted (Ctrl-C) after ``after`` generate calls."""

    def __init__(self, respond, after: int) -> None:
        super().__init__(respond, model="judge")
        self.after = after

    def generate(self, requests, arm, decoding):
        if len(self.generate_calls) >= self.after:
            raise KeyboardInterrupt
        return super().generate(requests, arm, decoding)


VERDICT = '{"supported": true, "reason": "r"}'


def test_an_interrupted_judging_phase_resumes_from_the_finished_batches(tmp_path, make_suite):
    suite = load_suite(judged_suite(make_suite, "unused", n=8, batch_size=2))
    run = FakeBackend(lambda r, arm: "The service is down.")  # one claim per answer: 8 verdicts, 4 batches
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, options(tmp_path, "fake"), backend=run, judge_backend=Interrupting(lambda r, a: VERDICT, after=3))
    resumed = FakeBackend(lambda r, a: VERDICT, model="judge")
    result = run_suite(suite, options(tmp_path, "fake"), backend=run, judge_backend=resumed)
    assert resumed.generated == 2, "the three finished batches (6 verdicts) come from the cache"
    assert result.summary.means["base"]["faithfulness"] == 1.0


def test_a_judged_sample_is_the_same_items_in_every_arm_and_the_report_says_so(tmp_path, make_suite):
    suite = load_suite(judged_suite(make_suite, "unused", n=10, extra=", sample: 4, sample_seed: 1"))
    run = FakeBackend(lambda r, arm: "The service is down.", arms=["tuned"])
    judge = FakeBackend(lambda r, a: VERDICT, model="judge")
    result = run_suite(suite, options(tmp_path, "fake"), backend=run, judge_backend=judge)
    faith = [r for r in rows(result.run_dir) if r["metric"] == "faithfulness"]
    by_arm = {arm: {r["item_id"] for r in faith if r["arm"] == arm} for arm in ("base", "tuned")}
    assert len(by_arm["base"]) == 4 and by_arm["base"] == by_arm["tuned"]
    assert judge.generated == 8
    delta = result.summary.delta("faithfulness", "tuned")
    assert delta.n == 4 and delta.reference_errors == 0, "items outside the sample are not errors"
    report = write_report(result.run_dir).read_text()
    assert "judged a seeded sample of 4 of 10 items (seed 1)" in report


def test_the_report_counts_parse_failures_per_metric_and_arm_and_shows_label_agreement(tmp_path, make_suite):
    path = judged_suite(make_suite, "unused", n=4)
    (path.parent / "labels.csv").write_text("item_id,metric,label,arm\nr00,faithfulness,1,tuned\nr01,faithfulness,0,tuned\n")
    path.write_text(path.read_text().replace("batch_size: 32}", "batch_size: 32, labels: labels.csv}"))
    run = FakeBackend(lambda r, arm: "The service is down.", arms=["tuned"])
    judge = FakeBackend(lambda r, a: "no" if "#2" in json.dumps(r.messages) else VERDICT, model="judge")
    result = run_suite(load_suite(path), options(tmp_path, "fake"), backend=run, judge_backend=judge)
    assert result.summary.errors["tuned"]["faithfulness"] == 1
    report = write_report(result.run_dir).read_text()
    assert "| faithfulness | tuned | 3 | 1.000 | 1 | 0 | 0 | – |" in report
    assert "Agreement with human labels" in report and "| faithfulness | 2 | 0.50 |" in report
    assert "| Judge | fake `judge`" in report and "claim_verdict `" in report
