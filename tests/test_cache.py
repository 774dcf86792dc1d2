"""The generation cache: sqlite persistence, WAL mode, key derivation, disabled mode, chunked reads."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any

import pytest

from evalkit.cache import GenerationCache, cache_key
from evalkit.models.base import BackendOutput

KEY_PARTS: dict[str, Any] = {
    "backend": {"backend": "hf", "transformers": "5.0", "dtype": "float32", "quantize": "none", "device": "cpu"},
    "model_fp": "model-sha-1",
    "adapter_fp": "adapter-sha-1",
    "prompt": "<|im_start|>user\nReport: db down<|im_end|>\n<|im_start|>assistant\n",
    "decoding": {"max_new_tokens": 64, "do_sample": False},
}


def out(text: str) -> BackendOutput:
    return BackendOutput(text=text, prompt_tokens=11, completion_tokens=len(text))


def test_put_and_get_roundtrip_across_close_and_reopen(tmp_path):
    path = tmp_path / "cache" / "generations.sqlite"
    cache = GenerationCache(path)
    cache.put_many([("k1", out("SEV1"), 0.25), ("k2", out("SEV2"), 0.5)])
    cache.close()

    reopened = GenerationCache(path)

    assert reopened.get_many(["k1", "k2", "k3"]) == {"k1": (out("SEV1"), 0.25), "k2": (out("SEV2"), 0.5)}
    assert len(reopened) == 2
    reopened.close()


def test_cache_creates_its_parent_folder(tmp_path):
    path = tmp_path / "a" / "b" / "gen.sqlite"

    GenerationCache(path).close()

    assert path.is_file()


def test_putting_a_key_again_replaces_the_entry(tmp_path):
    cache = GenerationCache(tmp_path / "gen.sqlite")
    cache.put_many([("k", out("old"), 1.0)])
    cache.put_many([("k", out("new"), 2.0)])

    assert cache.get_many(["k"]) == {"k": (out("new"), 2.0)}
    assert len(cache) == 1
    cache.close()


def test_journal_mode_is_wal(tmp_path):
    path = tmp_path / "gen.sqlite"
    GenerationCache(path).close()

    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_put_batch_is_visible_to_another_connection_at_once(tmp_path):
    """Each batch is committed when stored, so an interrupted run keeps it."""
    path = tmp_path / "gen.sqlite"
    writer = GenerationCache(path)
    writer.put_many([("k", out("SEV3"), 0.1)])

    reader = GenerationCache(path)
    assert reader.get_many(["k"]) == {"k": (out("SEV3"), 0.1)}
    reader.close()
    writer.close()


def test_get_many_with_no_keys_returns_nothing(tmp_path):
    cache = GenerationCache(tmp_path / "gen.sqlite")

    assert cache.get_many([]) == {}
    cache.close()


def test_get_many_reads_more_keys_than_one_sqlite_query_allows(tmp_path):
    cache = GenerationCache(tmp_path / "gen.sqlite")
    keys = [f"k{i:05d}" for i in range(1234)]
    cache.put_many((k, out(k), 0.0) for k in keys)

    found = cache.get_many(keys + ["missing"])

    assert len(found) == 1234
    assert found["k01233"] == (out("k01233"), 0.0)
    cache.close()


def test_disabled_cache_stores_nothing():
    cache = GenerationCache(None)
    cache.put_many([("k", out("SEV1"), 0.1)])

    assert cache.get_many(["k"]) == {}
    assert len(cache) == 0
    cache.close()


def test_cache_key_is_deterministic():
    assert cache_key(**KEY_PARTS) == cache_key(**KEY_PARTS)


def test_cache_key_does_not_depend_on_dict_key_order():
    reordered = {**KEY_PARTS, "backend": dict(reversed(list(KEY_PARTS["backend"].items()))), "decoding": {"do_sample": False, "max_new_tokens": 64}}

    assert cache_key(**reordered) == cache_key(**KEY_PARTS)


@pytest.mark.parametrize(
    ("part", "value"),
    [
        ("model_fp", "model-sha-2"),
        ("adapter_fp", "adapter-sha-2"),
        ("adapter_fp", None),
        ("backend", {**KEY_PARTS["backend"], "dtype": "bfloat16"}),
        ("backend", {**KEY_PARTS["backend"], "quantize": "nf4"}),
        ("backend", {**KEY_PARTS["backend"], "backend": "vllm"}),
        ("backend", {**KEY_PARTS["backend"], "transformers": "5.1"}),
        ("prompt", KEY_PARTS["prompt"] + " "),
        ("decoding", {"max_new_tokens": 65, "do_sample": False}),
        ("decoding", {"max_new_tokens": 64, "do_sample": True, "temperature": 0.7, "top_p": 1.0, "seed": 0}),
    ],
)
def test_cache_key_changes_when_any_part_changes(part, value):
    assert cache_key(**{**KEY_PARTS, part: value}) != cache_key(**KEY_PARTS)


def test_cache_key_is_a_sha256_hex_digest():
    key = cache_key(**KEY_PARTS)

    assert len(key) == 64
    assert int(key, 16) >= 0
