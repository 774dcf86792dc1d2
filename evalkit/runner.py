"""Suite × arms → generations → scores → run directory.

One base load per run: the backend holds the base weights and switches adapters
per arm. Every arm sees the same rendered prompts and the same decoding. New
generations are committed to the cache batch by batch, so an interrupted run
resumes where it stopped and a repeated run generates nothing.

Everything that can be checked is checked before the backend loads weights or
generates: the suite, its data and templates, the metrics, the adapters against
the base, and that the run directory can be written.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evalkit._util import evalkit_home, versions
from evalkit.cache import GenerationCache, cache_key
from evalkit.compare import summarize
from evalkit.data import Renderer, load_items
from evalkit.errors import DataError, ForgettingError, RunDirError
from evalkit.forgetting.spec import ForgettingSpec
from evalkit.forgetting.stage import check_backend as check_forgetting_backend
from evalkit.forgetting.stage import prepare as prepare_forgetting
from evalkit.forgetting.stage import run_forgetting
from evalkit.forgetting.stage import write_rows as write_forgetting_rows
from evalkit.metrics import Metric, build_metric
from evalkit.models.base import Backend, BackendOptions, GenerateRequest, open_backend
from evalkit.models.hf import default_batch_size
from evalkit.records import (
    MANIFEST_VERSION,
    AdapterInfo,
    BaseInfo,
    Generation,
    Item,
    Manifest,
    MetricInfo,
    Score,
    ScoreRow,
    ShardInfo,
    SuiteInfo,
    Summary,
)
from evalkit.rundir import write_generations, write_json, write_scores
from evalkit.suite import Suite

__all__ = ["Progress", "RunOptions", "RunResult", "check_writable_dir", "run_suite", "score_all", "select_shard"]

Progress = Callable[[str, int, int], None]
"""Called as ``progress(arm, done, total)`` as generation advances."""


@dataclass(frozen=True)
class RunOptions:
    """Everything about a run that is not in the suite."""

    base: str = "smollm2-135m-instruct"
    """Alias, local model directory or hub id (for ``--backend openai``: the served base model's name)."""
    adapters: tuple[str, ...] = ()
    """``[NAME=]PATH`` for each adapter arm (``NAME=SERVED`` for served backends); base is always an arm."""
    backend: str = "hf"
    """A registered backend: hf, vllm, openai, or a plugin's."""
    backend_options: BackendOptions = field(default_factory=BackendOptions)
    runs_dir: Path = Path("runs")
    """Where the run directory is created."""
    cache_path: Path | None = None
    """The sqlite cache; None means ``$EVALKIT_HOME/cache.sqlite``."""
    use_cache: bool = True
    batch_size: int | None = None
    """None: the suite's ``generation.batch_size``, else 32."""
    limit: int | None = None
    """Evaluate only the first N items (quick checks); forgetting panels and KL passages are capped at N too."""
    shard: tuple[int, int] | None = None
    """(i, n): evaluate the i-th of n deterministic shards of the items (0-based); ``evalkit merge`` joins them."""
    seed: int = 0
    """Seeds the statistics (bootstrap)."""
    forgetting_only: bool = False
    """Run only the suite's ``forgetting:`` section (no task generations)."""


@dataclass
class RunResult:
    """What ``run_suite`` produced; the report is rendered from the run directory (``evalkit.report``)."""

    run_dir: Path
    summary: Summary
    manifest: Manifest
    generated: int
    """Generations computed by the model in this run."""
    cached: int
    """Generations taken from the cache."""
    warnings: list[str]


def select_shard(items: Sequence[Item], index: int, count: int) -> list[Item]:
    """The ``index``-th of ``count`` shards: every ``count``-th item from position ``index``.

    Deterministic and balanced (sizes differ by at most one); together the shards hold every item once.
    """
    if not 0 <= index < count:
        raise DataError(f"--shard {index}/{count}: the shard number must be from 0 to {count - 1}")
    return list(items[index::count])


def check_writable_dir(path: Path, what: str) -> None:
    """Refuse, before any work, a folder that is a file or cannot be written.

    Raises:
        RunDirError: naming the option and the fix.
    """
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{what} {path}: is a file, not a folder; give a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".evalkit-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise RunDirError(f"{what} {path}: cannot write there ({exc.strerror or exc}); give a writable folder") from None


def run_suite(
    suite: Suite | None,
    options: RunOptions = RunOptions(),
    *,
    backend: Backend | None = None,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
    forgetting: ForgettingSpec | None = None,
) -> RunResult:
    """Run every arm on the suite's items, score them, run its forgetting checks, and write the run directory.

    Writes ``manifest.json``, ``generations.jsonl``, ``scores.csv`` and ``summary.json`` (and
    ``forgetting.csv``/``drift.csv`` with a forgetting section); ``evalkit.report.write_report(run_dir)``
    renders ``report.md`` and the plot from them. The forgetting panels and KL drift run after
    the task generations, on the same backend and cache.

    Args:
        suite: the suite; None for a forgetting-only run of ``forgetting``.
        backend: use this backend instead of opening ``options.backend`` (tests pass a fake one).
        progress: called as generation advances (and as forgetting panels are scored).
        warn: called with each warning as it arises (they are also in the manifest).
        forgetting: a forgetting section to run instead of the suite's (``--forgetting-only`` without a suite).

    Raises:
        EvalkitError: any input problem, found before weights load or generation starts.
    """
    started = time.time()
    warnings: list[str] = []

    def _warn(msg: str) -> None:
        warnings.append(msg)
        if warn:
            warn(msg)

    check_writable_dir(options.runs_dir, "--runs-dir")
    spec = forgetting or (suite.forgetting if suite else None)
    task = suite is not None and not options.forgetting_only
    if not task and spec is None:
        where = f"{suite.path}: " if suite else ""
        raise ForgettingError(f"{where}--forgetting-only: nothing to run; add a forgetting: section to the suite or name --panel")
    items: list[Item] = []
    all_items: list[Item] = []
    metrics: list[Metric] = []
    messages: dict[str, list[dict[str, str]]] = {}
    if task:
        assert suite is not None
        where = str(suite.path)
        all_items = load_items(suite.data, where, allow_network=options.backend_options.allow_network)
        if options.limit:
            all_items = all_items[: options.limit]
        items = select_shard(all_items, *options.shard) if options.shard else all_items
        if not items:
            raise DataError(f"--shard {options.shard[0]}/{options.shard[1]}: this shard has no items (the suite has {len(all_items)}); use fewer shards")  # type: ignore[index]
        metrics = [build_metric(m, suite.dir) for m in suite.metrics]
        renderer = Renderer(suite.prompt, where)
        messages = {item.id: renderer.messages(item) for item in items}  # a template error fails here, before loading
    prepared = prepare_forgetting(spec, options.limit) if spec else None  # unknown panel, missing data: before any model loads

    if backend is None:
        backend = open_backend(options.backend, options.base, options.adapters, options.backend_options)
    if prepared:
        check_forgetting_backend(backend, prepared)
    for ad in backend.adapters:
        _check_training_match(ad.name, ad.train_record, backend, _warn)

    requests = {item.id: GenerateRequest(messages=tuple(messages[item.id]), prompt=backend.render(messages[item.id])) for item in items}
    decoding = suite.generation.decoding() if task and suite else {}
    batch_size = options.batch_size or (suite.generation.batch_size if suite else None) or default_batch_size()
    identity = dict(backend.identity())
    if identity.get("dtype", "float32") != "float32" or decoding.get("do_sample"):
        # Greedy float32 outputs do not depend on batching (tested); reduced precision and sampling do.
        identity["batch_size"] = batch_size

    cache_file = (options.cache_path or evalkit_home() / "cache.sqlite") if options.use_cache else None
    arms: list[tuple[str, str | None]] = [("base", None), *[(a.name, a.fingerprint) for a in backend.adapters]]
    generations: list[Generation] = []
    generated = cached = 0
    forgot = None
    with GenerationCache(cache_file) as cache:
        for arm, adapter_fp in arms if task else []:
            gens, n_new = _generate_arm(backend, cache, items, requests, arm, adapter_fp, identity, decoding, batch_size, progress)
            generations.extend(gens)
            generated += n_new
            cached += sum(g.cached for g in gens)
        if prepared:
            forgot = run_forgetting(prepared, backend, cache, arms, identity, seed=options.seed, progress=progress)
    failed = sum(g.error is not None for g in generations)
    if failed:
        _warn(f"{failed} of {len(generations)} generations failed after retries; they are recorded as errors for every metric "
              f"(see the error field of generations.jsonl) and are tried again on the next run")

    scores = score_all(items, generations, metrics)
    name = suite.name if suite else FORGETTING_ONLY_NAME
    summary = summarize(
        name, items, scores, [(m.name, m.binary) for m in metrics], [a for a, _ in arms], generations, seed=options.seed
    )
    extra: dict[str, Any] = {}
    if forgot:
        summary = replace(summary, forgetting=forgot.summary)
        extra["forgetting"] = forgot.record()
        for d in forgot.summary.drift:
            if d.no_effect:
                _warn(f"adapter {d.arm!r} had no effect: its KL from base is {d.mean_kl:.1e} nats per token over {d.tokens} tokens "
                      f"(next-token distributions identical); check that the adapter was trained and loaded (LoRA B = 0?)")
    for arm, share in summary.identical_outputs.items():
        if share >= 0.95:
            _warn(f"adapter {arm!r} had (almost) no effect: its output equals base's on {share:.0%} of items")
    for metric in summary.unscored():
        _warn(f"metric {metric!r} could not score any item in at least one arm: its row reports no difference, "
              f"see the error column of scores.csv")

    shard = None
    if options.shard:
        positions = {it.id: i for i, it in enumerate(all_items)}
        shard = ShardInfo(index=options.shard[0], count=options.shard[1], item_ids=[it.id for it in items],
                          positions=[positions[it.id] for it in items], total=len(all_items))
    manifest = Manifest(
        version=MANIFEST_VERSION,
        suite=_suite_info(suite, spec),
        base=BaseInfo(spec=backend.base.spec, path=str(backend.base.path) if backend.base.path else None,
                      fingerprint=backend.base.fingerprint, source=backend.base.source, config=_model_config(backend.base.path)),
        adapters=[_adapter_info(a) for a in backend.adapters],
        backend=backend.identity(),
        chat_template_sha256=backend.template_hash,
        decoding=decoding,
        batch_size=batch_size,
        metrics=[MetricInfo(name=m.name, type=m.type, params=m.params, binary=m.binary) for m in metrics],
        n_items=len(items),
        limit=options.limit,
        generated=generated,
        cached=cached,
        started=_dt.datetime.fromtimestamp(started, _dt.timezone.utc).isoformat(timespec="seconds"),
        wall_s=round(time.time() - started, 2),
        versions=versions(),
        git_commit=git_commit(suite.dir if suite else Path.cwd()),
        warnings=warnings,
        gate=_gate_policy(suite, task),
        shard=shard,
        extra=extra,
    )
    run_dir = _new_run_dir(options.runs_dir, name + (f"-shard{options.shard[0]}of{options.shard[1]}" if options.shard else ""))
    write_run(run_dir, manifest, generations, items, messages, scores, summary)
    if forgot:
        write_forgetting_rows(run_dir, forgot)
    return RunResult(run_dir=run_dir, summary=summary, manifest=manifest, generated=generated, cached=cached, warnings=warnings)


FORGETTING_ONLY_NAME = "forgetting"
"""The run's name (and run directory suffix) of ``--forgetting-only`` without a suite."""


def _suite_info(suite: Suite | None, spec: ForgettingSpec | None) -> SuiteInfo:
    if suite is not None:
        return SuiteInfo(name=suite.name, path=str(suite.path), sha256=suite.sha256, description=suite.description)
    from evalkit._util import canonical_json, sha256_text

    doc = spec.to_dict() if spec else {}
    return SuiteInfo(name=FORGETTING_ONLY_NAME, path="", sha256=sha256_text(canonical_json(doc)),
                     description="evalkit run --forgetting-only: benchmark panels and KL drift, no task suite")


def _gate_policy(suite: Suite | None, task: bool) -> dict[str, Any] | None:
    """The suite's gate; without the task (``--forgetting-only``), only its forgetting rules apply."""
    if suite is None or suite.gate is None:
        return None
    if task:
        return suite.gate
    rules = [r for r in suite.gate["rules"] if "panel" in r or "max_kl" in r]
    return {**suite.gate, "rules": rules} if rules else None


def write_run(run_dir: Path, manifest: Manifest, generations: list[Generation], items: Sequence[Item],
              messages: dict[str, list[dict[str, str]]], scores: list[ScoreRow], summary: Summary) -> None:
    """Write a run directory's data files (the report is rendered from them)."""
    from evalkit.records import to_json_dict

    write_json(run_dir / "manifest.json", to_json_dict(manifest))
    write_generations(run_dir / "generations.jsonl", generations, list(items), messages)
    write_scores(run_dir / "scores.csv", scores)
    write_json(run_dir / "summary.json", summary.to_dict())


def _generate_arm(
    backend: Backend,
    cache: GenerationCache,
    items: Sequence[Item],
    requests: dict[str, GenerateRequest],
    arm: str,
    adapter_fp: str | None,
    identity: dict[str, Any],
    decoding: dict[str, Any],
    batch_size: int,
    progress: Progress | None,
) -> tuple[list[Generation], int]:
    keys = {it.id: cache_key(identity, backend.base.fingerprint, adapter_fp, requests[it.id].prompt, decoding) for it in items}
    hits = cache.get_many(list(keys.values()))
    results: dict[str, tuple[Any, float, bool]] = {i: (*hits[k], True) for i, k in keys.items() if k in hits}
    todo = [it.id for it in items if it.id not in results]
    total, done = len(items), len(results)
    if progress:
        progress(arm, done, total)
    # Longest prompts first: batches of similar length waste little on padding, and an
    # out-of-memory batch shows up at the start rather than at the end.
    todo.sort(key=lambda i: backend.count_tokens(requests[i].prompt), reverse=True)
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        t0 = time.perf_counter()
        outs = backend.generate([requests[i] for i in batch], arm, decoding)
        latency = (time.perf_counter() - t0) / len(batch)
        cache.put_many((keys[i], out, latency) for i, out in zip(batch, outs))
        for i, out in zip(batch, outs):
            results[i] = (out, latency, False)
        done += len(batch)
        if progress:
            progress(arm, done, total)
    gens = []
    for it in items:
        out, latency, was_cached = results[it.id]
        gens.append(Generation(item_id=it.id, arm=arm, text=out.text, prompt_tokens=out.prompt_tokens,
                               completion_tokens=out.completion_tokens, latency_s=latency, cached=was_cached, error=out.error))
    return gens, len(todo)


def score_all(items: Sequence[Item], generations: Sequence[Generation], metrics: Sequence[Metric]) -> list[ScoreRow]:
    """One score per item × arm × metric (errors recorded, never dropped)."""
    by_id = {it.id: it for it in items}
    rows = []
    for g in generations:
        for m in metrics:
            s = Score.failed(f"no output: {g.error}") if g.error is not None else m.score(g.text, by_id[g.item_id])
            rows.append(ScoreRow(g.item_id, g.arm, m.name, s.value, s.error, s.detail))
    return rows


def _check_training_match(name: str, record: dict[str, Any] | None, backend: Backend, warn: Callable[[str], None]) -> None:
    if not record:
        return
    trained_hash = record.get("chat_template_sha256")
    template_hash = backend.template_hash
    if trained_hash and template_hash and trained_hash != template_hash:
        warn(f"adapter {name!r} was trained with a different chat template ({trained_hash[:12]} vs {template_hash[:12]}); "
             "its prompts at evaluation differ from training")
    quantize = backend.identity().get("quantize")
    trained_quant = (record.get("config", {}).get("quantization") or {}).get("mode", "none")
    if quantize is not None and trained_quant != quantize:
        trained_as = f"a {trained_quant} base (QLoRA)" if trained_quant != "none" else "an unquantized base"
        warn(f"adapter {name!r} was trained on {trained_as} but is evaluated with --quantize {quantize}; "
             f"pass --quantize {trained_quant} to evaluate it on the base it was trained on")


def _adapter_info(a: Any) -> AdapterInfo:
    keys = ("r", "lora_alpha", "target_modules", "use_rslora", "use_dora", "base_model_name_or_path", "served_model")
    return AdapterInfo(
        name=a.name, path=str(a.path) if a.path else None, fingerprint=a.fingerprint,
        config={k: a.config[k] for k in keys if k in a.config},
        trained_chat_template_sha256=(a.train_record or {}).get("chat_template_sha256"),
    )


def _model_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        doc = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _new_run_dir(runs_dir: Path, name: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = runs_dir / f"{stamp}-{name}"
    n = 1
    while path.exists():
        n += 1
        path = runs_dir / f"{stamp}-{name}-{n}"
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
