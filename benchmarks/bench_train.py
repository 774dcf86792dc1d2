"""Training throughput: evalkit's defaults against TRL's SFTConfig defaults, same data, same LoRA, same steps.

    python benchmarks/bench_train.py [--steps 8] [--examples 64] [--repeat 1] [--ablate]

Both arms train the same LoRA (the shipped incident-triage config's r, alpha, dropout and
targets) on the same examples for the same number of optimizer steps with the same
per-device batch, through TRL's SFTTrainer with ``peft_config``. evalkit's arm is
``evalkit.train.train`` as a user runs it: bf16 only where the CPU has it natively, no
gradient checkpointing on CPU, length-grouped batches, a LoRA-sized learning rate, and
``CompletionSFTTrainer`` (the LM head on learned positions only, causal attention without
the padding mask, no float32 round trip of LoRA inputs under autocast). TRL's arm takes
SFTConfig's defaults: bf16 autocast over float32 weights, gradient checkpointing, lr 2e-5,
max_length 1024, random batches.

Prints training tokens/s (real, non-pad tokens over the Trainer's train_runtime), train
time, the final and mean training loss (every step is logged; the arms see their batches in
different orders, so compare the means), and evalkit's ratio to TRL. ``--repeat N``
alternates the arms N times and reports medians (on a shared machine, compare ratios).
``--ablate`` adds evalkit's arm with one change undone at a time, to show what each buys
(and, where the config has no LoRA dropout, both arms with dropout 0.05, compared with each
other).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("EVALKIT_HOME", str(REPO / ".cache" / "evalkit"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run_evalkit(config: Any, out: Path) -> dict[str, Any]:
    from evalkit.train import train

    result = train(replace(config, output_dir=out))
    r = result.record
    curve = [c["loss"] for c in r["loss_curve"]]
    return {"tokens": r["tokens_seen"], "train_s": r["train_runtime_s"], "loss": r["final_loss"], "mean_loss": statistics.mean(curve),
            "precision": r["precision"], "checkpointing": r["gradient_checkpointing"], "lr": config.training.learning_rate}


def run_trl_defaults(config: Any, out: Path) -> dict[str, Any]:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from evalkit.models import resolve_model
    from evalkit.models.hf import load_tokenizer
    from evalkit.train.data import examples_from_suite

    base = resolve_model(config.base)
    tok = load_tokenizer(base)
    tok.padding_side = "right"
    examples = examples_from_suite(config.data_suite, config.data_limit)
    lo, tr = config.lora, config.training
    args = SFTConfig(output_dir=str(out), max_steps=tr.max_steps, per_device_train_batch_size=tr.batch_size,
                     logging_steps=1, report_to="none", save_strategy="no", disable_tqdm=True, use_cpu=True)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(base.path), args=args, train_dataset=Dataset.from_list(examples),
                         processing_class=tok, peft_config=LoraConfig(r=lo.r, lora_alpha=lo.alpha, lora_dropout=lo.dropout,
                                                                      target_modules=lo.target_modules, task_type="CAUSAL_LM"))
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    hist = trainer.state.log_history
    curve = [h["loss"] for h in hist if "loss" in h]
    return {"tokens": int(next(h["num_tokens"] for h in reversed(hist) if "num_tokens" in h)),
            "train_s": next(h["train_runtime"] for h in reversed(hist) if "train_runtime" in h),
            "loss": curve[-1], "mean_loss": statistics.mean(curve),
            "precision": "bfloat16" if args.bf16 else "float32", "checkpointing": args.gradient_checkpointing, "lr": args.learning_rate}


# --- ablations: evalkit's arm with one change undone


@contextlib.contextmanager
def trl_loss() -> Iterator[None]:
    from trl import SFTTrainer

    from evalkit.train.sft import CompletionSFTTrainer

    with mock.patch.object(CompletionSFTTrainer, "compute_loss", SFTTrainer.compute_loss):
        yield


@contextlib.contextmanager
def padding_mask() -> Iterator[None]:
    from evalkit.train.sft import CompletionSFTTrainer

    with mock.patch.object(CompletionSFTTrainer, "causal_only", False):
        yield


@contextlib.contextmanager
def input_casts() -> Iterator[None]:
    import peft.helpers

    with mock.patch.object(peft.helpers, "disable_input_dtype_casting", lambda model, active=True: contextlib.nullcontext()):
        yield


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--examples", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=1, help="alternate the arms this many times; report medians")
    ap.add_argument("--ablate", action="store_true", help="also run evalkit's arm with each speed change undone")
    args = ap.parse_args()
    from evalkit._util import quiet_libraries

    quiet_libraries()
    import datasets

    datasets.disable_progress_bars()
    from evalkit.train import load_train_config

    config = load_train_config(REPO / "suites/incident-triage.train.yaml")
    config = replace(config, data_limit=args.examples, eval_suite=None,
                     training=replace(config.training, max_steps=args.steps, save_steps=10_000, logging_steps=1))
    arms: dict[str, Callable[[Path], dict[str, Any]]] = {
        "evalkit defaults": lambda out: run_evalkit(config, out),
        "TRL defaults": lambda out: run_trl_defaults(config, out),
    }
    refs: dict[str, str] = {}
    if args.ablate:
        for name, undo in (("− loss on learned rows", trl_loss), ("− causal, no pad mask", padding_mask), ("− no input casts", input_casts)):
            arms[f"evalkit {name}"] = lambda out, undo=undo: _within(undo, lambda: run_evalkit(config, out))
        if config.lora.dropout == 0:  # both arms with the dropout evalkit's default turned off, compared with each other
            dropped = replace(config, lora=replace(config.lora, dropout=0.05))
            arms["evalkit, lora dropout 0.05"] = lambda out: run_evalkit(dropped, out)
            arms["TRL, lora dropout 0.05"] = lambda out: run_trl_defaults(dropped, out)
            refs["evalkit, lora dropout 0.05"] = "TRL, lora dropout 0.05"
    tmp = Path(tempfile.mkdtemp(prefix="evalkit-bench-train-"))
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in arms}
    for rep in range(args.repeat):
        for i, (name, fn) in enumerate(arms.items()):
            t0 = time.perf_counter()
            row = fn(tmp / f"{rep}-{i}")
            row["wall_s"] = time.perf_counter() - t0
            row["rate"] = row["tokens"] / row["train_s"]
            runs[name].append(row)
            print(f"  [{rep + 1}/{args.repeat}] {name}: {row['rate']:.1f} tokens/s, mean loss {row['mean_loss']:.3f}", flush=True)
    print(f"incident-triage, {args.examples} examples, {args.steps} optimizer steps × batch {config.training.batch_size}, "
          f"embedded SmolLM2-135M, LoRA r={config.lora.r} dropout {config.lora.dropout:g} in every arm, {os.cpu_count()} CPUs, "
          f"medians of {args.repeat}")
    print(f"{'':<28} {'tokens/s':>9} {'train s':>8} {'final loss':>11} {'mean loss':>10}  precision  grad-ckpt  lr        vs TRL")
    for name, rows in runs.items():
        ref_rows = runs[refs.get(name, "TRL defaults")]
        ratio = statistics.median(r["rate"] / t["rate"] for r, t in zip(rows, ref_rows))
        med = {k: statistics.median(r[k] for r in rows) for k in ("rate", "train_s", "loss", "mean_loss")}
        r0 = rows[0]
        print(f"{name:<28} {med['rate']:>9.1f} {med['train_s']:>8.1f} {med['loss']:>11.3f} {med['mean_loss']:>10.3f}  "
              f"{r0['precision']:<9}  {str(r0['checkpointing']):<9}  {r0['lr']:<8g}  {ratio:.2f}×" + (f" ({refs[name]})" if name in refs else ""))
    ek, ref = runs["evalkit defaults"], runs["TRL defaults"]
    lower = statistics.median(r["mean_loss"] for r in ek) <= statistics.median(r["mean_loss"] for r in ref)
    print(f"evalkit/TRL tokens/s: {statistics.median(r['rate'] / t['rate'] for r, t in zip(ek, ref)):.2f}× at "
          f"{'equal or lower' if lower else 'HIGHER'} mean loss over the same steps")


def _within(ctx: Callable[[], contextlib.AbstractContextManager[None]], fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    with ctx():
        return fn()


if __name__ == "__main__":
    main()
