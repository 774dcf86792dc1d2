"""What judging faithfulness with a local judge costs, per item, next to generating the answers.

    python benchmarks/bench_judge.py --items 32 --judge smollm2-135m-instruct

Interleaved in one process, round by round: generate the incident-triage prompts with the
suite's decoding (what `evalkit run` does per arm), then judge faithfulness of the same
items' `summary` against their `report` (the data's reference summaries stand in for an
adapter's answers: one or two claims each). Prints seconds per item for both, their ratio
(which holds on a busy machine, unlike the seconds), the claims and judge requests per item,
and the verdicts that needed the repair turn or ended as parse failures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="alternate generation and judging this many times")
    parser.add_argument("--judge", default="smollm2-135m-instruct", help="the judge model (hf backend)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()

    from evalkit.cache import GenerationCache
    from evalkit.data import Renderer, load_items
    from evalkit.judges import Judge, JudgeConfig
    from evalkit.metrics import ScoreRequest, build_metric
    from evalkit.models import GenerateRequest
    from evalkit.suite import MetricSpec, load_suite

    suite = load_suite(REPO / "suites/incident-triage.yaml")
    items = load_items(suite.data, str(suite.path))[: args.items * args.rounds]
    renderer = Renderer(suite.prompt, str(suite.path))
    judge = Judge(JudgeConfig(model=args.judge, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens))
    metric = build_metric(MetricSpec("faithfulness", "faithfulness", {"source": "report", "field": "summary"}), suite.dir, judge)
    decoding = suite.generation.decoding()
    with GenerationCache(None) as cache:  # no cache: every verdict is computed
        judge.bind(cache=cache)
        backend = judge._backend
        assert backend is not None
        backend.model  # load the weights before timing
        t_gen = t_judge = 0.0
        scores = []
        for r in range(args.rounds):
            chunk = items[r * args.items : (r + 1) * args.items]
            requests = [GenerateRequest(tuple(renderer.messages(it)), backend.render(renderer.messages(it))) for it in chunk]
            t0 = time.perf_counter()
            for start in range(0, len(requests), 32):
                backend.generate(requests[start : start + 32], "base", decoding)
            t1 = time.perf_counter()
            answers = [ScoreRequest(json.dumps({"summary": it.row["summary"]}), it, "adapter") for it in chunk]
            scores += metric.score_many(answers)
            t2 = time.perf_counter()
            t_gen, t_judge = t_gen + t1 - t0, t_judge + t2 - t1
    n = len(items)
    stats = judge.stats["faithfulness"]
    claims = sum(len(json.loads(s.detail)["claims"]) for s in scores if s.detail)
    print(f"judge {args.judge} on hf, batch {args.batch_size}, max_new_tokens {args.max_new_tokens}; {n} items")
    print(f"generate (suite decoding): {t_gen / n:.2f} s/item · judge faithfulness: {t_judge / n:.2f} s/item · "
          f"judge/generate = {t_judge / t_gen:.2f}x")
    print(f"claims/item {claims / n:.2f} · judge requests/item {stats.calls / n:.2f} · repaired {stats.repaired} · "
          f"parse failures {stats.parse_failures} of {stats.verdicts} verdicts")
    outcomes = Counter("scored" if s.value is not None else (s.error or "")[:28] for s in scores)
    print("items:", dict(outcomes))
    scored = [s.value for s in scores if s.value is not None]
    if scored:
        print(f"mean faithfulness of the reference summaries: {sum(scored) / len(scored):.3f} (a judge that reads well gives ~1.0)")


if __name__ == "__main__":
    main()
