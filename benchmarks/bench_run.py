"""Throughput of a two-arm `evalkit run` (base + adapter) by batch size, and of the cached re-run.

    python benchmarks/bench_run.py [--items 32] [--sizes 1,8,16,32] [--adapter runs/adapters/incident-triage-r8]

Runs the incident-triage suite on the embedded model, uncached, once per batch size,
then once more with a warm cache. Prints wall time, generated tokens/s and each
figure as a ratio to batch size 1. Without --adapter (and no demo adapter on disk)
a random LoRA is made so the second arm does real work.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("EVALKIT_HOME", str(REPO / ".cache" / "evalkit"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from evalkit.models import BackendOptions, LoadOptions, resolve_model  # noqa: E402
from evalkit.runner import RunOptions, run_suite  # noqa: E402
from evalkit.suite import load_suite  # noqa: E402


def _random_adapter(out: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = resolve_model("smollm2-135m-instruct")
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base.path),
                           LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    model.save_pretrained(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=32)
    ap.add_argument("--sizes", default="1,8,16,32")
    ap.add_argument("--adapter", default=str(REPO / "runs/adapters/incident-triage-r8"))
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    from evalkit._util import quiet_libraries

    quiet_libraries()

    suite = load_suite(REPO / "suites/incident-triage.yaml")
    tmp = Path(tempfile.mkdtemp(prefix="evalkit-bench-"))
    adapter = Path(args.adapter) if Path(args.adapter, "adapter_config.json").exists() else _random_adapter(tmp / "random-lora")
    print(f"suite incident-triage, {args.items} items × 2 arms, embedded SmolLM2-135M, {args.dtype}, adapter {adapter.name}")
    print(f"{'batch':>8} {'wall s':>8} {'gen tok':>8} {'tok/s':>8} {'× bs1':>7}")
    base_rate = None
    for bs in [int(s) for s in args.sizes.split(",")]:
        opts = RunOptions(adapters=(f"adapter={adapter}",), runs_dir=tmp / "runs", use_cache=False, batch_size=bs,
                          limit=args.items, backend_options=BackendOptions(load=LoadOptions(dtype=args.dtype)))
        t0 = time.perf_counter()
        result = run_suite(suite, opts)
        wall = time.perf_counter() - t0
        tokens = sum(json_tokens(result.run_dir))
        rate = tokens / wall
        base_rate = base_rate or rate
        print(f"{bs:>8} {wall:>8.1f} {tokens:>8} {rate:>8.1f} {rate / base_rate:>6.2f}×", flush=True)
    cache = tmp / "cache.sqlite"
    opts = RunOptions(adapters=(f"adapter={adapter}",), runs_dir=tmp / "runs", cache_path=cache, limit=args.items,
                      backend_options=BackendOptions(load=LoadOptions(dtype=args.dtype)))
    t0 = time.perf_counter()
    run_suite(suite, opts)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = run_suite(suite, opts)
    warm = time.perf_counter() - t0
    print(f"cached re-run: {warm:.2f} s vs {cold:.1f} s uncached at the default batch size ({cold / warm:.0f}× faster; "
          f"{again.generated} generated, {again.cached} from cache)")


def json_tokens(run_dir: Path) -> list[int]:
    import json

    with (run_dir / "generations.jsonl").open() as fh:
        return [json.loads(line)["completion_tokens"] for line in fh]


if __name__ == "__main__":
    main()
