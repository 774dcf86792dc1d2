"""The report's judged-metrics section: pairwise win rate with its CI, ties and order-inconsistent items, judge facts."""

from __future__ import annotations

import json

from evalkit.models.fake import FakeBackend
from evalkit.report import write_report
from evalkit.runner import RunOptions, run_suite
from evalkit.suite import load_suite

SUITE = """\
name: pref
data: {path: data.jsonl, id_field: id}
prompt: {user: "Report: {{ report }}"}
metrics:
  - {name: preferred, type: pairwise}
"""


def test_pairwise_section_gives_the_win_rate_ties_and_order_inconsistent_items(tmp_path, make_suite):
    rows = [{"id": f"r{i}", "report": f"case {i}"} for i in range(4)]
    path = make_suite(yaml_text=SUITE, rows=rows)
    # the adapter's answer wins twice in both orders, once the answers are identical, once the judge always says "A"
    answers = {"r0": ("short", "long good"), "r1": ("short", "long good"), "r2": ("same", "same"), "r3": ("x", "y")}
    run = FakeBackend(lambda r, arm: answers[f"r{r.messages[-1]['content'][-1]}"][arm != "base"], arms=["tuned"])

    def judge(request, arm):
        text = request.messages[-1]["content"]
        a = text.split("Answer A:", 1)[1].split("Answer B:", 1)[0]
        winner = "A" if "good" in a else "B" if "good" in text.split("Answer B:", 1)[1] else "A"
        return json.dumps({"reason": "r", "winner": winner})

    result = run_suite(load_suite(path), RunOptions(runs_dir=tmp_path / "runs", cache_path=tmp_path / "c.sqlite"),
                       backend=run, judge_backend=FakeBackend(judge, model="judge"))
    report = write_report(result.run_dir).read_text()
    delta = result.summary.delta("preferred", "tuned")
    assert delta.reference_mean == 0.5 and delta.delta == 0.75 - 0.5
    assert "win rate **0.750**" in report and "over 4 items" in report
    assert "2 won, 2 tied (1 identical answers, not judged), 0 lost; **1 order-inconsistent**" in report
    assert "| Judge prompts | preferred: pairwise `" in report
