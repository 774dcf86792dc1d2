"""Training throughput: evalkit's CPU defaults against TRL's SFTConfig defaults, same data, same steps.

    python benchmarks/bench_train.py [--steps 8] [--examples 64]

Both runs train the same LoRA (the shipped incident-triage config's r, alpha and
targets) on the same examples for the same number of optimizer steps with the same
per-device batch. evalkit sets its defaults deliberately (bf16 only where the CPU
has it natively, no gradient checkpointing on CPU, lr 2e-4-class rates for LoRA,
max_length 512); TRL's defaults turn on bf16 and gradient checkpointing and use
lr 2e-5 with max_length 1024. Prints training tokens/s, wall time, and the final and mean
training loss (the final loss is one batch's; with length-grouped batches the two runs see
their batches in different orders, so compare the mean too).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("EVALKIT_HOME", str(REPO / ".cache" / "evalkit"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run_evalkit(config, out: Path) -> dict:
    from evalkit.train import train

    result = train(replace(config, output_dir=out))
    r = result.record
    curve = [c["loss"] for c in r["loss_curve"]]
    return {"tokens": r["tokens_seen"], "train_s": r["train_runtime_s"], "loss": r["final_loss"], "mean_loss": sum(curve) / len(curve),
            "precision": r["precision"], "checkpointing": r["gradient_checkpointing"], "lr": config.training.learning_rate}


def run_trl_defaults(config, out: Path) -> dict:
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
            "loss": curve[-1], "mean_loss": sum(curve) / len(curve),
            "precision": "bfloat16" if args.bf16 else "float32", "checkpointing": args.gradient_checkpointing, "lr": args.learning_rate}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--examples", type=int, default=64)
    args = ap.parse_args()
    from evalkit._util import quiet_libraries

    quiet_libraries()

    from evalkit.train import load_train_config

    config = load_train_config(REPO / "suites/incident-triage.train.yaml")
    config = replace(config, data_limit=args.examples, eval_suite=None,
                     training=replace(config.training, max_steps=args.steps, save_steps=10_000, logging_steps=1))
    tmp = Path(tempfile.mkdtemp(prefix="evalkit-bench-train-"))
    rows = {}
    for name, fn in (("evalkit defaults", run_evalkit), ("TRL defaults", run_trl_defaults)):
        t0 = time.perf_counter()
        rows[name] = fn(config, tmp / name.split()[0])
        rows[name]["wall_s"] = time.perf_counter() - t0
    print(f"incident-triage, {args.examples} examples, {args.steps} optimizer steps × batch {config.training.batch_size}, embedded SmolLM2-135M")
    print(f"{'':<18} {'tokens/s':>9} {'train s':>8} {'final loss':>11} {'mean loss':>10}  precision  grad-ckpt  lr")
    ref = rows["TRL defaults"]["tokens"] / rows["TRL defaults"]["train_s"]
    for name, r in rows.items():
        rate = r["tokens"] / r["train_s"]
        print(f"{name:<18} {rate:>9.1f} {r['train_s']:>8.1f} {r['loss']:>11.3f} {r['mean_loss']:>10.3f}  {r['precision']:<9}  {str(r['checkpointing']):<9}  {r['lr']:g}   ({rate / ref:.2f}× TRL)")


if __name__ == "__main__":
    main()
