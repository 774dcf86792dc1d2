"""Forgetting checks on the embedded model: their cost in the demo, and gentle vs harsh vs B = 0 adapters.

1. Trains (once; reused when the folder exists) two adapters with `evalkit train` on the embedded
   SmolLM2-135M-Instruct: *gentle*, the demo's config (suites/incident-triage.train.yaml: 16 steps,
   lr 1e-3, r 8, effective batch 8), and *harsh*: narrow data (the first 24 training examples),
   lr 1e-2 (10×), r 16 with alpha 64 (scale 4 instead of 2), the same 16 steps (about 5 epochs over
   those 24). Both run batch 4 with 2 accumulation steps (the demo's effective batch at half the memory). Also writes a freshly initialised LoRA (B = 0).
2. Times the demo's forgetting section alone (arc_easy, 100 items, base + gentle, KL over 20
   passages) from an empty cache: what `make demo` pays for it.
3. Runs arc_easy (200 items) and KL drift (32 passages) for gentle, harsh and B = 0 in one process,
   one base load, and prints per arm: acc_norm and acc Δ with CI, flips, mean KL, top-1 agreement.

    python benchmarks/bench_forgetting.py [--out runs/bench-forgetting] [--items 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
REPO = Path(__file__).resolve().parents[1]


def _train(config_path: Path, out: Path, **overrides) -> Path:
    from evalkit.train import load_train_config, train

    if (out / "adapter_model.safetensors").exists():
        print(f"reusing {out}")
        return out
    cfg = load_train_config(config_path)
    lora = replace(cfg.lora, **overrides.pop("lora", {}))
    training = replace(cfg.training, **overrides.pop("training", {}))
    cfg = replace(cfg, output_dir=out, lora=lora, training=training, **overrides)
    t0 = time.perf_counter()
    res = train(cfg)
    print(f"trained {out.name}: final loss {res.final_loss:.3f}, {res.record['optimizer_steps']} steps, {time.perf_counter() - t0:.0f} s")
    return out


def _zero(out: Path) -> Path:
    if (out / "adapter_model.safetensors").exists():
        return out
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from evalkit.models import resolve_model

    base = resolve_model("smollm2-135m-instruct")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base.path), LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    model.save_pretrained(out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO / "runs" / "bench-forgetting"))
    ap.add_argument("--items", type=int, default=200)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from evalkit.forgetting import ForgettingSpec, PanelSpec
    from evalkit.forgetting.spec import DriftSpec
    from evalkit.runner import RunOptions, run_suite

    train_yaml = REPO / "suites" / "incident-triage.train.yaml"
    # batch 4 × 2 accumulation steps: the demo's effective batch of 8 at half the memory (a shared 2-core box)
    gentle = _train(train_yaml, out / "gentle", training={"batch_size": 4, "grad_accum": 2})
    harsh = _train(train_yaml, out / "harsh", data_limit=24, lora={"r": 16, "alpha": 64},
                   training={"max_steps": 16, "learning_rate": 1e-2, "warmup_ratio": 0.0, "batch_size": 4, "grad_accum": 2})
    zero = _zero(out / "zero")

    # 2. the demo's forgetting section alone, from an empty cache
    demo = ForgettingSpec(panels=(PanelSpec("arc_easy", n=100),), kl=DriftSpec(passages=20))
    cache = out / "cache.sqlite"
    cache.unlink(missing_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    run_suite(None, RunOptions(adapters=(f"gentle={gentle}",), runs_dir=out / "runs", cache_path=cache, forgetting_only=True), forgetting=demo)
    # CPU time as well as wall time: on a shared machine the wall time says more about the neighbours
    print(f"demo forgetting section (arc_easy 100 items × 2 arms + KL over 20 passages), empty cache: "
          f"{time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU (all threads)")

    # 3. gentle vs harsh vs B = 0, one process, one base load
    spec = ForgettingSpec(panels=(PanelSpec("arc_easy", n=args.items),), kl=DriftSpec(passages=32))
    t0 = time.perf_counter()
    res = run_suite(None, RunOptions(adapters=(f"gentle={gentle}", f"harsh={harsh}", f"zero={zero}"), runs_dir=out / "runs",
                                     cache_path=cache, forgetting_only=True), forgetting=spec)
    print(f"gentle/harsh/zero run: {time.perf_counter() - t0:.0f} s; run directory {res.run_dir}")
    fs = res.summary.forgetting
    assert fs is not None
    print(f"base arc_easy acc {fs.means['base']['arc_easy/acc']:.3f}, acc_norm {fs.means['base']['arc_easy/acc_norm']:.3f} (n={args.items})")
    print(f"{'arm':<8} {'metric':<9} {'Δ':>7} {'95% CI':>17} {'p':>7} {'f→p':>4} {'p→f':>4} {'mean KL':>9} {'top-1':>7} {'p90 KL':>8}")
    for arm in ("gentle", "harsh", "zero"):
        drift = fs.drift_of(arm)
        assert drift is not None
        for metric in ("acc_norm", "acc"):
            d = fs.delta("arc_easy", metric, arm)
            assert d is not None
            print(f"{arm:<8} {metric:<9} {d.delta:>+7.3f} [{d.ci_low:+.3f}, {d.ci_high:+.3f}] {d.p_value:>7.3f} {d.fail_to_pass:>4} {d.pass_to_fail:>4} "
                  f"{drift.mean_kl:>9.4f} {drift.top1_agreement:>7.1%} {drift.p90:>8.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
