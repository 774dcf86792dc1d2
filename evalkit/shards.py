"""Sharded runs: ``evalkit run --shard i/n`` on n machines, then ``evalkit merge`` on one.

Each shard evaluates every ``n``-th item (all arms) and writes a partial run
directory whose manifest records the shard, its item ids and their positions among
all the suite's items. ``merge_shards`` checks that the partial runs belong
together (same suite file, base, adapters, backend, decoding, metrics and
statistics seed), that together they hold every item exactly once, and computes
the statistics once over all items, in the unsharded order, so the merged
``summary.json`` equals the one an unsharded run writes. A suite's forgetting
checks run once, in shard 0, and are carried into the merged run.
"""

from __future__ import annotations

import datetime as _dt
import shutil
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from evalkit.compare import summarize
from evalkit.errors import RunDirError
from evalkit.records import Generation, Item, Manifest, ScoreRow
from evalkit.rundir import RunDir, load_run

__all__ = ["merge_shards"]

FORGETTING_FILES = ("forgetting.csv", "drift.csv")

_MUST_AGREE: dict[str, Any] = {
    "suite file": lambda m: m.suite.sha256,
    "base model": lambda m: m.base.fingerprint,
    "adapters": lambda m: [(a.name, a.fingerprint) for a in m.adapters],
    "backend": lambda m: m.backend,
    "chat template": lambda m: m.chat_template_sha256,
    "decoding": lambda m: m.decoding,
    "metrics": lambda m: [(x.name, x.type, x.params) for x in m.metrics],
    "--limit": lambda m: m.limit,
    "shard count": lambda m: m.shard.count if m.shard else None,
    "item count": lambda m: m.shard.total if m.shard else None,
    "judge": lambda m: {k: v for k, v in m.extra.get("judge", {}).items() if k in ("backend", "model", "endpoint", "fingerprint", "params", "metrics")},
}
"""What every shard of one run must share; each is named in the refusal when it differs."""


def _check_together(runs: Sequence[RunDir]) -> None:
    for run in runs:
        if run.manifest.shard is None:
            raise RunDirError(f"{run.path}: not a shard (it was run without --shard); merge only the partial runs of one sharded run")
    first = runs[0]
    for run in runs[1:]:
        for what, get in _MUST_AGREE.items():
            if get(run.manifest) != get(first.manifest):
                raise RunDirError(
                    f"{run.path}: its {what} differs from {first.path}'s; these are not shards of one run "
                    f"(rerun the shard with the same suite, models, options and evalkit)"
                )
        if run.summary.seed != first.summary.seed:
            raise RunDirError(f"{run.path}: its statistics seed ({run.summary.seed}) differs from {first.path}'s ({first.summary.seed}); rerun it with the same --seed")
    count = first.manifest.shard.count  # type: ignore[union-attr]
    seen: dict[int, Path] = {}
    for run in runs:
        index = run.manifest.shard.index  # type: ignore[union-attr]
        if index in seen:
            raise RunDirError(f"{run.path} and {seen[index]} are both shard {index}/{count}; give each shard once")
        seen[index] = run.path
    missing = sorted(set(range(count)) - set(seen))
    if missing:
        names = ", ".join(f"{i}/{count}" for i in missing)
        raise RunDirError(f"shard {names} missing: run `evalkit run ... --shard {missing[0]}/{count}` and pass its run directory too")


def _ordered_items(runs: Sequence[RunDir], gens: list[dict[str, Any]]) -> list[Item]:
    total = runs[0].manifest.shard.total  # type: ignore[union-attr]
    position: dict[str, int] = {}
    for run in runs:
        shard = run.manifest.shard
        assert shard is not None
        for item_id, pos in zip(shard.item_ids, shard.positions):
            if item_id in position:
                raise RunDirError(f"{run.path}: item {item_id!r} is in two shards; the shards overlap")
            position[item_id] = pos
    if sorted(position.values()) != list(range(total)):
        raise RunDirError(f"the shards hold {len(position)} distinct items at positions that do not cover the suite's {total}; "
                          f"rerun the shards with the same data")
    clusters = {g["item_id"]: g.get("cluster") for g in gens}
    return [Item(id=i, row={}, cluster=clusters.get(i)) for i in sorted(position, key=position.__getitem__)]


def merge_shards(run_dirs: Sequence[str | Path], runs_dir: Path) -> Path:
    """Join the partial runs of one sharded run into a new run directory under ``runs_dir``.

    Returns:
        The merged run directory (its report is rendered by ``evalkit.report.write_report``).

    Raises:
        RunDirError: a directory that is not a shard, shards that do not belong together,
            a shard given twice or missing, overlapping items, or a gap in the items.
    """
    from evalkit.runner import check_writable_dir, new_run_dir, write_run

    if not run_dirs:
        raise RunDirError("give the run directories of every shard, e.g. evalkit merge runs/*-shard*of3")
    check_writable_dir(runs_dir, "--runs-dir")
    runs = [load_run(p) for p in run_dirs]
    _check_together(runs)
    gens = [g for run in runs for g in run.generations()]
    items = _ordered_items(runs, gens)
    order = {it.id: k for k, it in enumerate(items)}
    first: Manifest = runs[0].manifest
    arms = first.arms()
    gens.sort(key=lambda g: (arms.index(g["arm"]), order[g["item_id"]]))  # the unsharded run's order: arm by arm, item by item
    scores: list[ScoreRow] = [row for run in runs for row in run.scores()]
    metrics = [(m.name, m.binary) for m in first.metrics]
    names = [f.name for f in fields(Generation)]
    generations = [Generation(**{k: g[k] for k in names if k in g}) for g in gens]
    summary = summarize(first.suite.name, items, scores, metrics, arms, generations, seed=runs[0].summary.seed)
    extra = {**first.extra}
    checked = next((run for run in runs if run.summary.forgetting is not None), None)  # shard 0, when the suite has a forgetting section
    if checked is not None:
        summary = replace(summary, forgetting=checked.summary.forgetting)
        extra["forgetting"] = checked.manifest.extra.get("forgetting")
    warnings = list(dict.fromkeys(w for run in runs for w in run.manifest.warnings))
    manifest = replace(
        first,
        n_items=len(items),
        generated=sum(r.manifest.generated for r in runs),
        cached=sum(r.manifest.cached for r in runs),
        started=min(r.manifest.started for r in runs),
        wall_s=round(sum(r.manifest.wall_s for r in runs), 2),
        warnings=warnings,
        shard=None,
        extra={**extra, "merged_shards": len(runs), "merged_from": [str(r.path) for r in runs],
               "merged_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
    )
    messages = {g["item_id"]: g.get("messages", []) for g in gens}
    run_dir = new_run_dir(runs_dir, first.suite.name)
    write_run(run_dir, manifest, generations, items, messages, scores, summary)
    if checked is not None:
        for name in FORGETTING_FILES:
            if (checked.path / name).is_file():
                shutil.copyfile(checked.path / name, run_dir / name)
    return run_dir
