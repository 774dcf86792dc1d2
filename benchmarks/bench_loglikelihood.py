"""HFBackend.loglikelihood against HFLM's plain computation, interleaved A/B in one process.

A: HFLM's way — every request its own row, the full-vocabulary log-softmax over every position.
B: evalkit's — one row per distinct model input, logits and log-softmax only at continuation positions.
Both on the same requests (the choices of the first N ARC-Easy and HellaSwag items), same batch size;
prints seconds per round, the B/A speed ratio, and the largest |Δ log-likelihood| between them.

    python benchmarks/bench_loglikelihood.py [--items 24] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def hflm_plain(backend, requests, batch_size: int) -> list[float]:
    import torch

    from evalkit.models.hf import encode_pair

    encoded = [encode_pair(backend.tokenizer, r.context, r.continuation) for r in requests]
    order = sorted(range(len(encoded)), key=lambda i: -(len(encoded[i][0]) + len(encoded[i][1])))
    out = [0.0] * len(encoded)
    with torch.inference_mode(), backend.arm("base") as model:
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            inputs = [(encoded[i][0] + encoded[i][1])[:-1] for i in batch]
            ids = torch.full((len(batch), max(len(x) for x in inputs)), backend.tokenizer.pad_token_id or 0, dtype=torch.long)
            for row, x in enumerate(inputs):
                ids[row, : len(x)] = torch.tensor(x)
            logprobs = torch.log_softmax(model(ids).logits.float(), dim=-1)
            for row, i in enumerate(batch):
                cont = encoded[i][1]
                lp = logprobs[row, len(inputs[row]) - len(cont) : len(inputs[row])]
                out[i] = float(lp.gather(1, torch.tensor(cont)[:, None]).sum())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    from evalkit.forgetting import load_panel
    from evalkit.models import LoadOptions, LoglikelihoodRequest, resolve_model
    from evalkit.models.hf import HFBackend

    backend = HFBackend(resolve_model("smollm2-135m-instruct"), options=LoadOptions(device="cpu"))
    items = load_panel("arc_easy")[: args.items] + load_panel("hellaswag")[: args.items]
    requests = [LoglikelihoodRequest(c, k) for it in items for c, k in zip(it.contexts, it.continuations)]
    backend.model  # load before timing
    a_times, b_times, diff = [], [], 0.0
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        a = hflm_plain(backend, requests, args.batch_size)
        a_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b = [r.logprob for r in backend.loglikelihood(requests, "base", batch_size=args.batch_size)]
        b_times.append(time.perf_counter() - t0)
        diff = max(diff, max(abs(x - y) for x, y in zip(a, b)))
    print(f"{len(requests)} requests, batch {args.batch_size}")
    print(f"A HFLM plain:  {', '.join(f'{t:.1f}' for t in a_times)} s")
    print(f"B evalkit:     {', '.join(f'{t:.1f}' for t in b_times)} s")
    print(f"speed B/A (median rounds): {sorted(a_times)[len(a_times) // 2] / sorted(b_times)[len(b_times) // 2]:.2f}×; max |Δ ll| {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
