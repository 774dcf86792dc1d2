"""Sharded runs: --shard I/N partial runs joined by `evalkit merge` give the unsharded statistics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.cli import main
from evalkit.errors import RunDirError
from evalkit.models.fake import FakeBackend
from evalkit.runner import RunOptions, run_suite, select_shard
from evalkit.shards import merge_shards
from evalkit.suite import load_suite
from tests.conftest import REPORTS


def _answer(request, arm: str) -> str:
    """Deterministic per item and arm: the adapter answers in JSON more often than base."""
    text = request.messages[-1]["content"]
    n = sum(map(ord, text))
    return '{"a": 1}' if (arm == "tuned" and n % 3) or n % 5 == 0 else f"{arm} says no ({n % 7})"


def _suite(make_suite, n: int = 23):
    rows = [{"id": f"r{i:02d}", "report": REPORTS[i % len(REPORTS)] + f" #{i}", "src": f"s{i % 4}"} for i in range(n)]
    path = make_suite(rows=rows)
    path.write_text(path.read_text().replace("  id_field: id\n", "  id_field: id\n  cluster_field: src\n"))
    return load_suite(path)


def _run(suite, tmp_path: Path, shard=None) -> Path:
    options = RunOptions(runs_dir=tmp_path / "runs", cache_path=tmp_path / "cache.sqlite", shard=shard)
    return run_suite(suite, options, backend=FakeBackend(_answer, arms=["tuned"])).run_dir


def test_shards_are_disjoint_balanced_and_cover_every_item():
    items = list(range(10))
    shards = [select_shard(items, i, 3) for i in range(3)]
    assert sorted(x for s in shards for x in s) == items
    assert [len(s) for s in shards] == [4, 3, 3]


def test_three_shards_merged_give_the_unsharded_summary(tmp_path, make_suite):
    suite = _suite(make_suite)
    whole = _run(suite, tmp_path)
    parts = [_run(suite, tmp_path, (i, 3)) for i in range(3)]
    merged = merge_shards(parts, tmp_path / "merged")
    assert (merged / "summary.json").read_text() == (whole / "summary.json").read_text()
    assert (merged / "scores.csv").read_text().count("\n") == (whole / "scores.csv").read_text().count("\n")
    manifest = json.loads((merged / "manifest.json").read_text())
    assert manifest["shard"] is None and manifest["extra"]["merged_shards"] == 3 and manifest["n_items"] == 23


def test_merge_through_the_cli_with_the_real_tiny_model(tmp_path, make_suite, tiny_model, tiny_adapter, capsys):
    suite = make_suite(n=7)
    common = ["--base", str(tiny_model.path), "--adapter", f"lora={tiny_adapter}", "--cache", str(tmp_path / "c.sqlite")]
    assert main(["run", str(suite), *common, "--runs-dir", str(tmp_path / "whole")]) == 0
    for i in range(3):
        assert main(["run", str(suite), *common, "--runs-dir", str(tmp_path / "parts"), "--shard", f"{i}/3"]) == 0
    parts = sorted(str(p) for p in (tmp_path / "parts").iterdir())
    assert main(["merge", *parts, "--runs-dir", str(tmp_path / "merged")]) == 0
    (whole,), (merged,) = (tmp_path / "whole").iterdir(), (tmp_path / "merged").iterdir()
    assert (merged / "summary.json").read_text() == (whole / "summary.json").read_text()
    assert "merged from 3 shards" in (merged / "report.md").read_text()


def test_a_missing_shard_is_named(tmp_path, make_suite):
    suite = _suite(make_suite)
    parts = [_run(suite, tmp_path, (i, 3)) for i in (0, 2)]
    with pytest.raises(RunDirError, match=r"shard 1/3 missing"):
        merge_shards(parts, tmp_path / "merged")


def test_a_shard_given_twice_is_refused(tmp_path, make_suite):
    suite = _suite(make_suite)
    a = _run(suite, tmp_path, (0, 2))
    b = _run(suite, tmp_path, (0, 2))
    with pytest.raises(RunDirError, match=r"both shard 0/2"):
        merge_shards([a, b, _run(suite, tmp_path, (1, 2))], tmp_path / "merged")


def test_shards_of_different_suites_are_refused(tmp_path, make_suite):
    suite = _suite(make_suite)
    a = _run(suite, tmp_path, (0, 2))
    suite.path.write_text(suite.path.read_text().replace("max_new_tokens: 6", "max_new_tokens: 7"))
    b = _run(load_suite(suite.path), tmp_path, (1, 2))
    with pytest.raises(RunDirError, match=r"its (suite file|decoding) differs"):
        merge_shards([a, b], tmp_path / "merged")


def test_an_unsharded_run_is_not_a_shard(tmp_path, make_suite):
    suite = _suite(make_suite)
    with pytest.raises(RunDirError, match=r"not a shard"):
        merge_shards([_run(suite, tmp_path), _run(suite, tmp_path, (0, 2))], tmp_path / "merged")


def test_forgetting_runs_in_shard_zero_only_and_is_carried_into_the_merged_run(tmp_path, make_suite, tiny_model, tiny_adapter, capsys):
    from tests.forgetting.test_stage import FORGETTING

    suite = make_suite(n=4)
    suite.write_text(suite.read_text() + FORGETTING)
    common = ["--base", str(tiny_model.path), "--adapter", f"lora={tiny_adapter}", "--cache", str(tmp_path / "c.sqlite")]
    assert main(["run", str(suite), *common, "--runs-dir", str(tmp_path / "whole")]) == 0
    for i in range(2):
        assert main(["run", str(suite), *common, "--runs-dir", str(tmp_path / f"part{i}"), "--shard", f"{i}/2"]) == 0
    (part0,), (part1,) = (tmp_path / "part0").iterdir(), (tmp_path / "part1").iterdir()
    assert (part0 / "forgetting.csv").is_file() and not (part1 / "forgetting.csv").exists()
    assert main(["merge", str(part0), str(part1), "--runs-dir", str(tmp_path / "merged")]) == 0
    (whole,), (merged,) = (tmp_path / "whole").iterdir(), (tmp_path / "merged").iterdir()
    assert (merged / "summary.json").read_text() == (whole / "summary.json").read_text()
    for name in ("forgetting.csv", "drift.csv"):
        assert (merged / name).read_text() == (whole / name).read_text()
    assert "Forgetting" in (merged / "report.md").read_text()
    capsys.readouterr()
    verdicts = [(main(["gate", str(run)]), capsys.readouterr().out.replace(str(run), "RUN")) for run in (whole, merged)]
    assert verdicts[0] == verdicts[1] and "arc_easy" in verdicts[1][1]  # the panels' budgets are gated on the merged run


def test_forgetting_only_cannot_be_sharded(tmp_path, make_suite, capsys):
    from tests.forgetting.test_stage import FORGETTING

    suite = make_suite(n=4)
    suite.write_text(suite.read_text() + FORGETTING)
    assert main(["run", str(suite), "--forgetting-only", "--shard", "0/2", "--runs-dir", str(tmp_path)]) == 2
    assert "--forgetting-only has no suite items to shard" in capsys.readouterr().err
