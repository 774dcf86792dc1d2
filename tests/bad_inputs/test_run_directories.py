"""Damaged run directories given to ``gate``, ``report`` and ``compare``: one line naming the file, exit 2.

A run directory is four data files; each can be missing, truncated, not UTF-8, not JSON,
or well-formed but wrong inside. Every damage is tried with every command that reads a
run, because a command that skips a file must not pass a gate on a run it cannot trace.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.bad_inputs.conftest import assert_one_error, cli
from tests.rundirs import make_run

MANIFEST, SUMMARY, SCORES, GENERATIONS = "manifest.json", "summary.json", "scores.csv", "generations.jsonl"
HEADER = "item_id,arm,metric,value,error,detail\n"


def _edit(name: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    def mutate(run: Path) -> None:
        doc = json.loads((run / name).read_text())
        change(doc)
        (run / name).write_text(json.dumps(doc))

    return mutate


def _write(name: str, content: str | bytes) -> Callable[[Path], None]:
    def mutate(run: Path) -> None:
        (run / name).write_bytes(content) if isinstance(content, bytes) else (run / name).write_text(content)

    return mutate


def _cut(name: str, keep: int) -> Callable[[Path], None]:
    return lambda run: (run / name).write_text((run / name).read_text()[:keep])


def _lines(change: Callable[[dict], object]) -> Callable[[Path], None]:
    def mutate(run: Path) -> None:
        docs = [json.loads(line) for line in (run / GENERATIONS).read_text().splitlines()]
        for d in docs:
            change(d)
        (run / GENERATIONS).write_text("".join(json.dumps(d) + "\n" for d in docs))

    return mutate


def _folder(name: str) -> Callable[[Path], None]:
    def mutate(run: Path) -> None:
        (run / name).unlink()
        (run / name).mkdir()

    return mutate


DAMAGE = [
    ("manifest-missing", lambda r: (r / MANIFEST).unlink(), (MANIFEST, "missing")),
    ("manifest-empty", _write(MANIFEST, ""), (MANIFEST, "not valid JSON")),
    ("manifest-truncated", _cut(MANIFEST, 120), (MANIFEST, "not valid JSON")),
    ("manifest-a-list", _write(MANIFEST, "[]"), (MANIFEST, "JSON object")),
    ("manifest-not-utf8", _write(MANIFEST, b'{"version": 2, "x": "\xff"}'), (MANIFEST, "UTF-8")),
    ("manifest-old-version", _edit(MANIFEST, lambda m: m.update(version=1)), (MANIFEST, "format version 1")),
    ("manifest-version-string", _edit(MANIFEST, lambda m: m.update(version="2")), (MANIFEST, "format version '2'")),
    ("manifest-without-suite", _edit(MANIFEST, lambda m: m.pop("suite")), (MANIFEST, "suite")),
    ("manifest-metrics-string", _edit(MANIFEST, lambda m: m.update(metrics="format")), (MANIFEST, "metrics")),
    ("manifest-adapter-name-number", _edit(MANIFEST, lambda m: m.update(adapters=[{"name": 1, "path": None, "fingerprint": "x"}])), (MANIFEST, "adapters.0.name")),
    ("manifest-is-a-folder", _folder(MANIFEST), (MANIFEST, "cannot read")),
    ("summary-missing", lambda r: (r / SUMMARY).unlink(), (SUMMARY, "missing")),
    ("summary-garbage", _write(SUMMARY, "garbage"), (SUMMARY, "not valid JSON")),
    ("summary-truncated", _cut(SUMMARY, 200), (SUMMARY, "not valid JSON")),
    ("summary-a-list", _write(SUMMARY, "[1]"), (SUMMARY, "JSON object")),
    ("summary-old-version", _edit(SUMMARY, lambda s: s.update(version=1)), (SUMMARY, "format version 1")),
    ("summary-deltas-string", _edit(SUMMARY, lambda s: s.update(deltas="x")), (SUMMARY, "deltas")),
    ("summary-delta-a-string", _edit(SUMMARY, lambda s: s.update(deltas=["x"])), (SUMMARY, "deltas.0")),
    ("summary-delta-without-n", _edit(SUMMARY, lambda s: s["deltas"][0].pop("n")), (SUMMARY, "deltas.0.n")),
    ("summary-means-string", _edit(SUMMARY, lambda s: s.update(means="x")), (SUMMARY, "means")),
    ("summary-mean-a-word", _edit(SUMMARY, lambda s: s["means"]["base"].update(format="high")), (SUMMARY, "means.base.format")),
    ("summary-p-value-quoted", _edit(SUMMARY, lambda s: s["deltas"][0].update(p_value="0.5")), (SUMMARY, "deltas.0.p_value")),
    ("summary-no-arms", _edit(SUMMARY, lambda s: s.update(arms=[])), (SUMMARY, "arms")),
    ("summary-reference-not-an-arm", _edit(SUMMARY, lambda s: s.update(reference="v0")), (SUMMARY, "'v0'")),
    ("summary-metric-without-delta", _edit(SUMMARY, lambda s: s.update(metrics=[*s["metrics"], "faith"])), (SUMMARY, "faith")),
    ("summary-arm-without-means", _edit(SUMMARY, lambda s: s["means"].pop("lora")), (SUMMARY, "means.lora")),
    ("summary-arm-without-errors", _edit(SUMMARY, lambda s: s.update(errors={})), (SUMMARY, "errors.base")),
    ("summary-negative-n", _edit(SUMMARY, lambda s: s["deltas"][0].update(n=-3)), (SUMMARY, "deltas.0", "negative")),
    ("summary-identical-string", _edit(SUMMARY, lambda s: s.update(identical_outputs="x")), (SUMMARY, "identical_outputs")),
    ("summary-flip-without-arm", _edit(SUMMARY, lambda s: s.update(flips=[{"metric": "format"}])), (SUMMARY, "flips.0")),
    ("summary-nan-literal", lambda r: (r / SUMMARY).write_text((r / SUMMARY).read_text().replace('"seed": 0', '"seed": NaN')), (SUMMARY, "seed")),
    ("scores-missing", lambda r: (r / SCORES).unlink(), (SCORES, "missing")),
    ("scores-empty", _write(SCORES, ""), (SCORES, "header")),
    ("scores-wrong-header", _write(SCORES, "id,score\nx,1\n"), (SCORES, "header")),
    ("scores-value-a-word", _write(SCORES, HEADER + "i000,base,format,pass,,\n"), (SCORES + ":2", "'pass'")),
    ("scores-value-nan", _write(SCORES, HEADER + "i000,base,format,nan,,\n"), (SCORES + ":2", "'nan'")),
    ("scores-value-inf", _write(SCORES, HEADER + "i000,base,format,inf,,\n"), (SCORES + ":2", "'inf'")),
    ("scores-row-too-short", _write(SCORES, HEADER + "i000,base\n"), (SCORES + ":2", "too few")),
    ("scores-row-too-long", _write(SCORES, HEADER + "i000,base,format,1,,,extra\n"), (SCORES + ":2", "too many")),
    ("scores-truncated", _cut(SCORES, 70), (SCORES, "too few")),
    ("scores-not-utf8", _write(SCORES, HEADER.encode() + b"i000,base,format,1,,caf\xe9\n"), (SCORES, "UTF-8")),
    ("scores-unbalanced-quote", _write(SCORES, HEADER + 'i000,base,format,1,,"detail\n'), (SCORES, "not valid CSV")),
    ("scores-is-a-folder", _folder(SCORES), (SCORES, "cannot read")),
    ("generations-missing", lambda r: (r / GENERATIONS).unlink(), (GENERATIONS, "missing")),
    ("generations-garbage", _write(GENERATIONS, "garbage\n"), (GENERATIONS + ":1", "not valid JSON")),
    ("generations-line-a-list", _write(GENERATIONS, "[1, 2]\n"), (GENERATIONS + ":1", "item_id, arm and text")),
    ("generations-not-utf8", _write(GENERATIONS, b'{"text": "\xff"}\n'), (GENERATIONS, "UTF-8")),
    ("generations-truncated", _cut(GENERATIONS, 150), (GENERATIONS + ":1", "not valid JSON")),
    ("generations-text-null", _lines(lambda g: g.update(text=None)), (GENERATIONS + ":1", "item_id, arm and text")),
    ("generations-messages-string", _lines(lambda g: g.update(messages="Report: db down")), (GENERATIONS + ":1", "messages")),
    ("generations-message-without-content", _lines(lambda g: g.update(messages=[{"role": "user"}])), (GENERATIONS + ":1", "messages")),
    ("generations-cluster-object", _lines(lambda g: g.update(cluster={"team": "db"})), (GENERATIONS + ":1", "cluster")),
    ("generations-is-a-folder", _folder(GENERATIONS), (GENERATIONS, "cannot read")),
]

COMMANDS = {
    "report": lambda good, bad, tmp: ("report", bad),
    "report-json": lambda good, bad, tmp: ("report", bad, "--format", "json", "--stdout"),
    "gate": lambda good, bad, tmp: ("gate", bad, "--policy", tmp / "policy.yaml"),
    "compare": lambda good, bad, tmp: ("compare", good, bad),
}


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    values = {"base": {"format": [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]}, "lora": {"format": [1.0, 1.0, 1.0, 1.0, 0.0, 1.0]}}
    return make_run(tmp_path_factory.mktemp("runs") / "good", values)


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize(("damage", "needles"), [d[1:] for d in DAMAGE], ids=[d[0] for d in DAMAGE])
def test_damaged_run_directory(command, damage, needles, good_run, tmp_path, capsys):
    bad = tmp_path / "run"
    shutil.copytree(good_run, bad)
    damage(bad)
    (tmp_path / "policy.yaml").write_text("rules:\n  - {metric: format, min_delta: 0}\n")
    before = {p.name: p.read_bytes() for p in bad.iterdir() if p.is_file()}
    assert_one_error(cli(capsys, *COMMANDS[command](good_run, bad, tmp_path)), *needles)
    after = {p.name: p.read_bytes() for p in bad.iterdir() if p.is_file()}
    assert after == before, "a command refusing a damaged run must not write into it"


def test_the_undamaged_run_passes_every_command(good_run, tmp_path, capsys):
    (tmp_path / "policy.yaml").write_text("rules:\n  - {metric: format, min_delta: 0}\n")
    for command, argv in COMMANDS.items():
        code, _, err = cli(capsys, *argv(good_run, good_run, tmp_path))
        assert code == 0, f"{command}: {err}"


@pytest.mark.parametrize("command", ["report", "gate", "compare-a", "compare-b"])
@pytest.mark.parametrize(
    ("where", "needles"),
    [
        pytest.param("{tmp}/runs/20260101-000000-demo", ("20260101-000000-demo", "no such run directory"), id="missing"),
        pytest.param("{good}/summary.json", ("summary.json", "is a file"), id="a-file"),
        pytest.param("{tmp}/empty", ("manifest.json", "missing"), id="empty-folder"),
        pytest.param("{parent}", ("holds run directories", "good"), id="the-runs-folder"),
    ],
)
def test_wrong_run_directory(command, where, needles, good_run, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    path = where.format(tmp=tmp_path, good=good_run, parent=good_run.parent)
    argv = {"report": ("report", path), "gate": ("gate", path), "compare-a": ("compare", path, good_run),
            "compare-b": ("compare", good_run, path)}[command]
    assert_one_error(cli(capsys, *argv), *needles)
