"""Per-token cost of the HF backend's decoding paths, A/B interleaved in one process.

    python benchmarks/bench_greedy.py [--items 16] [--rounds 3] [--threads 1] [--adapter runs/adapters/incident-triage-r8]

One batch of incident-triage prompts (the suite's chat template, float32, greedy, every row
running to the suite's max_new_tokens) through, in turn, round after round so that other load on a shared machine
hits every variant alike:

- ``generate``: transformers' ``generate`` (the path before the fast greedy loop), base arm;
- ``fast stock``: :func:`evalkit.models.greedy.greedy_generate` with PyTorch's stock linear
  kernel, base arm;
- ``fast``: the same with packed weights (:mod:`evalkit.models.packed`; what
  ``evalkit run`` does on CPU), base arm;
- ``fast adapter``: the same on the unmerged adapter arm;
- ``fast merged``: the same on the adapter merged into the weights (``--merge-adapters``).

Prints seconds per generated token (median over rounds), each as a ratio to ``fast`` base,
whether packed and stock kernels give the same tokens, and whether merged and unmerged
adapter tokens agree. (Text identity of the fast loop against
``generate`` and lm-evaluation-harness is what tests/models/test_greedy.py and bench_vs_lmeval.py check.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("EVALKIT_HOME", str(REPO / ".cache" / "evalkit"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    ap.add_argument("--adapter", default=str(REPO / "runs/adapters/incident-triage-r8"))
    args = ap.parse_args()

    import torch

    from evalkit._util import quiet_libraries
    from evalkit.models import BackendOptions, LoadOptions, open_backend
    from evalkit.models.base import GenerateRequest
    from evalkit.runner import RunOptions, plan_run
    from evalkit.suite import load_suite

    quiet_libraries()
    if args.threads:
        torch.set_num_threads(args.threads)
    suite = load_suite(REPO / "suites/incident-triage.yaml")
    plan = plan_run(suite, RunOptions(limit=args.items))
    decoding = {"max_new_tokens": suite.generation.max_new_tokens, "do_sample": False}
    load = LoadOptions(device="cpu")
    plain = open_backend("hf", "smollm2-135m-instruct", [f"adapter={args.adapter}"], BackendOptions(load=load))
    merged = open_backend("hf", "smollm2-135m-instruct", [f"adapter={args.adapter}"], BackendOptions(load=load, merge_adapters=True))
    reqs = [GenerateRequest(messages=tuple(plan.messages[it.id]), prompt=plain.render(plan.messages[it.id])) for it in plan.items]

    # Every row runs to max_new_tokens (no stop ids; generate with min_new_tokens), so each variant does the same
    # number of decode steps and "per token" compares the cost of a step, not how early an arm's answers end.
    from evalkit.models.greedy import greedy_generate

    n_new = decoding["max_new_tokens"]
    ids = plain.tokenizer([r.prompt for r in reqs], add_special_tokens=False).input_ids
    pad = plain.tokenizer.pad_token_id

    from contextlib import nullcontext

    def fast(backend, arm: str, packed: bool = True) -> list[list[int]]:
        kernels = backend._greedy_kernels() if packed else nullcontext
        with backend.arm(arm) as model:
            return greedy_generate(model, ids, max_new_tokens=n_new, stop_ids=[], pad_id=pad, kernels=kernels)

    def hf_generate() -> list[list[int]]:
        enc = plain.tokenizer.pad({"input_ids": ids}, return_tensors="pt")
        with torch.inference_mode(), plain.arm("base") as model:
            out = model.generate(**enc, do_sample=False, max_new_tokens=n_new, min_new_tokens=n_new, pad_token_id=pad)
        return out[:, enc["input_ids"].shape[1] :].tolist()

    variants = {
        "generate": hf_generate,
        "fast stock": lambda: fast(plain, "base", packed=False),
        "fast": lambda: fast(plain, "base"),
        "fast adapter": lambda: fast(plain, "adapter"),
        "fast merged": lambda: fast(merged, "adapter"),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    outputs: dict[str, list] = {}
    for r in range(args.rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            outs = fn()
            wall = time.perf_counter() - t0
            outputs[name] = outs
            times[name].append(wall / sum(len(o) for o in outs))
        print(f"round {r + 1}/{args.rounds} done", flush=True)

    print(f"\n{args.items} incident-triage prompts in one batch, {decoding['max_new_tokens']} new tokens, float32, "
          f"{torch.get_num_threads()} threads, median of {args.rounds} interleaved rounds")
    ref = statistics.median(times["fast"])
    print(f"{'variant':<14} {'ms/token':>9} {'tok/s':>7} {'÷ fast base':>12}")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"{name:<14} {m * 1e3:9.2f} {1 / m:7.1f} {m / ref:11.2f}×")
    n = len(reqs)
    same_kernels = sum(a == b for a, b in zip(outputs["fast"], outputs["fast stock"]))
    print(f"packed == stock kernels (base, {n_new} tokens per row, no stop): {same_kernels}/{n} rows")
    same = sum(a == b for a, b in zip(outputs["fast merged"], outputs["fast adapter"]))
    print(f"merged == unmerged (adapter, {n_new} tokens per row, no stop): {same}/{n} rows")
    print(f"adapter/base per token: unmerged {statistics.median(times['fast adapter']) / ref:.2f}, "
          f"merged {statistics.median(times['fast merged']) / ref:.2f}")


if __name__ == "__main__":
    main()
