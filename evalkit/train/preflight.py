"""Checks made before the first training step, where mistakes are cheap.

* settings this machine cannot run well (float16 on a CPU) and loggers that are not installed;
* every ``target_modules`` and ``modules_to_save`` entry matches a module of this base (peft
  only errors when *no* target matches, so ``[q_proj, v_projj]`` would silently train q_proj
  alone, and ignores a ``modules_to_save`` typo), checked on a weightless skeleton of the base
  before its weights load;
* the trainable share of parameters is neither 0% nor 100%, counted in real parameters
  (bitsandbytes packs two 4-bit values per stored element);
* the effective batch and total optimizer steps are computed and shown.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.errors import TrainError

__all__ = [
    "StepPlan",
    "check_device_settings",
    "check_modules",
    "check_modules_to_save",
    "check_target_modules",
    "linear_module_names",
    "model_skeleton",
    "plan_steps",
    "real_numel",
    "trainable_parameters",
]


def check_device_settings(precision: str, compute_dtype: str, quantization: str, report_to: list[str], device: str, where: str) -> None:
    """Refuse settings that would crawl or crash on this machine.

    Raises:
        TrainError: float16 on a CPU (no native fp16 arithmetic: emulated, many times slower than
            bfloat16 or float32), or a ``report_to`` logger that is not installed.
    """
    if device == "cpu" and precision == "float16":
        raise TrainError(f"{where}: training.precision: float16 on a CPU is emulated and crawls; use bfloat16 or float32 "
                         "(or auto: bfloat16 where the CPU computes it natively)")
    if device == "cpu" and quantization != "none" and compute_dtype == "float16":
        raise TrainError(f"{where}: quantization.compute_dtype: float16 on a CPU is emulated and crawls; use bfloat16 or float32")
    for logger in report_to:
        if importlib.util.find_spec(logger) is None:
            raise TrainError(f"{where}: report_to: {logger} is not installed; pip install {logger}, or remove report_to")


def model_skeleton(path: Path) -> Any:
    """The base's module tree on the meta device: names and types, no weights loaded."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as exc:
        raise TrainError(f"{path}: cannot build a causal language model from its config.json: {str(exc).splitlines()[0]}") from exc


def check_modules(model: Any, target_modules: str | list[str], modules_to_save: list[str]) -> None:
    """``check_target_modules`` and ``check_modules_to_save``, and no module in both."""
    check_target_modules(model, target_modules)
    check_modules_to_save(model, modules_to_save)
    if target_modules == "all-linear":  # peft's all-linear: every Linear but the output layer
        kinds = ("Linear", "Linear4bit", "Linear8bitLt")
        linear = {full.rsplit(".", 1)[-1] for full, mod in model.named_modules() if full and type(mod).__name__ in kinds} - {"lm_head"}
    else:
        linear = set(target_modules)
    both = [m for m in modules_to_save if m in linear or m.rsplit(".", 1)[-1] in linear]
    if both:
        raise TrainError(f"lora.modules_to_save: {', '.join(repr(b) for b in both)} is also adapted by lora.target_modules; "
                         "a module is either adapted with LoRA or trained in full, not both: remove it from one list")


def linear_module_names(model: Any) -> list[str]:
    """Leaf names of the modules LoRA can target (Linear, Embedding, Conv1D and their quantized forms)."""
    names = set()
    for full, module in model.named_modules():
        kind = type(module).__name__
        if kind in ("Linear", "Linear4bit", "Linear8bitLt", "Embedding", "Conv1D") and full:
            names.add(full.rsplit(".", 1)[-1])
    return sorted(names)


def check_target_modules(model: Any, target_modules: str | list[str]) -> None:
    """Refuse any ``target_modules`` entry that matches no module of the base.

    Raises:
        TrainError: naming the entries that match nothing and listing the valid names.
    """
    if target_modules == "all-linear":
        return
    valid = linear_module_names(model)
    # A full dotted name is accepted only when it names a supported leaf module: peft rejects containers.
    leaves = {full for full, m in model.named_modules() if full and full.rsplit(".", 1)[-1] in valid and not list(m.children())}
    bad = [t for t in target_modules if t not in valid and t not in leaves and not any(n.endswith("." + t) for n in leaves)]
    if bad:
        raise TrainError(
            f"lora.target_modules: {', '.join(repr(b) for b in bad)} match no module of this base; "
            f"valid names: {', '.join(valid)} (or use all-linear)"
        )


def check_modules_to_save(model: Any, modules_to_save: list[str]) -> None:
    """Refuse any ``modules_to_save`` entry that names no module of the base.

    Raises:
        TrainError: naming the entries that match nothing and listing the module names there are.
    """
    names = [full for full, _ in model.named_modules() if full]
    bad = [m for m in modules_to_save if not any(full == m or full.endswith("." + m) for full in names)]
    if bad:
        leaves = sorted({full.rsplit(".", 1)[-1] for full, mod in model.named_modules() if full and not list(mod.children())})
        raise TrainError(f"lora.modules_to_save: {', '.join(repr(b) for b in bad)} match no module of this base; "
                         f"module names: {', '.join(leaves)}")


def real_numel(param: Any) -> int:
    """Parameters a tensor stands for: a bitsandbytes 4-bit tensor stores two values per byte, so its numel() is half."""
    quant_state = getattr(param, "quant_state", None)
    if quant_state is not None and getattr(quant_state, "shape", None) is not None:
        return math.prod(quant_state.shape)
    return int(param.numel())


def trainable_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts, in real parameters for quantized bases.

    Raises:
        TrainError: when nothing is trainable, or everything is (then it is not LoRA).
    """
    trainable = sum(real_numel(p) for p in model.parameters() if p.requires_grad)
    total = sum(real_numel(p) for p in model.parameters())
    if trainable == 0:
        raise TrainError("0 trainable parameters: the adapter would learn nothing; check lora.target_modules and modules_to_save")
    if trainable == total:
        raise TrainError("100% of parameters are trainable: this is full fine-tuning, not LoRA; check lora.modules_to_save")
    return trainable, total


@dataclass(frozen=True)
class StepPlan:
    """How many examples each optimizer step sees and how many steps the run takes."""

    effective_batch: int
    """per-device batch × gradient accumulation × processes."""
    steps_per_epoch: int
    total_steps: int


def plan_steps(n_examples: int, batch_size: int, grad_accum: int, processes: int = 1, epochs: float = 1.0, max_steps: int | None = None) -> StepPlan:
    """The optimizer-step arithmetic of ``transformers.Trainer``.

    The dataloader yields ceil(n / (batch × processes)) batches per epoch; an optimizer
    step takes ``grad_accum`` of them, and a last partial accumulation still steps,
    so steps/epoch = ceil(batches / grad_accum). ``max_steps`` overrides epochs.
    """
    if n_examples <= 0:
        raise TrainError("no training examples")
    effective = batch_size * grad_accum * processes
    batches = math.ceil(n_examples / (batch_size * processes))
    per_epoch = max(1, math.ceil(batches / grad_accum))
    total = max_steps if max_steps else math.ceil(per_epoch * epochs)
    return StepPlan(effective_batch=effective, steps_per_epoch=per_epoch, total_steps=total)
