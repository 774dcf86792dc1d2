"""The training config: a YAML file, validated against ``schemas/train.schema.json``.

Defaults are chosen for a CPU run of a small model and set deliberately, never left
to TRL, whose SFTConfig turns on bf16 and gradient checkpointing and caps length at
1024 unless told otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evalkit._util import load_yaml, package_schema, sha256_bytes, validate_against
from evalkit.errors import SuiteError, TrainError

__all__ = ["LoraSpec", "QuantSpec", "TrainConfig", "TrainingSpec", "load_train_config"]


@dataclass(frozen=True)
class LoraSpec:
    r: int = 8
    alpha: float = 16
    dropout: float = 0.0
    """peft's default. Dropout draws a random mask over every LoRA input: ~20% of a CPU training step here."""
    target_modules: str | list[str] = "all-linear"
    """``all-linear`` or a list of module names; every name must match a module of the base."""
    bias: Literal["none", "all", "lora_only"] = "none"
    use_rslora: bool = False
    """Scale by alpha/√r instead of alpha/r (rank-stabilized LoRA)."""
    use_dora: bool = False
    modules_to_save: list[str] = field(default_factory=list)
    """Modules trained in full and saved with the adapter (e.g. ``lm_head``); each must match a module."""
    init: str = "default"
    """default, gaussian, pissa, olora or eva (a data pass); see ``train/lora_init.py``. loftq is refused."""


@dataclass(frozen=True)
class QuantSpec:
    mode: Literal["none", "nf4", "fp4", "int8"] = "none"
    """none, 4-bit nf4/fp4 (QLoRA) or 8-bit, with bitsandbytes."""
    double_quant: bool = True
    compute_dtype: str = "float32"


@dataclass(frozen=True)
class TrainingSpec:
    epochs: float = 1.0
    max_steps: int | None = None
    """When set, overrides epochs."""
    learning_rate: float = 2e-4
    """LoRA wants a much higher rate than full fine-tuning (TRL's 2e-5 barely moves an adapter)."""
    scheduler: str = "cosine"
    warmup_ratio: float = 0.05
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 512
    packing: bool = False
    completion_only_loss: bool = True
    """Learn the assistant turn only: the prompt is masked out of the loss."""
    gradient_checkpointing: bool | Literal["auto"] = "auto"
    """auto: only on CUDA, where memory is the limit; on CPU it recomputes activations for memory a
    small model does not need (benchmarks/bench_train.py measures the cost)."""
    precision: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """auto: bf16 where the hardware computes it natively (CUDA GPUs that support it, CPUs with
    AVX512-BF16 or AMX), float32 elsewhere. The adapter is saved in float32 either way."""
    seed: int = 0
    logging_steps: int = 5
    save_steps: int = 25
    weight_decay: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    path: Path
    sha256: str
    output_dir: Path
    base: str = "smollm2-135m-instruct"
    data_suite: Path | None = None
    data_path: Path | None = None
    data_limit: int | None = None
    eval_suite: Path | None = None
    lora: LoraSpec = field(default_factory=LoraSpec)
    quantization: QuantSpec = field(default_factory=QuantSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    report_to: list[str] = field(default_factory=list)

    def resolved(self) -> dict[str, Any]:
        """The full config with every default filled in (recorded in evalkit-train.json)."""
        from dataclasses import asdict

        doc = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in doc.items()}


def _check_alternatives(doc: dict[str, Any], where: str) -> None:
    """Fields the schema gives as alternatives (oneOf), whose schema messages would not say what to write."""
    data = doc.get("data")
    if isinstance(data, dict) and ("suite" in data) == ("path" in data):
        raise TrainError(f"{where}: data: give exactly one of suite (a suite with train_data) or path (a JSONL file)")
    lora = doc.get("lora")
    targets = lora.get("target_modules") if isinstance(lora, dict) else None
    if targets is not None and targets != "all-linear" and not isinstance(targets, list):
        raise TrainError(f"{where}: lora.target_modules: {targets!r} must be all-linear or a list of module names, e.g. [q_proj, v_proj]")
    training = doc.get("training")
    checkpointing = training.get("gradient_checkpointing") if isinstance(training, dict) else None
    if checkpointing is not None and checkpointing != "auto" and not isinstance(checkpointing, bool):
        raise TrainError(f"{where}: training.gradient_checkpointing: {checkpointing!r} must be true, false or auto")
    report_to = doc.get("report_to")
    loggers = [report_to] if isinstance(report_to, str) else report_to
    if report_to is not None and (not isinstance(loggers, list) or not all(isinstance(x, str) for x in loggers)
                                  or not set(loggers) <= {"none", "tensorboard", "wandb"}
                                  or (isinstance(report_to, list) and "none" in loggers)):
        raise TrainError(f"{where}: report_to: {report_to!r} must be none, tensorboard, wandb or a list of tensorboard/wandb")


def _check_finite(doc: Any, where: str, field: str = "") -> None:
    """JSON Schema's bounds let YAML's .nan and .inf through (every comparison with NaN is false)."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            _check_finite(value, where, f"{field}.{key}" if field else str(key))
    elif isinstance(doc, float) and not math.isfinite(doc):
        raise TrainError(f"{where}: {field}: {doc} is not a finite number; give a number")


# Fields the schema declares integer: YAML's 8.0 passes as one but peft and torch want an int.
_INTEGERS = {"data": ("limit",), "lora": ("r",),
             "training": ("max_steps", "batch_size", "grad_accum", "max_length", "seed", "logging_steps", "save_steps")}


def _whole_numbers(doc: dict[str, Any]) -> dict[str, Any]:
    out = dict(doc)
    for section, keys in _INTEGERS.items():
        if isinstance(out.get(section), dict):
            out[section] = {k: (int(v) if k in keys else v) for k, v in out[section].items()}
    return out


def load_train_config(path: str | Path) -> TrainConfig:
    """Read and validate a training config.

    Raises:
        TrainError: malformed YAML or a schema violation, naming the file and field.
    """
    path = Path(path)
    if path.is_dir():
        raise TrainError(f"{path}: is a folder; give the training config's YAML file")
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TrainError(f"{path}: not valid UTF-8 (byte {exc.start + 1}); save the config as UTF-8") from None
    except OSError:
        pass  # load_yaml names a missing or unreadable file
    try:
        doc = load_yaml(path, SuiteError)
    except SuiteError as exc:
        raise TrainError(str(exc)) from exc
    if not isinstance(doc, dict):
        raise TrainError(f"{path}: a training config must be a YAML mapping with data and output_dir")
    _check_alternatives(doc, str(path))
    validate_against(doc, package_schema("train.schema.json"), str(path), TrainError)
    _check_finite(doc, str(path))
    doc = _whole_numbers(doc)
    base_dir = path.parent.resolve()
    data = doc["data"]
    report_to = doc.get("report_to", "none")
    suite = (base_dir / data["suite"]).resolve() if "suite" in data else None
    return TrainConfig(
        path=path.resolve(),
        sha256=sha256_bytes(path.read_bytes()),
        output_dir=(base_dir / doc["output_dir"]).resolve(),
        base=doc.get("base", "smollm2-135m-instruct"),
        data_suite=suite,
        data_path=(base_dir / data["path"]).resolve() if "path" in data else None,
        data_limit=data.get("limit"),
        eval_suite=(base_dir / doc["eval_suite"]).resolve() if "eval_suite" in doc else suite,
        lora=LoraSpec(**doc.get("lora", {})),
        quantization=QuantSpec(**doc.get("quantization", {})),
        training=TrainingSpec(**doc.get("training", {})),
        report_to=[] if report_to == "none" else ([report_to] if isinstance(report_to, str) else list(report_to)),
    )
