"""Resolving --base: the embedded alias, local folders, hub ids offline; fingerprints."""

from __future__ import annotations

import shutil

import pytest

from evalkit.errors import ModelError
from evalkit.models import resolve_model
from evalkit.models.resolve import fingerprint_dir


def test_embedded_alias_is_converted_once_to_safetensors(embedded):
    assert embedded.source == "embedded"
    assert (embedded.path / "model.safetensors").exists() and (embedded.path / "tokenizer.json").exists()
    again = resolve_model("smollm2-135m-instruct")
    assert again.path == embedded.path and again.fingerprint == embedded.fingerprint


def test_embedded_conversion_is_a_plain_model_with_a_chat_template(embedded):
    import json

    config = json.loads((embedded.path / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    assert (embedded.path / "chat_template.jinja").exists() or "chat_template" in (embedded.path / "tokenizer_config.json").read_text()


def test_local_directory_resolves_with_a_content_fingerprint(tiny_model_dir, tmp_path):
    a = resolve_model(str(tiny_model_dir))
    assert a.source == "local" and len(a.fingerprint) == 64
    copy = shutil.copytree(tiny_model_dir, tmp_path / "copy")
    assert resolve_model(str(copy)).fingerprint == a.fingerprint  # content, not path


def test_fingerprint_changes_when_weights_change(tiny_model_dir, tmp_path):
    copy = shutil.copytree(tiny_model_dir, tmp_path / "copy")
    before = fingerprint_dir(copy)
    with (copy / "model.safetensors").open("r+b") as fh:
        fh.seek(-8, 2)
        fh.write(b"\x01" * 8)
    assert fingerprint_dir(copy) != before


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_hub_id_not_cached_is_refused_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelError, match="--allow-network"):
        resolve_model("someorg/not-a-real-model-xyz")


def test_unknown_alias_lists_the_known_ones():
    with pytest.raises(ModelError, match="smollm2-135m-instruct"):
        resolve_model("llama-9000")
