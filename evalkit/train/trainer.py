"""The training stage, straight through: pre-flight → data → model → LoRA → train → save.

    evalkit train suites/incident-triage.train.yaml

Reads top-down in the order things happen. Everything a user can get wrong is checked
before the base's weights load: the output folder (nothing finished is overwritten
without ``--overwrite``), settings this machine cannot run, the training data, and the
module names (on a weightless skeleton of the base). TRL's ``SFTTrainer`` gets the
``peft_config`` (it wraps the model itself; wrapping it again with ``get_peft_model``
would stack two adapters), as ``CompletionSFTTrainer`` (``sft.py``: the same trainer,
its loss computed on learned positions only), and every SFTConfig field whose TRL
default would surprise on a CPU is set here on purpose.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit._util import atomic_write, sha256_text, versions
from evalkit.errors import TrainError
from evalkit.models.adapters import TRAIN_RECORD
from evalkit.models.hf import load_tokenizer, quantization_config, render_chat
from evalkit.models.resolve import resolve_model
from evalkit.train.config import TrainConfig
from evalkit.train.data import contamination, data_hash, examples_from_jsonl, examples_from_suite
from evalkit.train.lora_init import check_init, converts_on_save, init_lora, peft_init_kwargs, save_initial
from evalkit.train.output import finish_output, plan_output, prepare_output
from evalkit.train.preflight import StepPlan, check_device_settings, check_modules, model_skeleton, plan_steps, trainable_parameters

__all__ = ["TrainEvents", "TrainResult", "train"]


@dataclass
class TrainEvents:
    """Hooks the CLI uses to show what is happening; all optional."""

    info: Callable[[str], None] = lambda msg: None
    warn: Callable[[str], None] = lambda msg: None
    step: Callable[[int, int, float | None], None] = lambda step, total, loss: None
    """Called after each optimizer step with (step, total_steps, last logged loss)."""


@dataclass
class TrainResult:
    adapter_dir: Path
    record: dict[str, Any]
    plan: StepPlan
    trainable: int
    total: int
    final_loss: float | None
    wall_s: float
    loss_curve: list[dict[str, float]] = field(default_factory=list)


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX); emulated bf16 is slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _precision(spec: str, device: str) -> str:
    import torch

    if spec != "auto":
        return spec
    if device == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    # Measured on a 2-core AVX512-BF16 CPU: bf16 autocast trains ~1.3× faster than fp32 (benchmarks/bench_train.py).
    return "bfloat16" if cpu_has_native_bf16() else "float32"


def train(config: TrainConfig, *, resume: bool = False, overwrite: bool = False, events: TrainEvents | None = None,
          allow_network: bool = False) -> TrainResult:
    """Train a LoRA (or QLoRA) adapter as ``config`` says and write it to ``config.output_dir``.

    Args:
        resume: continue an interrupted run from its last checkpoint.
        overwrite: replace a finished adapter (swapped in only once the new one is saved), or
            discard an interrupted run's checkpoints and start afresh.

    Raises:
        TrainError: a pre-flight check failed (output folder, setting, data, module name,
            0% trainable), or ``resume`` was asked for with no checkpoint.
    """
    import torch
    from peft import LoraConfig, prepare_model_for_kbit_training
    from peft.helpers import disable_input_dtype_casting
    from transformers import AutoModelForCausalLM, PrinterCallback, TrainerCallback
    from trl import SFTConfig

    from evalkit.train.sft import CompletionSFTTrainer

    ev = events or TrainEvents()
    t0 = time.time()
    tr, lo, qu = config.training, config.lora, config.quantization
    where = str(config.path)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    # --- pre-flight, before the weights load: the output folder, settings, data, module names
    out = plan_output(config.output_dir, resume=resume, overwrite=overwrite)
    check_device_settings(tr.precision, qu.compute_dtype, qu.mode, config.report_to, device, where)
    check_init(lo.init, qu.mode, where)
    if config.data_suite is not None:
        examples = examples_from_suite(config.data_suite, config.data_limit)
    else:
        assert config.data_path is not None
        examples = examples_from_jsonl(config.data_path, config.data_limit)
    base = resolve_model(config.base, allow_network=allow_network)
    tokenizer = load_tokenizer(base)
    tokenizer.padding_side = "right"  # training pads on the right; generation pads on the left
    template_hash = sha256_text(tokenizer.chat_template or "")
    if config.eval_suite is not None:
        leaked = contamination(examples, config.eval_suite, lambda m: render_chat(tokenizer, m))
        if leaked:
            ev.warn(f"contamination: {len(leaked)} evaluation items of {config.eval_suite.name} appear in the training data "
                    f"(same rendered prompt), e.g. {', '.join(leaked[:5])}; their scores will overstate the adapter")
    check_modules(model_skeleton(base.path), lo.target_modules, lo.modules_to_save)
    prepare_output(out)

    # --- model: the base, quantized for QLoRA
    precision = _precision(tr.precision, device)
    load_kwargs: dict[str, Any] = {"dtype": getattr(torch, precision)}
    if qu.mode != "none":
        load_kwargs["quantization_config"] = quantization_config(qu.mode, qu.compute_dtype, qu.double_quant)
        load_kwargs["device_map"] = {"": device}
    try:
        model = AutoModelForCausalLM.from_pretrained(base.path, trust_remote_code=False, **load_kwargs)
    except (OSError, ValueError, RuntimeError, ImportError) as exc:
        raise TrainError(f"{config.path}: cannot load base {base.spec!r} (quantization: {qu.mode}): {str(exc).splitlines()[0]}") from exc
    gradient_checkpointing = (device == "cuda") if tr.gradient_checkpointing == "auto" else bool(tr.gradient_checkpointing)
    if qu.mode != "none":
        # Casts norms to fp32 and enables input grads so LoRA on a frozen k-bit base trains stably.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)

    # --- LoRA
    peft_config = LoraConfig(
        r=lo.r,
        lora_alpha=lo.alpha,
        lora_dropout=lo.dropout,
        target_modules=lo.target_modules,
        bias=lo.bias,
        use_rslora=lo.use_rslora,
        use_dora=lo.use_dora,
        modules_to_save=lo.modules_to_save or None,
        task_type="CAUSAL_LM",
        **peft_init_kwargs(lo.init),
    )

    # --- trainer: every default that matters is set here, not inherited from TRL
    args = SFTConfig(
        output_dir=str(out.checkpoints),
        num_train_epochs=tr.epochs,
        max_steps=tr.max_steps or -1,
        learning_rate=tr.learning_rate,
        lr_scheduler_type=tr.scheduler,
        warmup_steps=tr.warmup_ratio,  # a float < 1 is a ratio of total steps (transformers 5)
        weight_decay=tr.weight_decay,
        per_device_train_batch_size=tr.batch_size,
        gradient_accumulation_steps=tr.grad_accum,
        max_length=tr.max_length,
        packing=tr.packing,
        # Batches of similar length waste little compute on padding: ~20% of a CPU step here.
        train_sampling_strategy="random" if tr.packing else "group_by_length",
        completion_only_loss=tr.completion_only_loss,
        activation_checkpointing=gradient_checkpointing,  # transformers 5 name; TRL's default is True
        bf16=precision == "bfloat16",
        fp16=precision == "float16",
        seed=tr.seed,
        data_seed=tr.seed,
        logging_steps=tr.logging_steps,
        save_strategy="steps",
        save_steps=tr.save_steps,
        save_total_limit=2,
        report_to=config.report_to or "none",
        disable_tqdm=True,
        dataset_num_proc=None,
        use_cpu=device == "cpu",
    )
    from datasets import Dataset

    dataset = Dataset.from_list(examples)

    class _Progress(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step >= state.max_steps:
                control.should_log = True  # the loss curve always ends at the final step, whatever logging_steps
            ev.step(state.global_step, state.max_steps, _last(state.log_history, "loss"))

    try:
        trainer = CompletionSFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config, callbacks=[_Progress()])
    except (ValueError, TypeError, RuntimeError, KeyError) as exc:  # peft/trl reject a LoRA setting for this model
        raise TrainError(f"{config.path}: TRL/peft refused the setup: {str(exc).splitlines()[0]}") from exc
    trainer.remove_callback(PrinterCallback)  # with tqdm off, Trainer prints raw log dicts; evalkit shows its own progress
    init_lora(trainer, lo.init, resume=out.resume_from is not None, info=ev.info)
    initial_adapter = save_initial(trainer.model, out.checkpoints, lo.init)

    # --- pre-flight: what will train, and for how long
    trainable, total = trainable_parameters(trainer.model)
    processes = max(1, args.world_size)
    plan = plan_steps(len(trainer.train_dataset), tr.batch_size, tr.grad_accum, processes, tr.epochs, tr.max_steps)
    ev.info(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.3f}%)")
    ev.info(f"examples: {len(examples)} · effective batch: {plan.effective_batch} ({tr.batch_size} × {tr.grad_accum} accumulation × {processes} process) "
            f"· optimizer steps: {plan.total_steps} · precision: {precision} · gradient checkpointing: {'on' if gradient_checkpointing else 'off'}")

    # --- train
    # Under autocast peft's cast of each LoRA input to float32 is undone by the matmul's cast back to
    # bf16: two copies per adapted module and step for nothing (~8% of a CPU step here).
    with disable_input_dtype_casting(trainer.model, active=args.bf16 or args.fp16):
        trainer.train(resume_from_checkpoint=out.resume_from)
    wall = time.time() - t0

    # --- save: the adapter, and a record of how it was made; then swap it into place
    trainer.save_model(str(out.work))
    if initial_adapter is not None:  # PiSSA/OLoRA: saved as a plain LoRA of rank 2r that fits the original base
        trainer.model.save_pretrained(str(out.work), path_initial_model_for_weight_conversion=str(initial_adapter))
    # From the trainer's history, which a checkpoint restores: complete across --resume.
    history = trainer.state.log_history
    losses = [{"step": h["step"], "loss": float(h["loss"]), "lr": float(h.get("learning_rate", 0.0))} for h in history if "loss" in h]
    record = {
        "version": 1,
        "base": {"spec": base.spec, "fingerprint": base.fingerprint, "source": base.source},
        "data": {"examples": len(examples), "sha256": data_hash(examples)},
        "config": config.resolved(),
        "config_sha256": config.sha256,
        "chat_template_sha256": template_hash,
        "precision": precision,
        "gradient_checkpointing": gradient_checkpointing,
        "lora_init": {"method": lo.init, "converted_to_plain_lora": converts_on_save(lo.init)},
        "trainable_parameters": trainable,
        "total_parameters": total,
        "effective_batch": plan.effective_batch,
        "optimizer_steps": trainer.state.global_step,
        "loss_curve": losses,
        "final_loss": losses[-1]["loss"] if losses else None,
        "tokens_seen": int(_last(history, "num_tokens") or 0),
        "train_runtime_s": round(_last(history, "train_runtime") or 0.0, 1),
        "wall_s": round(wall, 1),
        "versions": versions(),
    }
    atomic_write(out.work / TRAIN_RECORD, json.dumps(record, indent=2) + "\n")
    finish_output(out)
    return TrainResult(adapter_dir=out.final, record=record, plan=plan, trainable=trainable, total=total,
                       final_loss=record["final_loss"], wall_s=wall, loss_curve=losses)


def _last(history: list[dict[str, Any]], key: str) -> Any:
    """The latest value of ``key`` in the Trainer's log history, or None."""
    return next((h[key] for h in reversed(history) if key in h), None)
