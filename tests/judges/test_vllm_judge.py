"""A real OpenAI-compatible server judging a small suite: ``vllm serve`` on 127.0.0.1, started from ``.venv-vllm``.

The server comes from the ``vllm_server`` fixture (the vLLM backend's tests own it). It is
expected to yield an object with ``url`` (the base URL, ending in ``/v1``) and ``base`` (the
served base model's name). Without ``.venv-vllm`` (or before that fixture exists) the test
skips; CI, which builds ``.venv-vllm``, runs it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from evalkit.models.fake import FakeBackend
from evalkit.runner import RunOptions, run_suite
from evalkit.suite import load_suite

REPO = Path(__file__).resolve().parents[2]

SUITE = """\
name: served-judge
data: {path: data.jsonl, id_field: id}
prompt: {user: "Report: {{ report }}"}
generation: {max_new_tokens: 40}
judge: {backend: openai, model: "%s", endpoint: "%s", max_new_tokens: 64, timeout: 300}
metrics:
  - {name: faithfulness, type: faithfulness, params: {source: report, field: summary}}
  - {name: preference, type: pairwise}
"""
ROWS = [
    {"id": "a", "report": "The primary database in eu-west-1 is down. Checkout fails for every customer."},
    {"id": "b", "report": "A typo in the login page footer. No customer impact."},
    {"id": "c", "report": "Search results load 40% slower for users in the EU since the 09:00 deploy."},
]


@pytest.fixture
def served(request):
    if not (REPO / ".venv-vllm" / "bin" / "python").exists():
        pytest.skip(".venv-vllm is absent: the real vllm serve judge runs where it is built (CI)")
    try:
        return request.getfixturevalue("vllm_server")
    except pytest.FixtureLookupError:
        pytest.skip("the vllm_server fixture is not available in this checkout")


def answers(request, arm: str) -> str:
    report = request.messages[-1]["content"].removeprefix("Report: ")
    summary = report.split(".")[0] + "." if arm == "base" else report.split(".")[0] + ". The CEO resigned over it."
    return json.dumps({"summary": summary})


@pytest.mark.slow
def test_vllm_serve_judges_a_small_suite_with_structured_output_and_a_cached_rerun(tmp_path, served):
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE % (served.base, served.url))
    options = RunOptions(runs_dir=tmp_path / "runs", cache_path=tmp_path / "cache.sqlite")
    first = run_suite(load_suite(path), options, backend=FakeBackend(answers, arms=["tuned"]))
    with (first.run_dir / "scores.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    judged = [r for r in rows if r["metric"] == "faithfulness"]
    assert len(judged) == 6
    # vLLM honours response_format's JSON Schema: every verdict validates, none is a parse failure
    assert all(r["value"] != "" and 0.0 <= float(r["value"]) <= 1.0 for r in judged), [r["error"] for r in judged]
    stats = first.manifest.extra["judge"]["stats"]
    assert stats["faithfulness"]["parse_failures"] == 0 and stats["faithfulness"]["calls"] > 0
    assert first.manifest.extra["judge"]["endpoint"] == served.url
    second = run_suite(load_suite(path), options, backend=FakeBackend(answers, arms=["tuned"]))
    assert all(s["calls"] == 0 for s in second.manifest.extra["judge"]["stats"].values()), "a re-run sends no judge request"
