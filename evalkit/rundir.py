"""The run directory: what a run writes and how to read it back.

    runs/<YYYYmmdd-HHMMSS>-<suite>/
      manifest.json      what ran: suite hash, model/adapter fingerprints, template hash, versions, decoding
      generations.jsonl  one line per item × arm: messages, output, token counts, latency
      scores.csv         long format: item_id, arm, metric, value, error, detail
      summary.json       the paired comparison (compare.Summary)
      report.md          the Markdown report; forest.png beside it

Every file is written atomically and carries (or sits beside a manifest that
carries) a format ``version``; a reader refuses versions it does not know.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from evalkit._util import atomic_write
from evalkit.compare import SUMMARY_VERSION, Summary, summary_from_dict
from evalkit.errors import RunDirError
from evalkit.records import Generation, Item, ScoreRow

__all__ = ["RUN_FORMAT_VERSION", "RunDir", "load_run", "write_generations", "write_json", "write_scores"]

RUN_FORMAT_VERSION = 1
SCORE_COLUMNS = ("item_id", "arm", "metric", "value", "error", "detail")


def write_json(path: Path, doc: Any) -> None:
    atomic_write(path, json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def write_generations(path: Path, generations: list[Generation], items: list[Item], messages: dict[str, list[dict[str, str]]]) -> None:
    clusters = {it.id: it.cluster for it in items}
    lines = [
        json.dumps({**asdict(g), "cluster": clusters.get(g.item_id), "messages": messages.get(g.item_id, [])}, ensure_ascii=False)
        for g in generations
    ]
    atomic_write(path, "\n".join(lines) + "\n")


def write_scores(path: Path, rows: list[ScoreRow]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SCORE_COLUMNS)
    for r in rows:
        writer.writerow([r.item_id, r.arm, r.metric, "" if r.value is None else r.value, r.error or "", r.detail])
    atomic_write(path, buf.getvalue())


@dataclass
class RunDir:
    """A finished run, read back from disk."""

    path: Path
    manifest: dict[str, Any]
    summary: Summary

    def _open(self, name: str) -> Any:
        try:
            return (self.path / name).open(encoding="utf-8", newline="")
        except FileNotFoundError:
            raise RunDirError(f"{self.path}: {name} is missing; the run directory is incomplete, run the suite again") from None

    def generations(self) -> list[dict[str, Any]]:
        with self._open("generations.jsonl") as fh:
            return [json.loads(line) for line in fh if line.strip()]

    def scores(self) -> list[ScoreRow]:
        with self._open("scores.csv") as fh:
            return [
                ScoreRow(r["item_id"], r["arm"], r["metric"], float(r["value"]) if r["value"] else None, r["error"] or None, r["detail"])
                for r in csv.DictReader(fh)
            ]


def load_run(path: str | Path) -> RunDir:
    """Read a run directory.

    Raises:
        RunDirError: missing directory or files, or an unknown format version.
    """
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"{path}: no such run directory; pass a folder under runs/ written by `evalkit run`")
    if not (path / "manifest.json").exists():
        runs = sorted(p for p in path.iterdir() if (p / "manifest.json").exists())
        if runs:
            raise RunDirError(f"{path}: holds run directories, not a run; pass one of them, e.g. {runs[-1]}")
    docs = {}
    for name in ("manifest.json", "summary.json"):
        try:
            docs[name] = json.loads((path / name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunDirError(f"{path}: {name} is missing; the run did not finish; run it again (the cache makes that quick)") from None
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{path / name}: not valid JSON ({exc.msg})") from None
    if docs["manifest.json"].get("version") != RUN_FORMAT_VERSION:
        raise RunDirError(f"{path / 'manifest.json'}: format version {docs['manifest.json'].get('version')!r}; this evalkit reads {RUN_FORMAT_VERSION}")
    if docs["summary.json"].get("version") != SUMMARY_VERSION:
        raise RunDirError(f"{path / 'summary.json'}: format version {docs['summary.json'].get('version')!r}; this evalkit reads {SUMMARY_VERSION}")
    return RunDir(path=path, manifest=docs["manifest.json"], summary=summary_from_dict(docs["summary.json"]))
