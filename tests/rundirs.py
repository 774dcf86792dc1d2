"""Build run directories from constructed scores (no model), for report, compare and gate tests."""

from __future__ import annotations

from pathlib import Path

from evalkit.compare import summarize
from evalkit.records import Generation, Item, ScoreRow
from evalkit.rundir import RUN_FORMAT_VERSION, write_generations, write_json, write_scores


def make_run(path: Path, values: dict[str, dict[str, list[float | None]]], *, binary: dict[str, bool] | None = None,
             gate: dict | None = None, suite: str = "demo", texts: dict[str, list[str]] | None = None) -> Path:
    """``values[arm][metric]`` is a list over items; None records a metric error for that item."""
    arms = list(values)
    metrics = list(values[arms[0]])
    n = len(values[arms[0]][metrics[0]])
    items = [Item(id=f"i{k:03d}", row={"q": f"question {k}"}) for k in range(n)]
    scores = [
        ScoreRow(items[k].id, arm, m, v, None if v is not None else "could not score", "")
        for arm in arms for m in metrics for k, v in enumerate(values[arm][m])
    ]
    gens = [Generation(items[k].id, arm, (texts or {}).get(arm, [f"{arm} answer {k}"] * n)[k], 5, 3, 0.1) for arm in arms for k in range(n)]
    binary = binary or {m: True for m in metrics}
    summary = summarize(suite, items, scores, [(m, binary[m]) for m in metrics], arms, gens, n_resamples=2000)
    path.mkdir(parents=True)
    manifest = {
        "version": RUN_FORMAT_VERSION, "suite": {"name": suite, "path": f"/suites/{suite}.yaml", "sha256": "0" * 64},
        "base": {"spec": "tiny", "path": "/m", "fingerprint": "f" * 64, "source": "local"}, "adapters": [],
        "chat_template_sha256": "c" * 64, "load": {"dtype": "float32", "quantize": "none"}, "device": "cpu",
        "decoding": {"max_new_tokens": 8, "do_sample": False}, "batch_size": 16,
        "metrics": [{"name": m, "type": "x", "params": {}, "binary": binary[m]} for m in metrics],
        "n_items": n, "generated": 0, "cached": 0, "wall_s": 1.0, "versions": {}, "warnings": [], "gate": gate,
    }
    write_json(path / "manifest.json", manifest)
    write_generations(path / "generations.jsonl", gens, items, {it.id: [{"role": "user", "content": it.row["q"]}] for it in items})
    write_scores(path / "scores.csv", scores)
    write_json(path / "summary.json", summary.to_dict())
    return path
