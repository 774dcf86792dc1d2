"""The cache: a sqlite file (WAL) of what models produced, keyed by everything that determines it.

Two tables. ``generations`` holds completions; a completion's key is the sha256 of
(cache format, backend identity — name, engine version or endpoint, load options,
device —, model fingerprint, adapter fingerprint, rendered prompt, decoding
parameters; and the batch size where it can change outputs: bf16/fp16 or sampled
decoding). ``results`` holds other model answers as JSON under keys their callers
build the same way (log-likelihoods of forgetting panels, judge verdicts).

Each batch is committed when it finishes, so a run that is interrupted, even by
``kill -9``, resumes without recomputing a finished batch, and a repeated run of a
finished suite computes nothing. A failed request (``BackendOutput.error``) is
never stored, so the next run tries it again.

A cache file that is not sqlite, is damaged, or was written by something else is
a ``CacheError`` naming the file and the fix, when opened (an integrity check reads
every page then) or when read or written.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from evalkit._util import canonical_json, sha256_text
from evalkit.errors import CacheError
from evalkit.models.base import BackendOutput

__all__ = ["GenerationCache", "cache_key"]

_TABLES = {
    "generations": "key TEXT PRIMARY KEY, text TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, "
    "completion_tokens INTEGER NOT NULL, latency_s REAL NOT NULL, created REAL NOT NULL",
    "results": "key TEXT PRIMARY KEY, kind TEXT NOT NULL, value TEXT NOT NULL, created REAL NOT NULL",
}

CACHE_FORMAT = 2
"""Bumped when what a key covers or what is stored for it changes (2: the backend's identity joined the key)."""

_CHUNK = 500
"""Keys per query: stays under sqlite's bound-parameter limit."""


def cache_key(backend: dict[str, Any], model_fp: str, adapter_fp: str | None, prompt: str, decoding: dict[str, Any]) -> str:
    """The key of one generation (see the module docstring); ``backend`` is ``Backend.identity()`` plus any extra part."""
    return sha256_text(canonical_json([CACHE_FORMAT, backend, model_fp, adapter_fp or "", prompt, decoding]))


class GenerationCache:
    """A sqlite-backed store of completions and other model answers. ``path=None`` disables it (``--no-cache``)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        if path is None:
            return
        fix = "give a writable file path with --cache, or --no-cache"
        if path.is_dir():
            raise CacheError(f"{path}: is a folder, not a cache file; {fix}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise CacheError(f"{path}: cannot use as the cache ({exc}); {fix}") from exc
        with self._guard("open"):
            # Damaged pages surface on the first read or write that touches them, which may be after
            # the model has loaded and a batch has been generated; quick_check reads every page now
            # (about 0.1 s for a 90 MB cache, measured) so a damaged file stops the run before any work.
            problem = self._db.execute("PRAGMA quick_check(1)").fetchone()[0]
            if problem != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed: {' '.join(str(problem).split())}")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            for table, columns in _TABLES.items():
                self._db.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns})")
                found = [row[1] for row in self._db.execute(f"PRAGMA table_info({table})")]
                expected = [c.split()[0] for c in columns.split(", ")]
                if found != expected:
                    raise CacheError(
                        f"{path}: its {table} table has columns {found}, not evalkit's {expected}; "
                        f"the file belongs to something else: point --cache (or EVALKIT_HOME) elsewhere"
                    )
            self._db.commit()

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """sqlite errors while using the file become one CacheError naming it and the fix."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise CacheError(
                f"{self.path}: the cache could not {what} ({exc}); it is damaged or not an evalkit cache: "
                f"delete it (it only holds model outputs that a run recomputes), or use --cache elsewhere or --no-cache"
            ) from exc

    def _select(self, sql: str, keys: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        assert self._db is not None
        for start in range(0, len(keys), _CHUNK):
            chunk = list(keys[start : start + _CHUNK])
            yield from self._db.execute(sql.format(marks=",".join("?" * len(chunk))), chunk)

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[BackendOutput, float]]:
        """Cached (output, latency) for the keys that are present."""
        if self._db is None or not keys:
            return {}
        sql = "SELECT key, text, prompt_tokens, completion_tokens, latency_s FROM generations WHERE key IN ({marks})"
        with self._guard("read"):
            return {key: (BackendOutput(text=text, prompt_tokens=pt, completion_tokens=ct), lat) for key, text, pt, ct, lat in self._select(sql, keys)}

    def put_many(self, entries: Iterable[tuple[str, BackendOutput, float]]) -> None:
        """Store a finished batch in one transaction; failed requests are not stored."""
        if self._db is None:
            return
        now = time.time()
        rows = [(k, o.text, o.prompt_tokens, o.completion_tokens, lat, now) for k, o, lat in entries if o.error is None]
        with self._guard("write"), self._db:
            self._db.executemany("INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?, ?)", rows)

    def get_results(self, keys: Sequence[str]) -> dict[str, Any]:
        """Stored JSON answers (log-likelihoods, judge verdicts) for the keys that are present."""
        if self._db is None or not keys:
            return {}
        with self._guard("read"):
            return {key: json.loads(value) for key, value in self._select("SELECT key, value FROM results WHERE key IN ({marks})", keys)}

    def put_results(self, kind: str, entries: Iterable[tuple[str, Any]]) -> None:
        """Store JSON answers of one kind (e.g. ``loglikelihood``, ``judge``) in one transaction."""
        if self._db is None:
            return
        now = time.time()
        rows = [(k, kind, json.dumps(v, allow_nan=False), now) for k, v in entries]
        with self._guard("write"), self._db:
            self._db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)", rows)

    def __len__(self) -> int:
        if self._db is None:
            return 0
        with self._guard("read"):
            return int(self._db.execute("SELECT COUNT(*) FROM generations").fetchone()[0])

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> GenerationCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
