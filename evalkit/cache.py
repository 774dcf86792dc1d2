"""The generation cache: a sqlite file (WAL) of completions keyed by what determines them.

Key = sha256 of (cache format, model fingerprint, adapter fingerprint, load options
and device type, rendered prompt, decoding parameters; and the batch size where it
can change outputs: bf16/fp16 or sampled decoding). Each batch is committed when it finishes, so a run
that is interrupted, even by ``kill -9``, resumes without recomputing a finished
batch, and a repeated run of a finished suite generates nothing.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from evalkit._util import canonical_json, sha256_text
from evalkit.errors import CacheError
from evalkit.models.hf import BackendOutput

__all__ = ["GenerationCache", "cache_key"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    latency_s REAL NOT NULL,
    created REAL NOT NULL
)
"""


CACHE_FORMAT = 1
"""Bumped when what is stored for a generation changes (e.g. how the output text is cut)."""


def cache_key(model_fp: str, adapter_fp: str | None, load: dict[str, Any], prompt: str, decoding: dict[str, Any]) -> str:
    """The cache key of one generation (see the module docstring)."""
    return sha256_text(canonical_json([CACHE_FORMAT, model_fp, adapter_fp or "", load, prompt, decoding]))


class GenerationCache:
    """A sqlite-backed store of completions. ``path=None`` disables caching (``--no-cache``)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(str(path), timeout=30)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute(_SCHEMA)
                self._db.commit()
            except (OSError, sqlite3.Error) as exc:
                raise CacheError(f"{path}: cannot use as the generation cache ({exc}); give a writable file path with --cache, or --no-cache") from exc

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[BackendOutput, float]]:
        """Cached (output, latency) for the keys that are present."""
        if self._db is None or not keys:
            return {}
        found: dict[str, tuple[BackendOutput, float]] = {}
        for start in range(0, len(keys), 500):  # stay under sqlite's parameter limit
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, text, prompt_tokens, completion_tokens, latency_s FROM generations WHERE key IN ({marks})", chunk
            )
            for key, text, pt, ct, lat in rows:
                found[key] = (BackendOutput(text=text, prompt_tokens=pt, completion_tokens=ct), lat)
        return found

    def put_many(self, entries: Iterable[tuple[str, BackendOutput, float]]) -> None:
        """Store a finished batch in one transaction."""
        if self._db is None:
            return
        now = time.time()
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?, ?)",
                [(k, o.text, o.prompt_tokens, o.completion_tokens, lat, now) for k, o, lat in entries],
            )

    def __len__(self) -> int:
        if self._db is None:
            return 0
        return int(self._db.execute("SELECT COUNT(*) FROM generations").fetchone()[0])

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
