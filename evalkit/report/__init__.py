"""Reports from a run directory: Markdown for PRs, JSON for machines, HTML and a PNG forest plot for eyes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from evalkit._util import atomic_write
from evalkit.errors import RunDirError
from evalkit.report.markdown import delta_table, headline, render_markdown
from evalkit.report.plot import forest_plot
from evalkit.rundir import RunDir, load_run

__all__ = ["delta_table", "forest_plot", "headline", "render", "render_markdown", "write_report"]

Format = Literal["md", "json", "html"]


def render(run: RunDir, fmt: Format = "md") -> str:
    """The report of a run in one format (the plot is referenced, not embedded)."""
    if fmt == "json":
        return json.dumps(run.summary.to_dict(), indent=2, ensure_ascii=False)
    plot = "forest.png" if (run.path / "forest.png").exists() else None
    scores = run.scores() if run.manifest.extra.get("judge") else None  # the judged-metrics section counts per-item rows
    md = render_markdown(run.summary, run.manifest, run.generations(), plot=plot, scores=scores)
    if fmt == "md":
        return md
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": True}).enable("table").render(md)
    style = "body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em}table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:4px 8px}code{background:#f6f8fa}"
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{run.summary.suite}</title><style>{style}</style></head><body>{body}</body></html>\n"


def write_report(run_dir: str | Path | RunDir) -> Path:
    """(Re)write ``forest.png`` and ``report.md`` in a run directory; returns the report's path."""
    run = run_dir if isinstance(run_dir, RunDir) else load_run(run_dir)
    path = run.path / "report.md"
    try:
        forest_plot(run.summary, run.path / "forest.png")
        atomic_write(path, render(run, "md"))
    except OSError as exc:
        raise RunDirError(f"{run.path}: cannot write the report there ({exc.strerror or exc}); use `evalkit report {run.path} --stdout`") from None
    return path
