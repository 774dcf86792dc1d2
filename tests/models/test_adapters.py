"""Adapter checks before loading: safetensors only, shapes and base identity."""

from __future__ import annotations

import json
import shutil

import pytest

from evalkit.errors import AdapterError
from evalkit.models import check_compatible, resolve_adapter
from evalkit.models.adapters import base_shapes, parse_adapter_arg
from tests.conftest import build_tiny_llama, make_adapter


def test_name_path_syntax():
    assert parse_adapter_arg("v2=runs/a") == ("v2", "runs/a")
    assert parse_adapter_arg("runs/a") == (None, "runs/a")
    assert parse_adapter_arg("/tmp/x=y/z") == (None, "/tmp/x=y/z")  # not a valid arm name: a path


def test_arm_name_defaults_to_the_folder_name(tiny_adapter):
    ref = resolve_adapter(str(tiny_adapter))
    assert ref.name == "tiny-lora" and len(ref.fingerprint) == 64


def test_adapter_fits_its_own_base(tiny_adapter, tiny_model):
    check_compatible(resolve_adapter(str(tiny_adapter)), tiny_model, base_shapes(tiny_model))


def test_adapter_with_a_wrong_shape_is_refused(tiny_model, embedded, tmp_path):
    other = build_tiny_llama(tmp_path / "wide", embedded.path, hidden=96)
    ref = resolve_adapter(str(make_adapter(other, tmp_path / "wide-lora")))
    with pytest.raises(AdapterError, match=r"lora_A of .*q_proj.* has shape \[4, 96\].*trained for another model"):
        check_compatible(ref, tiny_model, base_shapes(tiny_model))


def test_adapter_naming_another_base_is_refused_unless_allowed(tiny_adapter, tiny_model, tmp_path):
    copy = shutil.copytree(tiny_adapter, tmp_path / "renamed")
    cfg = json.loads((copy / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "HuggingFaceTB/SmolLM2-360M-Instruct"
    (copy / "adapter_config.json").write_text(json.dumps(cfg))
    ref = resolve_adapter(str(copy))
    with pytest.raises(AdapterError, match="SmolLM2-360M-Instruct.*--allow-base-mismatch"):
        check_compatible(ref, tiny_model, base_shapes(tiny_model))
    check_compatible(ref, tiny_model, base_shapes(tiny_model), allow_base_mismatch=True)


def test_folder_without_adapter_config_is_refused(tmp_path):
    with pytest.raises(AdapterError, match="no adapter_config.json"):
        resolve_adapter(str(tmp_path))


def test_pickled_weights_need_consent(tiny_adapter, tmp_path):
    import torch
    from safetensors.torch import load_file

    copy = shutil.copytree(tiny_adapter, tmp_path / "pickled")
    torch.save(load_file(copy / "adapter_model.safetensors"), copy / "adapter_model.bin")
    (copy / "adapter_model.safetensors").unlink()
    with pytest.raises(AdapterError, match="--allow-pickle"):
        resolve_adapter(str(copy))
    assert resolve_adapter(str(copy), allow_pickle=True).weights.name == "adapter_model.bin"
