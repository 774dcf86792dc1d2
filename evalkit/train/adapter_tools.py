"""``evalkit adapter inspect`` and ``evalkit adapter merge``.

inspect reads only the adapter's config and safetensors header: rank, alpha,
scaling, targets, size, the base it was trained on, and whether vLLM can serve it
(vLLM's LoRA support requires r ≤ ``--max-lora-rank``, no ``modules_to_save``, no
DoRA, and ``bias: none``).

merge folds the adapter into the base (``merge_and_unload``) and checks
numerically that merged and unmerged logits agree on a few prompts.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import safe_open

from evalkit._util import check_writable_dir
from evalkit.errors import AdapterError
from evalkit.models.adapters import AdapterRef, base_shapes, check_compatible, resolve_adapter
from evalkit.models.hf import load_tokenizer, quantization_config, render_chat
from evalkit.models.resolve import resolve_model

__all__ = ["AdapterReport", "MergeResult", "inspect_adapter", "merge_adapter"]


@dataclass(frozen=True)
class AdapterReport:
    """What an adapter is and where it can be served."""

    path: Path
    r: int
    max_rank: int
    """Largest rank in the adapter (``rank_pattern`` can raise it per module)."""
    alpha: float
    use_rslora: bool
    scaling: float
    """alpha / r, or alpha / √r with rsLoRA."""
    use_dora: bool
    bias: str
    target_modules: list[str]
    modules_to_save: list[str]
    parameters: int
    size_bytes: int
    base: str
    """``base_model_name_or_path`` from the config."""
    trained_by_evalkit: bool
    vllm_ok: bool
    vllm_reasons: list[str] = field(default_factory=list)
    """Why vLLM cannot serve it (empty when it can)."""
    compatible_with: str | None = None
    """The --base it was checked against, when one was given."""


def inspect_adapter(path: str | Path, *, base: str | None = None, max_lora_rank: int = 16, allow_pickle: bool = False) -> AdapterReport:
    """Describe an adapter and give a vLLM deployability verdict.

    Raises:
        AdapterError: ``max_lora_rank`` below 1, not an adapter, or (with ``base``) built for another base.
    """
    if max_lora_rank < 1:
        raise AdapterError(f"--max-lora-rank {max_lora_rank}: must be at least 1 (the largest LoRA rank the vLLM server accepts, e.g. 16)")
    ref = resolve_adapter(str(path), allow_pickle=allow_pickle)
    cfg = ref.config
    where = ref.path / "adapter_config.json"
    r = cfg.get("r")
    if not _is_int(r) or r < 1:
        raise AdapterError(f"{where}: r is {r!r}; a LoRA adapter needs a whole-number rank r >= 1")
    alpha = cfg.get("lora_alpha", r)
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not math.isfinite(alpha):
        raise AdapterError(f"{where}: lora_alpha is {alpha!r}; it must be a number")
    pattern = cfg.get("rank_pattern") or {}
    if not isinstance(pattern, dict) or not all(_is_int(v) and v >= 1 for v in pattern.values()):
        raise AdapterError(f"{where}: rank_pattern must map module names to whole-number ranks >= 1")
    max_rank = max([r, *pattern.values()])
    rslora = bool(cfg.get("use_rslora"))
    targets = cfg.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else sorted(targets)
    to_save = list(cfg.get("modules_to_save") or [])
    bias = str(cfg.get("bias", "none"))
    dora = bool(cfg.get("use_dora"))
    reasons = []
    if max_rank > max_lora_rank:
        reasons.append(f"rank {max_rank} > --max-lora-rank {max_lora_rank}")
    if to_save:
        reasons.append(f"modules_to_save {to_save} (vLLM loads LoRA matrices only)")
    if dora:
        reasons.append("DoRA (use_dora) is not supported by vLLM")
    if bias != "none":
        reasons.append(f"bias {bias!r} (vLLM needs bias: none)")
    compatible = None
    if base is not None:
        resolved = resolve_model(base)
        check_compatible(ref, resolved, base_shapes(resolved))
        compatible = base
    return AdapterReport(
        path=ref.path, r=r, max_rank=max_rank, alpha=float(alpha), use_rslora=rslora,
        scaling=float(alpha) / math.sqrt(r) if rslora else float(alpha) / r, use_dora=dora, bias=bias,
        target_modules=targets, modules_to_save=to_save, parameters=_parameters(ref), size_bytes=ref.weights.stat().st_size,
        base=str(cfg.get("base_model_name_or_path") or "?"), trained_by_evalkit=ref.train_record is not None,
        vllm_ok=not reasons, vllm_reasons=reasons, compatible_with=compatible,
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parameters(ref: AdapterRef) -> int:
    if ref.weights.suffix != ".safetensors":
        return 0
    with safe_open(str(ref.weights), framework="pt") as fh:
        return sum(math.prod(fh.get_slice(k).get_shape()) for k in fh.keys())


@dataclass(frozen=True)
class MergeResult:
    out_dir: Path
    """Where the merged model was written (only when ``agree``)."""
    max_abs_diff: float
    """Largest |merged − unmerged| logit over the check prompts."""
    max_logit: float
    """Largest |logit| seen, for scale."""
    agree: bool
    quantized: bool
    warnings: list[str]


CHECK_PROMPTS = [
    "Summarize: the primary database is down and every checkout fails.",
    "What is 17 times 3?",
    "Write one sentence about the sea.",
]


def merge_adapter(path: str | Path, out: str | Path, *, base: str, quantize: str = "none", tolerance: float | None = None,
                  prompts: list[str] | None = None, allow_pickle: bool = False) -> MergeResult:
    """Merge an adapter into its base, save a standalone model, and check merged vs unmerged logits.

    Args:
        tolerance: largest acceptable logit difference; default 1e-3 for float bases and 0.5 for
            quantized ones (merging into 4-bit weights rounds the sum back to 4 bits).

    Raises:
        AdapterError: a negative or non-finite ``tolerance``, the adapter does not fit the base, or the
            merged model cannot be saved.
    """
    if tolerance is not None and not (math.isfinite(tolerance) and tolerance >= 0):
        raise AdapterError(f"--tolerance {tolerance}: must be a finite number >= 0 (the largest acceptable logit difference, e.g. 1e-3)")
    ref = resolve_adapter(str(path), allow_pickle=allow_pickle)
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise AdapterError(f"--out {out}: is a file; give a new or empty folder for the merged model")
    if out == ref.path or (out.exists() and any(out.iterdir())):
        raise AdapterError(f"--out {out}: must be a new or empty folder (not the adapter's own); choose another path")
    check_writable_dir(out.parent, "--out folder", AdapterError)  # before the base loads, not after the merge
    model_ref = resolve_model(base)
    check_compatible(ref, model_ref, base_shapes(model_ref))
    # imported only now: torch, peft and transformers take seconds to import, and every check above is cheap
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(model_ref)
    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if quantize != "none":
        kwargs["quantization_config"] = quantization_config(quantize)
    model = AutoModelForCausalLM.from_pretrained(model_ref.path, **kwargs)
    model = PeftModel.from_pretrained(model, str(ref.path)).eval()
    texts = [render_chat(tok, [{"role": "user", "content": p}]) for p in (prompts or CHECK_PROMPTS)]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        before = model(**enc).logits.float()
        merged = model.merge_and_unload()
        after = merged(**enc).logits.float()
    mask = enc["attention_mask"].bool()
    diff = float((before - after).abs()[mask].max())
    scale = float(before.abs()[mask].max())
    quantized = quantize != "none"
    tol = tolerance if tolerance is not None else (0.5 if quantized else 1e-3)
    warnings = []
    if quantized:
        warnings.append("the base is quantized: merging rounds base + adapter back to 4/8 bits, so the merged model "
                        "is not exactly the adapter you evaluated; evaluate the merged model before deploying it")
    agree = diff <= tol
    if agree:  # a merged model that disagrees with the adapter it came from is not written
        tmp = out.with_name(f".{out.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            merged.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            if out.exists():
                out.rmdir()
            tmp.rename(out)
        except (OSError, ValueError, NotImplementedError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise AdapterError(f"cannot save the merged model to {out}: {str(exc).splitlines()[0]}") from exc
    return MergeResult(out_dir=out, max_abs_diff=diff, max_logit=scale, agree=agree, quantized=quantized, warnings=warnings)
