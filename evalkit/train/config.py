"""The training config: a YAML file, validated against ``schemas/train.schema.json``.

Defaults are chosen for a CPU run of a small model and set deliberately, never left
to TRL, whose SFTConfig turns on bf16 and gradient checkpointing and caps length at
1024 unless told otherwise.
"""

from __future__ import annotations

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
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"
    """``all-linear`` or a list of module names; every name must match a module of the base."""
    bias: Literal["none", "all", "lora_only"] = "none"
    use_rslora: bool = False
    """Scale by alpha/√r instead of alpha/r (rank-stabilized LoRA)."""
    use_dora: bool = False
    modules_to_save: list[str] = field(default_factory=list)
    init: str = "default"


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


def load_train_config(path: str | Path) -> TrainConfig:
    """Read and validate a training config.

    Raises:
        TrainError: malformed YAML or a schema violation, naming the file and field.
    """
    path = Path(path)
    try:
        doc = load_yaml(path, SuiteError)
    except SuiteError as exc:
        raise TrainError(str(exc)) from exc
    if not isinstance(doc, dict):
        raise TrainError(f"{path}: a training config must be a YAML mapping with data and output_dir")
    validate_against(doc, package_schema("train.schema.json"), str(path), TrainError)
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
