"""LoRA initialisations, and what each needs beyond peft's ``init_lora_weights`` flag.

    default   A random (Kaiming), B zero: the adapter starts as the identity
    gaussian  A Gaussian, B zero
    pissa     A, B from the SVD of each base weight, which peft then replaces by the residual
    olora     the same with a QR decomposition
    eva       A from the SVD of each layer's *inputs* over training batches (a data pass;
              peft's ``initialize_lora_eva_weights``), B zero
    loftq     refused (see ``check_init``)

PiSSA and OLoRA change the base weights, so the adapter they train only fits that
changed base. evalkit saves them converted to a plain LoRA of rank 2r that fits the
original base (peft's ``path_initial_model_for_weight_conversion``), so ``evalkit run``,
``adapter merge`` and vLLM see the model that was trained.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from evalkit.errors import TrainError

__all__ = ["INITIAL_ADAPTER", "check_init", "converts_on_save", "init_lora", "peft_init_kwargs", "save_initial"]

INITIAL_ADAPTER = "initial-adapter"
"""Folder under ``checkpoints/`` holding a PiSSA/OLoRA adapter as initialised (for the conversion at save)."""


def check_init(init: str, quantization: str, where: str) -> None:
    """Refuse initialisations that cannot be done faithfully, before anything is loaded.

    Raises:
        TrainError: ``loftq`` (any setting), or ``pissa``/``olora`` on a quantized base.
    """
    if init == "loftq":
        raise TrainError(
            f"{where}: lora.init: loftq is not supported: peft's LoftQ runs only on CUDA and replaces the base weights "
            "with their 4-bit approximation, which `evalkit run` would not reproduce; use init: default with "
            "quantization.mode: nf4 (QLoRA), or init: pissa/eva on a full-precision base"
        )
    if init in ("pissa", "olora") and quantization != "none":
        raise TrainError(
            f"{where}: lora.init: {init} decomposes the base weights and cannot work on a {quantization} base "
            "(peft needs them in float); use init: default or eva with quantization, or quantization.mode: none"
        )


def peft_init_kwargs(init: str) -> dict[str, Any]:
    """``LoraConfig`` arguments for ``init``."""
    if init == "default":
        return {"init_lora_weights": True}
    if init == "eva":
        from peft import EvaConfig

        # rho=1: every layer keeps the configured rank (no redistribution), so the adapter has the rank
        # the config names and a --resume rebuilds the same shapes before loading its checkpoint.
        return {"init_lora_weights": "eva", "eva_config": EvaConfig(rho=1.0)}
    return {"init_lora_weights": init}


def converts_on_save(init: str) -> bool:
    """PiSSA and OLoRA adapters are converted to plain LoRA when saved."""
    return init in ("pissa", "olora")


def init_lora(trainer: Any, init: str, *, resume: bool, info: Callable[[str], None]) -> None:
    """Finish a data-driven initialisation after TRL has wrapped the model with peft.

    EVA runs forward passes over training batches and sets each A from the top singular
    vectors of that layer's inputs on completion tokens. On ``resume`` the checkpoint's
    weights replace the initialisation anyway, so the data pass is skipped.
    """
    if init != "eva" or resume:
        return
    from peft import initialize_lora_eva_weights

    keys = ("input_ids", "attention_mask", "position_ids")

    def forward(model: Any, batch: dict[str, Any]) -> Any:
        # The collator adds fields the model's forward does not take; labels only mask the SVD inputs.
        return model(**{k: v for k, v in batch.items() if k in keys})

    try:
        initialize_lora_eva_weights(trainer.model, dataloader=trainer.get_train_dataloader(), forward_fn=forward, show_progress_bar=False)
    except (ValueError, RuntimeError) as exc:
        raise TrainError(f"lora.init: eva: peft could not initialise from the training data: {str(exc).splitlines()[0]}") from exc
    info("EVA: LoRA A matrices set from the singular vectors of each layer's inputs on the training data")


def save_initial(model: Any, checkpoints: Path, init: str) -> Path | None:
    """Keep a PiSSA/OLoRA adapter as initialised, for the conversion at save (once per run)."""
    if not converts_on_save(init):
        return None
    path = checkpoints / INITIAL_ADAPTER
    if not (path / "adapter_config.json").exists():
        config = model.peft_config["default"]
        config.init_lora_weights = True  # peft's recipe: the initial adapter is saved as a plain LoRA
        try:
            model.save_pretrained(str(path))
        finally:
            config.init_lora_weights = init
    return path
