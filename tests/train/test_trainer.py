"""The training stage on the tiny model: real TRL SFTTrainer + peft (+ bitsandbytes for QLoRA)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from evalkit.errors import TrainError
from evalkit.train import TrainEvents, load_train_config, train

CONFIG = """\
base: {base}
data:
  path: train.jsonl
lora:
  r: 4
  alpha: 8
  target_modules: {targets}
{extra}
training:
  max_steps: {steps}
  batch_size: 2
  grad_accum: {accum}
  max_length: 128
  learning_rate: 1.0e-3
  logging_steps: 1
  save_steps: 2
output_dir: out/adapter
"""


@pytest.fixture
def write_config(tmp_path, tiny_model_dir):
    def _write(targets: str = "[q_proj, v_proj]", steps: int = 4, accum: int = 1, extra: str = "", n: int = 12, rows=None) -> Path:
        rows = rows or [
            {"prompt": [{"role": "user", "content": f"Incident {i}: database down"}],
             "completion": [{"role": "assistant", "content": json.dumps({"severity": f"SEV{1 + i % 4}"})}]}
            for i in range(n)
        ]
        (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        path = tmp_path / "train.yaml"
        path.write_text(CONFIG.format(base=tiny_model_dir, targets=targets, steps=steps, accum=accum, extra=extra))
        return path

    return _write


def test_training_writes_a_loadable_adapter_and_its_record(write_config, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    result = train(load_train_config(write_config()))
    out = result.adapter_dir
    assert (out / "adapter_config.json").exists() and (out / "adapter_model.safetensors").exists()
    record = json.loads((out / "evalkit-train.json").read_text())
    assert record["optimizer_steps"] == 4 and len(record["loss_curve"]) == 4
    assert record["base"]["fingerprint"] and record["data"]["sha256"] and len(record["chat_template_sha256"]) == 64
    assert record["config"]["lora"]["r"] == 4 and record["config"]["training"]["precision"] == "auto"
    from evalkit.train.trainer import cpu_has_native_bf16

    # deliberate CPU defaults: bf16 only where the CPU computes it natively, no gradient checkpointing
    assert record["precision"] == ("bfloat16" if cpu_has_native_bf16() else "float32")
    assert record["gradient_checkpointing"] is False
    assert 0 < record["trainable_parameters"] < record["total_parameters"]
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(out))


def test_typo_in_target_modules_lists_valid_names(write_config):
    with pytest.raises(TrainError) as exc:
        train(load_train_config(write_config(targets="[q_proj, v_projj]")))
    message = str(exc.value)
    assert "'v_projj'" in message and "q_proj" in message and "down_proj" in message and "valid names" in message


def test_zero_trainable_parameters_is_refused(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from evalkit.train.preflight import trainable_parameters

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(TrainError, match="0 trainable"):
        trainable_parameters(model)
    for p in model.parameters():
        p.requires_grad_(True)
    with pytest.raises(TrainError, match="100%"):
        trainable_parameters(model)


@pytest.mark.parametrize(
    ("n", "batch", "accum", "procs", "epochs", "max_steps", "effective", "per_epoch", "total"),
    [
        (13, 2, 3, 1, 2.0, None, 6, 3, 6),   # 7 batches → 3 steps/epoch (last partial accumulation still steps)
        (16, 4, 1, 1, 1.0, None, 4, 4, 4),
        (100, 8, 2, 2, 1.5, None, 32, 4, 6),  # 7 batches per process → 4 steps/epoch, ceil(1.5 × 4)
        (10, 2, 1, 1, 3.0, 7, 2, 5, 7),       # max_steps overrides epochs
    ],
)
def test_step_arithmetic(n, batch, accum, procs, epochs, max_steps, effective, per_epoch, total):
    from evalkit.train.preflight import plan_steps

    plan = plan_steps(n, batch, accum, procs, epochs, max_steps)
    assert (plan.effective_batch, plan.steps_per_epoch, plan.total_steps) == (effective, per_epoch, total)


def test_step_plan_matches_what_the_trainer_runs(write_config, tmp_path):
    config = load_train_config(write_config(n=13, accum=3))
    config = replace(config, training=replace(config.training, max_steps=None, epochs=2.0))
    result = train(config)
    assert result.plan.effective_batch == 6
    assert result.plan.total_steps == result.record["optimizer_steps"] == 6


def test_resume_continues_from_the_last_checkpoint(write_config):
    config = load_train_config(write_config(steps=6))

    def interrupt(step, total, loss):
        if step == 5:  # Ctrl-C during step 5: checkpoint-4 (save_steps 2) is the last one saved
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, events=TrainEvents(step=interrupt))
    assert (config.output_dir / "checkpoints" / "checkpoint-4").exists()
    seen: list[int] = []
    result = train(config, resume=True, events=TrainEvents(step=lambda s, t, l: seen.append(s)))
    assert seen == [5, 6]
    assert result.record["optimizer_steps"] == 6


def test_resume_without_checkpoint_is_an_error(write_config):
    with pytest.raises(TrainError, match="no checkpoint"):
        train(load_train_config(write_config()), resume=True)


def test_contamination_with_the_eval_suite_is_warned(write_config, make_suite, tmp_path):
    suite = make_suite(n=4)
    rows = [{"prompt": [{"role": "system", "content": "Answer with JSON."}, {"role": "user", "content": "Report: " + r}],
             "completion": [{"role": "assistant", "content": "{}"}]}
            for r in [json.loads(line)["report"] for line in (suite.parent / "data.jsonl").read_text().splitlines()[:2]]]
    config = load_train_config(write_config(rows=rows + rows, steps=1))
    config = replace(config, eval_suite=suite)
    warnings: list[str] = []
    train(config, events=TrainEvents(warn=warnings.append))
    assert any("contamination: 2 evaluation items" in w for w in warnings)


def test_qlora_nf4_trains_on_cpu_and_is_evaluated_on_the_same_quantized_base(write_config, make_suite, tiny_model, tmp_path):
    from evalkit.models import BackendOptions, LoadOptions
    from evalkit.runner import RunOptions, run_suite
    from evalkit.suite import load_suite

    config = load_train_config(write_config(steps=2, extra="quantization:\n  mode: nf4\n  compute_dtype: float32"))
    result = train(config)
    assert result.record["config"]["quantization"]["mode"] == "nf4"
    run = run_suite(load_suite(make_suite(n=3)), RunOptions(
        base=str(tiny_model.path), adapters=(f"qlora={result.adapter_dir}",), runs_dir=tmp_path / "runs",
        cache_path=tmp_path / "c.sqlite", backend_options=BackendOptions(load=LoadOptions(quantize="nf4", device="cpu"))))
    assert run.manifest.backend["quantize"] == "nf4" and run.generated == 6
    assert not any("--quantize" in w for w in run.warnings)  # the bases match
    plain = run_suite(load_suite(make_suite(n=3)), RunOptions(
        base=str(tiny_model.path), adapters=(f"qlora={result.adapter_dir}",), runs_dir=tmp_path / "runs",
        cache_path=tmp_path / "c.sqlite", backend_options=BackendOptions(load=LoadOptions(device="cpu"))))
    assert any("trained on a nf4 base (QLoRA) but is evaluated with --quantize none; pass --quantize nf4" in w for w in plain.warnings)


def test_a_container_module_in_target_modules_is_refused_before_training(write_config):
    """Regression: `mlp` matched as a name suffix, then peft raised inside SFTTrainer with a traceback."""
    with pytest.raises(TrainError, match="'mlp' match no module"):
        train(load_train_config(write_config(targets="[q_proj, mlp]")))


def test_overwrite_keeps_the_old_adapter_until_the_new_one_is_saved(write_config):
    config = load_train_config(write_config(steps=2))
    train(config)
    weights = config.output_dir / "adapter_model.safetensors"
    old = weights.read_bytes()
    with pytest.raises(TrainError, match="finished adapter"):
        train(config)

    def crash(step, total, loss):
        raise KeyboardInterrupt  # the new run dies mid-training

    with pytest.raises(KeyboardInterrupt):
        train(replace(config, training=replace(config.training, learning_rate=5e-3)), overwrite=True, events=TrainEvents(step=crash))
    assert weights.read_bytes() == old
    result = train(replace(config, training=replace(config.training, learning_rate=5e-3)), overwrite=True)
    assert result.adapter_dir == config.output_dir and weights.read_bytes() != old
    assert json.loads((config.output_dir / "evalkit-train.json").read_text())["config"]["training"]["learning_rate"] == 5e-3
    assert sorted(p.name for p in config.output_dir.parent.iterdir()) == ["adapter"]  # no staging folder left


def test_a_run_shorter_than_the_logging_interval_still_records_its_final_loss(write_config):
    config = load_train_config(write_config(steps=2))
    result = train(replace(config, training=replace(config.training, logging_steps=5)))
    assert [point["step"] for point in result.loss_curve] == [2]
    assert result.final_loss is not None and result.final_loss > 0


def test_qlora_trainable_share_counts_real_parameters_not_packed_4bit_storage(write_config, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    full = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_model_dir).parameters())
    result = train(load_train_config(write_config(steps=1, extra="quantization:\n  mode: nf4\n  compute_dtype: float32")))
    assert result.total == full + result.trainable
