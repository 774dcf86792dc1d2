"""CompletionSFTTrainer computes TRL's loss, gradients and metrics while projecting only learned positions."""

from __future__ import annotations

import pytest


def _trainer(cls, tiny_model_dir, tmp_path, examples):
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.padding_side = "right"
    args = SFTConfig(output_dir=str(tmp_path / cls.__name__), max_steps=1, per_device_train_batch_size=4, max_length=96,
                     completion_only_loss=True, bf16=False, activation_checkpointing=False, use_cpu=True, report_to="none",
                     save_strategy="no", disable_tqdm=True, seed=0, data_seed=0)
    trainer = cls(model=AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32), args=args,
                  train_dataset=Dataset.from_list(examples), processing_class=tok,
                  peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], task_type="CAUSAL_LM"))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # the same non-zero adapter in both trainers, so every LoRA matrix gets a gradient
        for name, param in sorted(trainer.model.named_parameters()):
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    trainer.model.train()
    return trainer


def _loss_and_grads(trainer, batch):
    trainer.model.zero_grad()
    learned = (batch["labels"][:, 1:] != -100).sum()
    loss = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=learned)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    return float(loss), grads, metrics


def test_completion_loss_matches_trl_loss_gradients_and_metrics(tiny_model_dir, tmp_path):
    import torch
    from trl import SFTTrainer

    from evalkit.train.sft import CompletionSFTTrainer

    examples = [{"prompt": [{"role": "system", "content": "Triage."}, {"role": "user", "content": "Incident " + "x " * (3 * i) + str(i)}],
                 "completion": [{"role": "assistant", "content": '{"severity": "SEV' + str(1 + i % 4) + '"}'}]} for i in range(4)]
    trl = _trainer(SFTTrainer, tiny_model_dir, tmp_path, examples)
    ours = _trainer(CompletionSFTTrainer, tiny_model_dir, tmp_path, examples)
    batch = next(iter(trl.get_train_dataloader()))
    assert (batch["attention_mask"] == 0).any() and (batch["labels"] == -100).float().mean() > 0.5  # padding and masked prompts
    ref_loss, ref_grads, ref_metrics = _loss_and_grads(trl, batch)
    loss, grads, metrics = _loss_and_grads(ours, batch)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    assert grads.keys() == ref_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    assert metrics["mean_token_accuracy"] == pytest.approx(ref_metrics["mean_token_accuracy"])
    assert metrics["entropy"] == pytest.approx(ref_metrics["entropy"], rel=1e-4)
    assert metrics["num_tokens"] == ref_metrics["num_tokens"] == int(batch["attention_mask"].sum())


def test_only_right_padded_batches_run_without_their_padding_mask():
    import torch

    from evalkit.train.sft import _right_padded

    assert _right_padded(torch.tensor([[1, 1, 1], [1, 1, 0]]))
    assert not _right_padded(torch.tensor([[1, 1, 1], [0, 1, 1]]))  # left padding: real tokens would see pads
    assert not _right_padded(torch.tensor([[1, 0, 1]]))  # a hole in the middle
    assert not _right_padded(None)
