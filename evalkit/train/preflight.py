"""Checks made before the first training step, where mistakes are cheap.

* every ``target_modules`` entry matches a module of this base (peft only errors
  when *none* match, so ``[q_proj, v_projj]`` would silently train q_proj alone);
* the trainable share of parameters is neither 0% nor 100%;
* the effective batch and total optimizer steps are computed and shown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from evalkit.errors import TrainError

__all__ = ["StepPlan", "check_target_modules", "linear_module_names", "plan_steps", "trainable_parameters"]


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


def trainable_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts.

    Raises:
        TrainError: when nothing is trainable, or everything is (then it is not LoRA).
    """
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
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
