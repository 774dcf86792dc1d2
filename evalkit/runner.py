"""Suite × arms → generations → scores → run directory.

One base load per run: the backend holds the base weights and switches adapters
per arm. Every arm sees the same rendered prompts and the same decoding. New
generations are committed to the cache batch by batch, so an interrupted run
resumes where it stopped and a repeated run generates nothing.
"""

from __future__ import annotations

import datetime as _dt
import json
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evalkit._util import evalkit_home, versions
from evalkit.cache import GenerationCache, cache_key
from evalkit.compare import Summary, summarize
from evalkit.data import Renderer, load_items
from evalkit.errors import AdapterError
from evalkit.metrics import Metric, build_metric
from evalkit.models import AdapterRef, Backend, HFBackend, LoadOptions, check_compatible, resolve_adapter, resolve_model
from evalkit.models.adapters import base_shapes
from evalkit.models.hf import default_batch_size
from evalkit.records import Generation, Item, ScoreRow
from evalkit.rundir import RUN_FORMAT_VERSION, write_generations, write_json, write_scores
from evalkit.suite import Suite

__all__ = ["Progress", "RunOptions", "RunResult", "run_suite"]

Progress = Callable[[str, int, int], None]
"""Called as ``progress(arm, done, total)`` as generation advances."""


@dataclass(frozen=True)
class RunOptions:
    """Everything about a run that is not in the suite."""

    base: str = "smollm2-135m-instruct"
    """Alias, local model directory or hub id."""
    adapters: tuple[str, ...] = ()
    """``[NAME=]PATH`` for each adapter arm; the base arm is always included."""
    runs_dir: Path = Path("runs")
    """Where the run directory is created."""
    cache_path: Path | None = None
    """The sqlite cache; None means ``$EVALKIT_HOME/cache.sqlite``."""
    use_cache: bool = True
    batch_size: int | None = None
    """None: the suite's ``generation.batch_size``, else 32."""
    load: LoadOptions = field(default_factory=LoadOptions)
    limit: int | None = None
    """Evaluate only the first N items (quick checks)."""
    allow_pickle: bool = False
    allow_network: bool = False
    allow_base_mismatch: bool = False
    seed: int = 0
    """Seeds the statistics (bootstrap)."""


@dataclass
class RunResult:
    """What ``run_suite`` produced."""

    run_dir: Path
    summary: Summary
    manifest: dict[str, Any]
    generated: int
    """Generations computed by the model in this run."""
    cached: int
    """Generations taken from the cache."""
    warnings: list[str]


def run_suite(
    suite: Suite,
    options: RunOptions = RunOptions(),
    *,
    backend: Backend | None = None,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
) -> RunResult:
    """Run every arm on the suite's items, score them, and write the run directory.

    Args:
        backend: use this backend instead of loading the model (tests count its calls).
        progress: called as generation advances.
        warn: called with each warning as it arises (they are also in the manifest).

    Raises:
        EvalkitError: any input problem, before the model is loaded where possible.
    """
    started = time.time()
    warnings: list[str] = []

    def _warn(msg: str) -> None:
        warnings.append(msg)
        if warn:
            warn(msg)

    where = str(suite.path)
    items = load_items(suite.data, where, allow_network=options.allow_network)
    if options.limit:
        items = items[: options.limit]
    metrics = [build_metric(spec, suite.dir) for spec in suite.metrics]
    renderer = Renderer(suite.prompt, where)
    messages = {item.id: renderer.messages(item) for item in items}  # a missing field fails here, before loading

    base = resolve_model(options.base, allow_network=options.allow_network)
    adapters = [resolve_adapter(a, allow_pickle=options.allow_pickle) for a in options.adapters]
    names = [a.name for a in adapters]
    for name in names:
        if name == "base" or names.count(name) > 1:
            raise AdapterError(f"arm name {name!r} is used twice (or is 'base'); name adapters with --adapter NAME=PATH")
    shapes = base_shapes(base)
    for ad in adapters:
        check_compatible(ad, base, shapes, allow_base_mismatch=options.allow_base_mismatch)

    if backend is None:
        backend = HFBackend(base, adapters, options.load)
    template_hash = backend.template_hash
    for ad in adapters:
        _check_training_match(ad, template_hash, options.load, _warn)

    prompts = {item.id: backend.render(messages[item.id]) for item in items}
    decoding = suite.generation.decoding()
    device = getattr(backend, "device", "cpu")
    batch_size = options.batch_size or suite.generation.batch_size or default_batch_size()
    cache = GenerationCache((options.cache_path or evalkit_home() / "cache.sqlite") if options.use_cache else None)
    load_key: dict[str, Any] = {**options.load.key(), "device": device.split(":")[0]}
    if options.load.dtype != "float32" or decoding.get("do_sample"):
        # Greedy float32 outputs do not depend on batching (tested); reduced precision and sampling do.
        load_key["batch_size"] = batch_size

    arms: list[tuple[str, AdapterRef | None]] = [("base", None), *[(a.name, a) for a in adapters]]
    generations: list[Generation] = []
    generated = cached = 0
    try:
        for arm, adapter in arms:
            gens, n_new = _generate_arm(
                backend, cache, items, prompts, arm, base.fingerprint, adapter.fingerprint if adapter else None,
                load_key, decoding, batch_size, progress,
            )
            generations.extend(gens)
            generated += n_new
            cached += len(gens) - n_new
    finally:
        cache.close()

    scores = score_all(items, generations, metrics)
    summary = summarize(
        suite.name, items, scores, [(m.name, m.binary) for m in metrics], [a for a, _ in arms], generations, seed=options.seed
    )
    for arm, share in summary.identical_outputs.items():
        if share >= 0.95:
            _warn(f"adapter {arm!r} had (almost) no effect: its output equals base's on {share:.0%} of items")

    run_dir = _new_run_dir(options.runs_dir, suite.name)
    manifest = _manifest(suite, options, base, adapters, template_hash, decoding, batch_size, device, metrics, items,
                         started, generated, cached, warnings)
    write_json(run_dir / "manifest.json", manifest)
    write_generations(run_dir / "generations.jsonl", generations, items, messages)
    write_scores(run_dir / "scores.csv", scores)
    write_json(run_dir / "summary.json", summary.to_dict())
    from evalkit.report import write_report  # report imports matplotlib lazily; keep runner import light

    write_report(run_dir)
    return RunResult(run_dir=run_dir, summary=summary, manifest=manifest, generated=generated, cached=cached, warnings=warnings)


def _generate_arm(
    backend: Backend,
    cache: GenerationCache,
    items: Sequence[Item],
    prompts: dict[str, str],
    arm: str,
    model_fp: str,
    adapter_fp: str | None,
    load_key: dict[str, Any],
    decoding: dict[str, Any],
    batch_size: int,
    progress: Progress | None,
) -> tuple[list[Generation], int]:
    keys = {it.id: cache_key(model_fp, adapter_fp, load_key, prompts[it.id], decoding) for it in items}
    hits = cache.get_many(list(keys.values()))
    results: dict[str, tuple[Any, float, bool]] = {i: (*hits[k], True) for i, k in keys.items() if k in hits}
    todo = [it.id for it in items if it.id not in results]
    total, done = len(items), len(results)
    if progress:
        progress(arm, done, total)
    # Longest prompts first: batches of similar length waste little on padding, and an
    # out-of-memory batch shows up at the start rather than at the end.
    todo.sort(key=lambda i: backend.count_tokens(prompts[i]), reverse=True)
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        t0 = time.perf_counter()
        outs = backend.generate([prompts[i] for i in batch], arm, decoding)
        latency = (time.perf_counter() - t0) / len(batch)
        cache.put_many((keys[i], out, latency) for i, out in zip(batch, outs))
        for i, out in zip(batch, outs):
            results[i] = (out, latency, False)
        done += len(batch)
        if progress:
            progress(arm, done, total)
    gens = [
        Generation(item_id=it.id, arm=arm, text=results[it.id][0].text, prompt_tokens=results[it.id][0].prompt_tokens,
                   completion_tokens=results[it.id][0].completion_tokens, latency_s=results[it.id][1], cached=results[it.id][2])
        for it in items
    ]
    return gens, len(todo)


def score_all(items: Sequence[Item], generations: Sequence[Generation], metrics: Sequence[Metric]) -> list[ScoreRow]:
    """One score per item × arm × metric (errors recorded, never dropped)."""
    by_id = {it.id: it for it in items}
    rows = []
    for g in generations:
        for m in metrics:
            s = m.score(g.text, by_id[g.item_id])
            rows.append(ScoreRow(g.item_id, g.arm, m.name, s.value, s.error, s.detail))
    return rows


def _check_training_match(ad: AdapterRef, template_hash: str, load: LoadOptions, warn: Callable[[str], None]) -> None:
    record = ad.train_record or {}
    trained_hash = record.get("chat_template_sha256")
    if trained_hash and template_hash and trained_hash != template_hash:
        warn(f"adapter {ad.name!r} was trained with a different chat template ({trained_hash[:12]} vs {template_hash[:12]}); "
             "its prompts at evaluation differ from training")
    trained_quant = (record.get("config", {}).get("quantization") or {}).get("mode", "none")
    if record and trained_quant != load.quantize:
        trained_as = f"a {trained_quant} base (QLoRA)" if trained_quant != "none" else "an unquantized base"
        warn(f"adapter {ad.name!r} was trained on {trained_as} but is evaluated with --quantize {load.quantize}; "
             f"pass --quantize {trained_quant} to evaluate it on the base it was trained on")


def _model_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return {}


def _new_run_dir(runs_dir: Path, suite_name: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = runs_dir / f"{stamp}-{suite_name}"
    n = 1
    while path.exists():
        n += 1
        path = runs_dir / f"{stamp}-{suite_name}-{n}"
    path.mkdir(parents=True)
    return path


def git_commit(path: Path) -> str | None:
    """The commit of the git checkout holding ``path``, if any (with ``-dirty`` when modified)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=path, capture_output=True, text=True, timeout=5)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _manifest(suite: Suite, options: RunOptions, base: Any, adapters: Sequence[AdapterRef], template_hash: str,
              decoding: dict[str, Any], batch_size: int, device: str, metrics: Sequence[Metric], items: Sequence[Item],
              started: float, generated: int, cached: int, warnings: list[str]) -> dict[str, Any]:
    return {
        "version": RUN_FORMAT_VERSION,
        "suite": {"name": suite.name, "path": str(suite.path), "sha256": suite.sha256, "description": suite.description},
        "base": {"spec": base.spec, "path": str(base.path), "fingerprint": base.fingerprint, "source": base.source,
                 "config": _model_config(base.path)},
        "adapters": [
            {"name": a.name, "path": str(a.path), "fingerprint": a.fingerprint,
             "config": {k: a.config.get(k) for k in ("r", "lora_alpha", "target_modules", "use_rslora", "use_dora", "base_model_name_or_path")},
             "trained_chat_template_sha256": (a.train_record or {}).get("chat_template_sha256")}
            for a in adapters
        ],
        "chat_template_sha256": template_hash,
        "load": asdict(options.load),
        "device": device,
        "decoding": decoding,
        "batch_size": batch_size,
        "metrics": [{"name": m.name, "type": m.type, "params": m.params, "binary": m.binary} for m in metrics],
        "n_items": len(items),
        "limit": options.limit,
        "generated": generated,
        "cached": cached,
        "started": _dt.datetime.fromtimestamp(started, _dt.timezone.utc).isoformat(timespec="seconds"),
        "wall_s": round(time.time() - started, 2),
        "versions": versions(),
        "git_commit": git_commit(suite.dir),
        "warnings": warnings,
        "gate": suite.gate,
    }
