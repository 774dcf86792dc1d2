"""LoRA initialisations that need more than peft's flag: EVA's data pass, PiSSA's conversion to plain LoRA."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from evalkit.train import load_train_config, train
from tests.train.test_trainer import write_config  # noqa: F401  (fixture)


def _tiny_steps(path, init):
    config = load_train_config(path)
    return replace(config, lora=replace(config.lora, init=init),
                   training=replace(config.training, max_steps=1, learning_rate=1e-7, warmup_ratio=0.0))


def test_eva_sets_a_from_singular_vectors_of_the_training_inputs(write_config):
    """Regression: `init: eva` trained from a random init and recorded `eva`."""
    from safetensors.torch import load_file

    infos: list[str] = []
    from evalkit.train import TrainEvents

    result = train(_tiny_steps(write_config(), "eva"), events=TrainEvents(info=infos.append))
    assert any(m.startswith("EVA:") for m in infos)
    weights = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    a = [w for name, w in weights.items() if "lora_A" in name]
    assert a
    for w in a:  # rows are orthonormal singular vectors; Kaiming-uniform rows would have norm ≈ 0.58 here
        gram = w.float() @ w.float().T
        assert gram.diagonal().sub(1).abs().max() < 0.02
        assert (gram - gram.diagonal().diag()).abs().max() < 0.02
    assert json.loads((result.adapter_dir / "adapter_config.json").read_text())["r"] == 4


@pytest.mark.parametrize("init", ["pissa", "olora"])
def test_pissa_and_olora_are_saved_as_plain_lora_that_fits_the_original_base(write_config, tiny_model_dir, init):
    """They change the base weights; unconverted, the adapter would only fit that changed base."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    result = train(_tiny_steps(write_config(), init))
    config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["init_lora_weights"] is True  # rank 2r, a plain LoRA
    assert result.record["lora_init"] == {"method": init, "converted_to_plain_lora": True}
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7]])
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)(input_ids=ids).logits
        adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(result.adapter_dir))(input_ids=ids).logits
    # After one step at lr 1e-7 the trained model is the original base to within rounding: so must the adapter be.
    assert (adapted - base).abs().max() < 1e-2
