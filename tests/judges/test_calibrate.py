"""`evalkit judge calibrate`: the suite's judge against human labels, through the real CLI and a scripted server."""

from __future__ import annotations

import json

import pytest

from evalkit.cli import main
from tests.scripted_server import Received, Reply, ScriptedServer, chat_reply

ROWS = [{"id": f"r{i}", "report": f"Incident {i}: the database is down."} for i in range(4)]
SUITE = """\
name: calib
data: {path: data.jsonl, id_field: id}
prompt: {user: "Report: {{ report }}"}
judge: {backend: openai, model: judge-7b, endpoint: "%s", max_retries: 0, timeout: 5}
metrics:
  - {name: faithfulness, type: faithfulness, params: {source: report, field: summary}}
  - {name: quality, type: judge, params: {rubric: "Is the summary complete?", scale: [1, 3]}}
  - {name: preference, type: pairwise}
"""


def judge_reply(request: Received) -> Reply:
    user = request.body["messages"][-1]["content"]
    if "Claim:" in user:
        return Reply(200, chat_reply(json.dumps({"supported": "moon" not in user.split("Claim:")[1], "reason": "r"})))
    score = 3 if "database is down" in user.split("Answer to grade:")[1] else 1
    return Reply(200, chat_reply(json.dumps({"reason": "r", "score": score})))


@pytest.fixture
def suite(tmp_path):
    with ScriptedServer(judge_reply, models=["judge-7b"]) as server:
        (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
        path = tmp_path / "calib.yaml"
        path.write_text(SUITE % server.url)
        yield path, server


def summary(text: str) -> str:
    return json.dumps({"summary": text})


def labels_file(tmp_path, rows: list[dict]) -> str:
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_calibrate_reports_accuracy_kappa_and_the_confusion_table(tmp_path, suite, capsys):
    path, server = suite
    labels = labels_file(tmp_path, [
        {"item_id": "r0", "metric": "faithfulness", "label": 1, "output": summary("The database is down.")},
        {"item_id": "r1", "metric": "faithfulness", "label": 0, "output": summary("The moon fell on the database.")},
        {"item_id": "r2", "metric": "faithfulness", "label": 1, "output": summary("The moon is fine.")},  # the judge disagrees
        {"item_id": "r3", "metric": "faithfulness", "label": 0, "output": summary("The moon again.")},
        {"item_id": "r0", "metric": "quality", "label": 3, "output": "the database is down"},
        {"item_id": "r1", "metric": "quality", "label": 2, "output": "something else"},
    ])
    assert main(["judge", "calibrate", str(path), "--labels", labels, "--cache", str(tmp_path / "c.sqlite")]) == 0
    out = capsys.readouterr().out
    assert "| faithfulness | 4 | 0.75 | 0.50 | 0 | 0 |" in out  # κ = (0.75 - 0.5) / (1 - 0.5)
    assert "| quality | 2 | 0.50 |" in out and "(quadratic-weighted)" in out
    assert "| human \\ judge | fail | pass |" in out and "| pass | 1 | 1 |" in out
    calls = len(server.posts())
    assert main(["judge", "calibrate", str(path), "--labels", labels, "--cache", str(tmp_path / "c.sqlite")]) == 0
    assert len(server.posts()) == calls, "verdicts are cached like a run's"


def test_calibrate_takes_the_answers_from_a_run(tmp_path, suite, capsys):
    path, _ = suite
    labels = labels_file(tmp_path, [{"item_id": "r0", "metric": "faithfulness", "label": 1}])
    assert main(["judge", "calibrate", str(path), "--labels", labels, "--no-cache"]) == 2
    assert "pass --run RUN_DIR or add an output column" in " ".join(capsys.readouterr().err.split())


def test_pairwise_labels_are_refused_with_what_can_be_calibrated(tmp_path, suite, capsys):
    path, server = suite
    labels = labels_file(tmp_path, [{"item_id": "r0", "metric": "preference", "label": 1, "output": "x"}])
    assert main(["judge", "calibrate", str(path), "--labels", labels, "--no-cache"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "metric 'preference' (pairwise)" in err and "calibrate pass/fail metrics, faithfulness or a judge rubric" in err
    assert not server.posts()


def test_a_label_off_the_scale_is_refused_before_any_judge_call(tmp_path, suite, capsys):
    path, server = suite
    labels = labels_file(tmp_path, [{"item_id": "r0", "metric": "quality", "label": 5, "output": "x"}])
    assert main(["judge", "calibrate", str(path), "--labels", labels, "--no-cache"]) == 2
    assert "label 5 is not a whole number from 1 to 3" in capsys.readouterr().err
    assert not server.posts()
