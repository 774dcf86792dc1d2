"""End-to-end runs on the tiny model: run directory, cache, resume, batch invariance."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evalkit.models import HFBackend, LoadOptions, resolve_adapter
from evalkit.report import write_report
from evalkit.runner import RunOptions, run_suite
from evalkit.suite import load_suite
from tests.conftest import CountingBackend


def _options(tmp_path: Path, model, adapters=(), **kw) -> RunOptions:
    return RunOptions(base=str(model.path), adapters=tuple(str(a) for a in adapters), runs_dir=tmp_path / "runs",
                      cache_path=tmp_path / "cache.sqlite", **kw)


def _counting(model, adapters=()) -> CountingBackend:
    return CountingBackend(HFBackend(model, [resolve_adapter(str(a)) for a in adapters], LoadOptions(device="cpu")))


def test_run_writes_every_file_of_the_run_directory(tmp_path, make_suite, tiny_model, tiny_adapter):
    suite = load_suite(make_suite(n=6))
    result = run_suite(suite, _options(tmp_path, tiny_model, [tiny_adapter]))
    write_report(result.run_dir)
    files = {p.name for p in result.run_dir.iterdir()}
    assert {"manifest.json", "generations.jsonl", "scores.csv", "summary.json", "report.md", "forest.png"} <= files
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["version"] == 2
    assert manifest["base"]["fingerprint"] == tiny_model.fingerprint
    assert manifest["adapters"][0]["name"] == "tiny-lora" and len(manifest["adapters"][0]["fingerprint"]) == 64
    assert len(manifest["chat_template_sha256"]) == 64
    assert manifest["decoding"] == {"max_new_tokens": 6, "do_sample": False}
    assert {"torch", "transformers", "peft", "evalkit"} <= set(manifest["versions"])
    with (result.run_dir / "scores.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 * 2 * 2  # items × arms × metrics
    assert set(rows[0]) == {"item_id", "arm", "metric", "value", "error", "detail"}
    gens = [json.loads(line) for line in (result.run_dir / "generations.jsonl").read_text().splitlines()]
    assert {g["arm"] for g in gens} == {"base", "tiny-lora"}
    assert gens[0]["messages"][0] == {"role": "system", "content": "Answer with JSON."}


def test_adapter_arm_differs_from_base(tmp_path, make_suite, tiny_model, tiny_adapter):
    result = run_suite(load_suite(make_suite(n=6)), _options(tmp_path, tiny_model, [tiny_adapter]))
    gens = [json.loads(line) for line in (result.run_dir / "generations.jsonl").read_text().splitlines()]
    base = {g["item_id"]: g["text"] for g in gens if g["arm"] == "base"}
    adapted = {g["item_id"]: g["text"] for g in gens if g["arm"] == "tiny-lora"}
    assert base != adapted
    assert result.summary.identical_outputs["tiny-lora"] < 0.5


def test_repeated_run_generates_nothing(tmp_path, make_suite, tiny_model, tiny_adapter):
    suite = load_suite(make_suite(n=6))
    first = run_suite(suite, _options(tmp_path, tiny_model, [tiny_adapter]))
    assert first.generated == 12
    backend = _counting(tiny_model, [tiny_adapter])
    second = run_suite(suite, _options(tmp_path, tiny_model, [tiny_adapter]), backend=backend)
    assert backend.prompts == 0 and second.generated == 0 and second.cached == 12
    assert backend.inner._model is None, "a fully cached run must not even load the weights"
    assert (second.run_dir / "scores.csv").read_text() == (first.run_dir / "scores.csv").read_text()


def test_no_cache_generates_everything_again(tmp_path, make_suite, tiny_model):
    suite = load_suite(make_suite(n=4))
    run_suite(suite, _options(tmp_path, tiny_model))
    backend = _counting(tiny_model)
    result = run_suite(suite, _options(tmp_path, tiny_model, use_cache=False), backend=backend)
    assert backend.prompts == 4 and result.cached == 0


def test_outputs_identical_at_batch_size_1_and_default(tmp_path, make_suite, tiny_model, tiny_adapter):
    suite = load_suite(make_suite(n=12, max_new_tokens=10))
    default = run_suite(suite, _options(tmp_path / "a", tiny_model, [tiny_adapter]))
    one = run_suite(suite, _options(tmp_path / "b", tiny_model, [tiny_adapter], batch_size=1))
    assert default.manifest.batch_size == 32 and one.manifest.batch_size == 1
    assert (default.run_dir / "scores.csv").read_text() == (one.run_dir / "scores.csv").read_text()
    texts = lambda r: [(g["item_id"], g["arm"], g["text"]) for g in map(json.loads, (r.run_dir / "generations.jsonl").read_text().splitlines())]
    assert texts(default) == texts(one)


def test_changing_decoding_misses_the_cache(tmp_path, make_suite, tiny_model):
    run_suite(load_suite(make_suite(n=3, max_new_tokens=4)), _options(tmp_path, tiny_model))
    backend = _counting(tiny_model)
    run_suite(load_suite(make_suite(n=3, max_new_tokens=5)), _options(tmp_path, tiny_model), backend=backend)
    assert backend.prompts == 3


@pytest.mark.slow
def test_run_killed_mid_generation_resumes_to_identical_results(tmp_path, make_suite, embedded):
    """kill -9 during generation: the restart recomputes only unfinished batches and ends where an uninterrupted run does.

    Uses the real model at batch size 1 (about a second per item) so the kill lands mid-run.
    """
    n = 10
    suite_path = make_suite(n=n, max_new_tokens=12)
    cache = tmp_path / "cache.sqlite"
    cmd = [sys.executable, "-m", "evalkit.cli", "run", str(suite_path), "--base", str(embedded.path), "--batch-size", "1",
           "--cache", str(cache), "--runs-dir", str(tmp_path / "runs"), "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
        if cache.exists():
            try:
                with sqlite3.connect(cache) as db:
                    if db.execute("SELECT COUNT(*) FROM generations").fetchone()[0] >= 3:
                        break
            except sqlite3.OperationalError:
                continue
    assert proc.poll() is None, "the run finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(cache) as db:
        finished = db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    assert 3 <= finished < n

    suite = load_suite(suite_path)
    backend = _counting(embedded)
    resumed = run_suite(suite, _options(tmp_path, embedded, batch_size=1), backend=backend)
    assert backend.prompts == n - finished and resumed.cached == finished
    fresh = run_suite(suite, _options(tmp_path / "fresh", embedded, batch_size=1, use_cache=False))
    assert (resumed.run_dir / "scores.csv").read_text() == (fresh.run_dir / "scores.csv").read_text()
    texts = lambda r: [g["text"] for g in map(json.loads, (r.run_dir / "generations.jsonl").read_text().splitlines())]
    assert texts(resumed) == texts(fresh)


def test_two_adapters_share_one_base_load(tmp_path, make_suite, tiny_model_dir, tiny_model, tiny_adapter):
    from tests.conftest import make_adapter

    second = make_adapter(tiny_model_dir, tmp_path / "second", seed=7)
    result = run_suite(load_suite(make_suite(n=4)), _options(tmp_path, tiny_model, [f"v1={tiny_adapter}", f"v2={second}"]))
    assert result.summary.arms == ["base", "v1", "v2"]
    assert {d.arm for d in result.summary.deltas} == {"v1", "v2"}


def test_duplicate_arm_names_are_refused(tmp_path, make_suite, tiny_model, tiny_adapter):
    from evalkit.errors import AdapterError

    with pytest.raises(AdapterError, match="used twice"):
        run_suite(load_suite(make_suite(n=2)), _options(tmp_path, tiny_model, [f"x={tiny_adapter}", f"x={tiny_adapter}"]))
