"""`evalkit adapter inspect` verdicts and `evalkit adapter merge` agreement."""

from __future__ import annotations

import pytest

from evalkit.errors import AdapterError
from evalkit.train.adapter_tools import inspect_adapter, merge_adapter
from tests.conftest import make_adapter


def test_inspect_reports_rank_alpha_scaling_and_targets(tiny_adapter, tiny_model):
    rep = inspect_adapter(tiny_adapter, base=str(tiny_model.path))
    assert (rep.r, rep.alpha, rep.scaling) == (4, 8.0, 2.0)
    assert rep.target_modules == ["q_proj", "v_proj"]
    assert rep.parameters > 0 and rep.size_bytes > 0
    assert rep.vllm_ok and rep.vllm_reasons == []
    assert rep.compatible_with == str(tiny_model.path)


def test_rslora_scaling_is_alpha_over_sqrt_r(tiny_model_dir, tmp_path):
    path = make_adapter(tiny_model_dir, tmp_path / "rs", r=16, use_rslora=True)
    assert inspect_adapter(path, max_lora_rank=16).scaling == pytest.approx(32 / 4)


def test_rank_above_max_lora_rank_is_not_deployable(tiny_model_dir, tmp_path):
    path = make_adapter(tiny_model_dir, tmp_path / "r32", r=32)
    rep = inspect_adapter(path, max_lora_rank=16)
    assert not rep.vllm_ok and any("rank 32 > --max-lora-rank 16" in r for r in rep.vllm_reasons)
    assert inspect_adapter(path, max_lora_rank=64).vllm_ok


def test_dora_is_not_deployable(tiny_model_dir, tmp_path):
    rep = inspect_adapter(make_adapter(tiny_model_dir, tmp_path / "dora", use_dora=True))
    assert not rep.vllm_ok and any("DoRA" in r for r in rep.vllm_reasons)


def test_modules_to_save_and_bias_are_not_deployable(tiny_model_dir, tmp_path):
    rep = inspect_adapter(make_adapter(tiny_model_dir, tmp_path / "mts", modules_to_save=["lm_head"], bias="lora_only"))
    assert len(rep.vllm_reasons) == 2


def test_inspect_with_the_wrong_base_is_refused(tiny_model_dir, embedded, tmp_path):
    from tests.conftest import build_tiny_llama

    other = build_tiny_llama(tmp_path / "wide", embedded.path, hidden=96)
    with pytest.raises(AdapterError, match="trained for another model"):
        inspect_adapter(make_adapter(other, tmp_path / "wide-lora"), base=str(tiny_model_dir))


def test_merge_agrees_with_unmerged_logits(tiny_adapter, tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    res = merge_adapter(tiny_adapter, tmp_path / "merged", base=str(tiny_model_dir))
    assert res.agree and res.max_abs_diff < 1e-3 and res.max_logit > 0
    assert not res.quantized and not res.warnings
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert not any("lora" in name for name, _ in merged.named_parameters())


def test_merge_refuses_a_non_empty_out_folder(tiny_adapter, tiny_model_dir, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(AdapterError, match="new or empty folder"):
        merge_adapter(tiny_adapter, tmp_path / "busy", base=str(tiny_model_dir))
    with pytest.raises(AdapterError, match="new or empty folder"):
        merge_adapter(tiny_adapter, tiny_adapter, base=str(tiny_model_dir))
