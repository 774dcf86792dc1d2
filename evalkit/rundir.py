"""The run directory: what a run writes and how to read it back.

    runs/<YYYYmmdd-HHMMSS>-<suite>/
      manifest.json      what ran (records.Manifest): suite hash, model/adapter fingerprints, backend, decoding, versions
      generations.jsonl  one line per item × arm: messages, output, token counts, latency, error
      scores.csv         long format: item_id, arm, metric, value, error, detail
      summary.json       the paired comparison (records.Summary)
      report.md          the Markdown report; forest.png beside it (evalkit.report renders both)

Every file is written atomically; ``manifest.json`` and ``summary.json`` carry a
format ``version`` and a reader refuses versions it does not know. A file that is
missing, truncated or malformed is one ``RunDirError`` naming the file, the line
or field, and what to do.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit._util import atomic_write, json_lines
from evalkit.errors import RunDirError
from evalkit.records import (
    MANIFEST_VERSION,
    SUMMARY_VERSIONS_READ,
    Generation,
    Item,
    Manifest,
    RecordError,
    ScoreRow,
    Summary,
    parse_record,
    summary_from_dict,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RunDir", "load_run", "write_generations", "write_json", "write_scores"]

SCORE_COLUMNS = ("item_id", "arm", "metric", "value", "error", "detail")
_RERUN = "run the suite again to rebuild it (the cache makes that quick)"


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
    """A finished run, read back from disk.

    :func:`load_run` reads and checks all four data files up front, so a damaged
    ``scores.csv`` or ``generations.jsonl`` is an error for ``gate`` and ``report`` too,
    not only for the command that happens to read it.
    """

    path: Path
    manifest: Manifest
    summary: Summary
    _scores: list[ScoreRow] | None = field(default=None, repr=False)
    _generations: list[dict[str, Any]] | None = field(default=None, repr=False)

    def _text(self, name: str) -> str:
        try:
            return (self.path / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RunDirError(f"{self.path / name}: missing; the run directory is incomplete: {_RERUN}") from None
        except UnicodeDecodeError as exc:
            raise RunDirError(f"{self.path / name}: not UTF-8 text (byte {exc.start}); the file is damaged: {_RERUN}") from None
        except OSError as exc:
            raise RunDirError(f"{self.path / name}: cannot read ({exc.strerror or exc})") from None

    def generations(self) -> list[dict[str, Any]]:
        """``generations.jsonl`` as dicts (item_id, arm, text, ..., messages)."""
        if self._generations is None:
            self._generations = self._read_generations()
        return self._generations

    def _read_generations(self) -> list[dict[str, Any]]:
        where = self.path / "generations.jsonl"
        out = []
        for lineno, g in json_lines(self._text("generations.jsonl"), where, RunDirError, f"the file is damaged: {_RERUN}"):
            if not isinstance(g, dict) or not all(isinstance(g.get(k), str) for k in ("item_id", "arm", "text")):
                raise RunDirError(f"{where}:{lineno}: each line must be an object with item_id, arm and text; {_RERUN}")
            messages = g.get("messages", [])
            if not isinstance(messages, list) or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages
            ):
                raise RunDirError(f"{where}:{lineno}: messages must be a list of {{role, content}} strings; the file is damaged: {_RERUN}")
            cluster = g.get("cluster")
            if cluster is not None and not isinstance(cluster, (str, int)):
                raise RunDirError(f"{where}:{lineno}: cluster {cluster!r} must be a string or null; the file is damaged: {_RERUN}")
            out.append(g)
        return out

    def scores(self) -> list[ScoreRow]:
        """``scores.csv`` as rows."""
        if self._scores is None:
            self._scores = self._read_scores()
        return self._scores

    def _csv_records(self, name: str, columns: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
        """(line number, row) for each row of a run CSV whose header names ``columns``; damage is a RunDirError."""
        where = self.path / name
        reader = csv.DictReader(io.StringIO(self._text(name), newline=""), strict=True)
        try:
            fieldnames = reader.fieldnames
        except csv.Error as exc:
            raise RunDirError(f"{where}:1: not valid CSV ({exc}); the file is damaged: {_RERUN}") from None
        if fieldnames is None or not set(columns) <= set(fieldnames):
            raise RunDirError(f"{where}: the header must name {', '.join(columns)}; the file is damaged: {_RERUN}")
        records = iter(reader)
        while True:
            try:
                r = next(records)
            except StopIteration:
                return
            except csv.Error as exc:
                raise RunDirError(f"{where}:{reader.line_num}: not valid CSV ({exc}); the file is damaged: {_RERUN}") from None
            if None in r.values():
                raise RunDirError(f"{where}:{reader.line_num}: too few columns; the file is damaged: {_RERUN}")
            if None in r:
                raise RunDirError(f"{where}:{reader.line_num}: too many columns; the file is damaged: {_RERUN}")
            yield reader.line_num, r

    def _read_scores(self) -> list[ScoreRow]:
        rows = []
        for line, r in self._csv_records("scores.csv", SCORE_COLUMNS):
            try:
                value = float(r["value"]) if r["value"] else None
            except ValueError:
                value = math.nan
            if value is not None and not math.isfinite(value):
                raise RunDirError(f"{self.path / 'scores.csv'}:{line}: value {r['value']!r} is not a finite number; the file is damaged: {_RERUN}")
            rows.append(ScoreRow(r["item_id"], r["arm"], r["metric"], value, r["error"] or None, r["detail"]))
        return rows

    def forgetting_results(self) -> dict[tuple[str, str, str], dict[str, float]]:
        """``forgetting.csv`` per (panel, item id, arm): the item's metrics (``acc``, and ``acc_norm`` where the panel reports it).

        Empty for a run without a forgetting section.
        """
        if self.summary.forgetting is None:
            return {}
        out: dict[tuple[str, str, str], dict[str, float]] = {}
        for line, r in self._csv_records("forgetting.csv", ("panel", "item_id", "arm", "acc", "acc_norm")):
            if r["acc"] not in ("0", "1") or r["acc_norm"] not in ("0", "1", ""):
                raise RunDirError(f"{self.path / 'forgetting.csv'}:{line}: acc and acc_norm must be 0 or 1; the file is damaged: {_RERUN}")
            # One row per choice, each repeating the item's metrics.
            out.setdefault((r["panel"], r["item_id"], r["arm"]), {k: float(r[k]) for k in ("acc", "acc_norm") if r[k]})
        return out

    # pandas views, for analysis in a notebook (pandas is imported only when asked for)

    def scores_df(self) -> pd.DataFrame:
        """``scores.csv``: one row per item × arm × metric (value NaN where the metric recorded an error)."""
        import pandas as pd

        return pd.DataFrame([asdict(r) for r in self.scores()], columns=list(SCORE_COLUMNS))

    def generations_df(self) -> pd.DataFrame:
        """``generations.jsonl``: one row per item × arm (text, token counts, latency, cached, error, messages)."""
        import pandas as pd

        return pd.DataFrame(self.generations())

    def comparison_df(self) -> pd.DataFrame:
        """``summary.json``'s paired comparison: one row per metric × adapter arm (means, Δ, CI, p, Holm p, n, flips)."""
        import pandas as pd

        return pd.DataFrame([asdict(d) for d in self.summary.deltas])


def _json_doc(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{path}: missing; the run did not finish: {_RERUN}") from None
    except UnicodeDecodeError as exc:
        raise RunDirError(f"{path}: not UTF-8 text (byte {exc.start}); the file is damaged: {_RERUN}") from None
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); the file is damaged: {_RERUN}") from None
    except OSError as exc:
        raise RunDirError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not isinstance(doc, dict):
        raise RunDirError(f"{path}: must hold a JSON object, not {type(doc).__name__}; the file is damaged: {_RERUN}")
    return doc


def read_manifest(path: Path) -> Manifest:
    """``manifest.json`` of a run directory, validated.

    Raises:
        RunDirError: missing, malformed, of an unknown version, or with a bad field.
    """
    doc = _json_doc(path)
    if doc.get("version") != MANIFEST_VERSION:
        raise RunDirError(f"{path}: format version {doc.get('version')!r}; this evalkit reads {MANIFEST_VERSION}: {_RERUN} with this evalkit")
    try:
        return parse_record(Manifest, doc)
    except RecordError as exc:
        raise RunDirError(f"{path}: {exc}; the file is damaged: {_RERUN}") from None


def load_run(path: str | Path) -> RunDir:
    """Read a run directory.

    Raises:
        RunDirError: missing directory or files, malformed files, or an unknown format version.
    """
    path = Path(path)
    if not path.is_dir():
        what = "is a file, not a run directory" if path.exists() else "no such run directory"
        raise RunDirError(f"{path}: {what}; pass a folder under runs/ written by `evalkit run`")
    if not (path / "manifest.json").exists():
        runs = sorted(p for p in path.iterdir() if (p / "manifest.json").exists())
        if runs:
            raise RunDirError(f"{path}: holds run directories, not a run; pass one of them, e.g. {runs[-1]}")
    manifest = read_manifest(path / "manifest.json")
    doc = _json_doc(path / "summary.json")
    if doc.get("version") not in SUMMARY_VERSIONS_READ:
        raise RunDirError(f"{path / 'summary.json'}: format version {doc.get('version')!r}; this evalkit reads {' and '.join(map(str, SUMMARY_VERSIONS_READ))}: {_RERUN} with this evalkit")
    try:
        summary = summary_from_dict(doc)
    except RecordError as exc:
        raise RunDirError(f"{path / 'summary.json'}: {exc}; the file is damaged: {_RERUN}") from None
    run = RunDir(path=path, manifest=manifest, summary=summary)
    run.scores()  # a gate or report on a run whose per-item rows are damaged would not be traceable
    run.generations()
    return run
