"""A representative slice of the corpus through the real process: ``python -m evalkit.cli ...``.

In-process tests call ``main()``; this checks what CI sees: the exit status of the
process and everything it wrote to stdout and stderr, with ``Traceback`` counted over
all of it (it must be 0). Set ``EVALKIT_CORPUS_LOG`` to keep the combined output for a
``grep -c Traceback`` in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.bad_inputs.conftest import ROWS, SUITE
from tests.conftest import REPO
from tests.rundirs import make_run


def _suite(folder: Path, yaml_text: str | bytes, data: str | None = None, data_name: str = "data.jsonl") -> Path:
    folder.mkdir(parents=True)
    (folder / data_name).write_text(data if data is not None else "".join(json.dumps(r) + "\n" for r in ROWS))
    path = folder / "suite.yaml"
    path.write_bytes(yaml_text) if isinstance(yaml_text, bytes) else path.write_text(yaml_text)
    return path


@pytest.fixture(scope="module")
def cases(tmp_path_factory, tiny_adapter, tiny_model) -> list[tuple[str, list[str], int]]:
    """(id, argv, expected exit status)."""
    tmp = tmp_path_factory.mktemp("real-process")
    good = make_run(tmp / "runs" / "good", {"base": {"format": [0.0, 1.0, 0.0, 1.0]}, "lora": {"format": [1.0, 1.0, 1.0, 1.0]}})
    unscored = make_run(tmp / "runs" / "unscored", {"base": {"format": [0.0, 1.0], "sev": [None, None]},
                                                     "lora": {"format": [1.0, 1.0], "sev": [None, None]}})
    damaged = tmp / "runs" / "damaged"
    shutil.copytree(good, damaged)
    (damaged / "scores.csv").write_text("item_id,arm,metric,value,error,detail\ni000,base,format,pass,,\n")
    no_manifest = tmp / "runs" / "no-manifest"
    shutil.copytree(good, no_manifest)
    (no_manifest / "manifest.json").unlink()
    rank = tmp / "rank-mismatch"
    shutil.copytree(tiny_adapter, rank)
    cfg = json.loads((rank / "adapter_config.json").read_text())
    (rank / "adapter_config.json").write_text(json.dumps({**cfg, "r": 8}))
    policy = tmp / "policy.yaml"
    policy.write_text("rules:\n  - {metric: sev, min_delta: -1}\n")
    bad_policy = tmp / "bad-policy.yaml"
    bad_policy.write_text("rules:\n  - {metric: format, min_delta: '0.1'}\n")
    csv_suite = SUITE.replace("path: data.jsonl", "path: data.csv")
    return [
        ("validate-template-divides-by-zero", ["validate", str(_suite(tmp / "s1", SUITE.replace("{{ report }}", "{{ 1/0 }}")))], 2),
        ("validate-suite-not-utf8", ["validate", str(_suite(tmp / "s2", b"name: triage\ndescription: caf\xe9\n"))], 2),
        ("validate-line-not-an-object", ["validate", str(_suite(tmp / "s3", SUITE, data="[1, 2]\n"))], 2),
        ("validate-csv-short-row", ["validate", str(_suite(tmp / "s4", csv_suite, data="id,report\nr0\n", data_name="data.csv"))], 2),
        ("validate-must-match-quoted", ["validate", str(_suite(tmp / "s5", SUITE.replace(
            "type: field_match\n    params: {field: severity}", 'type: regex\n    params: {pattern: down, must_match: "false"}')))], 2),
        ("run-runs-dir-is-a-file", ["run", str(tmp / "s1" / "suite.yaml"), "--base", str(tiny_model.path), "--runs-dir", str(policy)], 2),
        ("report-damaged-scores", ["report", str(damaged)], 2),
        ("gate-missing-manifest", ["gate", str(no_manifest), "--policy", str(policy)], 2),
        ("gate-bad-policy", ["gate", str(good), "--policy", str(bad_policy)], 2),
        ("gate-rule-on-unscored-metric", ["gate", str(unscored), "--policy", str(policy)], 1),
        ("compare-damaged-run", ["compare", str(good), str(damaged)], 2),
        ("adapter-inspect-rank-mismatch", ["adapter", "inspect", str(rank)], 2),
        ("adapter-merge-tolerance-nan", ["adapter", "merge", str(tiny_adapter), "--out", str(tmp / "m"), "--tolerance", "nan"], 2),
        ("adapter-inspect-max-lora-rank-negative", ["adapter", "inspect", str(tiny_adapter), "--max-lora-rank", "-1"], 2),
    ]


@pytest.fixture(scope="module")
def results(cases) -> dict[str, tuple[int, str]]:
    """Each case run as its own process (two at a time), with stdout and stderr together."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}

    def one(case: tuple[str, list[str], int]) -> tuple[str, tuple[int, str]]:
        proc = subprocess.run([sys.executable, "-m", "evalkit.cli", *case[1]], capture_output=True, text=True, env=env, timeout=300)
        return case[0], (proc.returncode, proc.stdout + proc.stderr)

    with ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(pool.map(one, cases))
    log = os.environ.get("EVALKIT_CORPUS_LOG")
    if log:
        Path(log).write_text("".join(f"$ evalkit {' '.join(argv)}\n{done[cid][1]}\n" for cid, argv, _ in cases))
    return done


def test_no_traceback_in_any_output(results):
    combined = "".join(output for _, output in results.values())
    assert combined.count("Traceback") == 0, combined


def test_exit_statuses_are_the_documented_ones(cases, results):
    wrong = {cid: (results[cid][0], want) for cid, _, want in cases if results[cid][0] != want}
    assert not wrong, {cid: results[cid][1] for cid in wrong}


def test_each_refusal_is_one_error_line(cases, results):
    for cid, _, want in cases:
        if want != 2:
            continue
        lines = [line for line in results[cid][1].splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), (cid, lines)
