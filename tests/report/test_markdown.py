"""The report a reviewer reads: headline, delta table with CI and p, flips, warnings, facts, plot."""

from __future__ import annotations

from evalkit.cli import main
from evalkit.report import render, write_report
from evalkit.rundir import load_run
from tests.rundirs import make_run

BASE = {"format": [1.0] * 20 + [0.0] * 80, "severity": [1.0] * 50 + [0.0] * 50}
ADAPTER = {"format": [1.0] * 90 + [0.0] * 10, "severity": [1.0] * 49 + [0.0, 1.0] + [0.0] * 49}


def _report(tmp_path, **kw):
    path = make_run(tmp_path / "run", {"base": BASE, "v1": ADAPTER}, **kw)
    write_report(path)
    return path, (path / "report.md").read_text()


def test_headline_names_significant_changes(tmp_path):
    _, md = _report(tmp_path)
    first = md.splitlines()[2]
    assert first.startswith("**v1** vs base: better on format +0.70")
    assert "1 of 2 unchanged within noise" in first


def test_delta_table_has_ci_p_and_marks_significance(tmp_path):
    _, md = _report(tmp_path)
    assert "| Metric | base | v1 | Δ | 95% CI | p (Holm) | n |" in md
    row = next(line for line in md.splitlines() if line.startswith("| format |"))
    assert "**+0.700** ▲" in row and "<0.001" in row and row.endswith("| 100 |")
    sev = next(line for line in md.splitlines() if line.startswith("| severity |"))
    assert "▲" not in sev and "+0.000" in sev


def test_underpowered_delta_gets_a_plain_warning(tmp_path):
    _, md = _report(tmp_path)
    assert "**severity** (v1): Δ +0.000 is smaller than the minimum detectable effect" in md


def test_flips_are_counted_both_ways_with_examples(tmp_path):
    _, md = _report(tmp_path)
    assert "**format** (v1): 70 fail→pass, 0 pass→fail" in md
    assert "**severity** (v1): 1 fail→pass, 1 pass→fail" in md
    assert "- `i020` fail→pass: `question 20`" in md


def test_no_effect_warning_when_outputs_equal_base(tmp_path):
    import json

    from evalkit.records import summary_from_dict
    from evalkit.rundir import write_json

    texts = {"base": [f"same {k}" for k in range(100)], "v1": [f"same {k}" for k in range(100)]}
    path = make_run(tmp_path / "run", {"base": BASE, "v1": BASE}, texts=texts)
    manifest = json.loads((path / "manifest.json").read_text())
    summary = summary_from_dict(json.loads((path / "summary.json").read_text()))
    assert summary.identical_outputs["v1"] == 1.0
    manifest["warnings"] = ["adapter 'v1' had (almost) no effect: its output equals base's on 100% of items"]
    write_json(path / "manifest.json", manifest)
    write_report(path)
    assert "had (almost) no effect" in (path / "report.md").read_text()


def test_forest_plot_is_written_and_linked(tmp_path):
    path, md = _report(tmp_path)
    png = path / "forest.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![Δ with 95% CI per metric](forest.png)" in md


def test_run_facts_at_the_bottom(tmp_path):
    _, md = _report(tmp_path)
    facts = md[md.index("## Run facts"):]
    for needle in ("| Base | tiny (`ffffffffffff`) |", "| Chat template |", "| Decoding | greedy, max_new_tokens=8 |", "| Items | 100 |"):
        assert needle in facts


def test_report_formats_md_json_html(tmp_path, capsys):
    path, _ = _report(tmp_path)
    run = load_run(path)
    assert render(run, "json").lstrip().startswith("{")
    html = render(run, "html")
    assert html.startswith("<!doctype html>") and "<table>" in html and "forest.png" in html
    assert main(["report", str(path), "--format", "html", "--stdout"]) == 0
    assert "<table>" in capsys.readouterr().out


def test_table_means_are_paired_so_base_plus_delta_is_the_adapter(tmp_path):
    """Regression: the table showed each arm's mean over its own items while Δ used paired items."""
    path = make_run(tmp_path / "run", {"base": {"m": [1, 1, 0]}, "v1": {"m": [1, None, 1]}})
    write_report(path)
    row = next(line for line in (path / "report.md").read_text().splitlines() if line.startswith("| m |"))
    assert row.startswith("| m | 0.500 | 1.000 | +0.500 |")
