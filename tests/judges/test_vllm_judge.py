"""A real OpenAI-compatible server judging a small suite: ``vllm serve`` on 127.0.0.1, started from ``.venv-vllm``.

The server is the session's ``vllm_server`` (tests/vllm_server.py), shared with the vLLM
backend's tests. Without ``.venv-vllm`` the test skips locally and fails under CI.
"""

from __future__ import annotations

import csv
import json
import pytest

from evalkit.models.fake import FakeBackend
from evalkit.runner import RunOptions, run_suite
from evalkit.suite import load_suite
from tests.vllm_server import smollm2_lora, vllm_py, vllm_server  # noqa: F401

pytestmark = pytest.mark.vllm

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


def answers(request, arm: str) -> str:
    report = request.messages[-1]["content"].removeprefix("Report: ")
    summary = report.split(".")[0] + "." if arm == "base" else report.split(".")[0] + ". The CEO resigned over it."
    return json.dumps({"summary": summary})


def test_vllm_serve_judges_a_small_suite_with_structured_output_and_a_cached_rerun(tmp_path, vllm_server):
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE % (vllm_server.base_name, vllm_server.base_url))
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
    assert first.manifest.extra["judge"]["endpoint"] == vllm_server.base_url
    second = run_suite(load_suite(path), options, backend=FakeBackend(answers, arms=["tuned"]))
    assert all(s["calls"] == 0 for s in second.manifest.extra["judge"]["stats"].values()), "a re-run sends no judge request"
