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
import subprocess
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evalkit._util import check_writable_dir, evalkit_home, versions
from evalkit.cache import GenerationCache, cache_key
from evalkit.data import Renderer, load_items
from evalkit.errors import DataError, ForgettingError, RunDirError
from evalkit.forgetting.spec import ForgettingSpec
from evalkit.forgetting.stage import Prepared as PreparedForgetting
from evalkit.forgetting.stage import check_backend as check_forgetting_backend
from evalkit.forgetting.stage import prepare as prepare_forgetting
from evalkit.forgetting.stage import run_forgetting
from evalkit.forgetting.stage import write_rows as write_forgetting_rows
from evalkit.judges.judge import Judge
from evalkit.judges.stage import JudgeOverrides, check_judge, judge_manifest, judging, make_judge
from evalkit.metrics import Metric, ScoreRequest, build_metric, sample_ids
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
from evalkit.validate import dry_score, raise_for_unscorable

__all__ = ["Progress", "RunOptions", "RunPlan", "RunResult", "check_writable_dir", "generate_all", "plan_run", "run_suite", "score_all", "select_shard"]

FORGETTING_ONLY_NAME = "forgetting"
"""The run's name (and run directory suffix) of ``--forgetting-only`` without a suite."""

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
    """Evaluate only the first N items (quick checks)."""
    shard: tuple[int, int] | None = None
    """(i, n): evaluate the i-th of n deterministic shards of the items (0-based); ``evalkit merge`` joins them."""
    seed: int = 0
    """Seeds the statistics (bootstrap)."""
    judge: JudgeOverrides | None = None
    """The judge of judged metrics as the command line sets it (``--judge``), over the suite's ``judge:``."""
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


@dataclass
class RunPlan:
    """Everything a run needs that is known before a model loads, checked."""

    suite: Suite | None
    """None for a forgetting-only run without a suite."""
    options: RunOptions
    all_items: list[Item]
    """Every item of the suite (after ``--limit``); a shard runs a subset."""
    items: list[Item]
    """The items this run evaluates."""
    metrics: list[Metric]
    messages: dict[str, list[dict[str, str]]]
    """Rendered chat messages per item id."""
    warnings: list[str] = field(default_factory=list)
    judge: Judge | None = None
    """The judge handle of judged metrics (checked, nothing opened)."""
    judge_labels: list[dict[str, Any]] = field(default_factory=list)
    """Human labels of judged metrics (the suite's judge.labels), for the report's agreement."""
    forgetting: PreparedForgetting | None = None
    """The forgetting panels and KL passages, loaded and checked (None: no forgetting section)."""
    forgetting_spec: ForgettingSpec | None = None

    @property
    def task(self) -> bool:
        """True when the suite's task runs (not ``--forgetting-only``)."""
        return self.suite is not None and not self.options.forgetting_only

    @property
    def name(self) -> str:
        return self.suite.name if self.suite is not None else FORGETTING_ONLY_NAME


def plan_run(suite: Suite | None, options: RunOptions, warn: Callable[[str], None] | None = None,
             forgetting: ForgettingSpec | None = None) -> RunPlan:
    """Read the data, render every prompt, build and dry-score the metrics, load the forgetting panels,
    check the output folder.

    Args:
        suite: the suite; None for a forgetting-only run of ``forgetting``.
        forgetting: a forgetting section to run instead of the suite's (``--forgetting-only`` without a suite).

    Raises:
        EvalkitError: the first problem found; nothing has been loaded or generated yet.
    """
    check_writable_dir(options.runs_dir, "--runs-dir")
    if options.use_cache and options.cache_path is None:
        check_writable_dir(evalkit_home(), "EVALKIT_HOME")
    spec = forgetting or (suite.forgetting if suite else None)
    plan = RunPlan(suite=suite, options=options, all_items=[], items=[], metrics=[], messages={}, forgetting_spec=spec)
    if not plan.task and spec is None:
        where = f"{suite.path}: " if suite else ""
        raise ForgettingError(f"{where}--forgetting-only: nothing to run; add a forgetting: section to the suite or name --panel")
    if options.shard and not plan.task:
        raise ForgettingError(f"--shard {options.shard[0]}/{options.shard[1]}: --forgetting-only has no suite items to shard; "
                              f"run it once, without --shard")
    if plan.task:
        assert suite is not None
        _plan_task(plan, suite, options, warn)
    # A sharded run checks forgetting once, in shard 0; `evalkit merge` carries it into the merged run.
    if spec and (options.shard is None or options.shard[0] == 0):
        plan.forgetting = prepare_forgetting(spec, options.limit)  # unknown panel, missing data: before any model loads
    return plan


def _plan_task(plan: RunPlan, suite: Suite, options: RunOptions, warn: Callable[[str], None] | None) -> None:
    where = str(suite.path)
    all_items = load_items(suite.data, where, allow_network=options.backend_options.allow_network)
    if options.limit:
        all_items = all_items[: options.limit]
    items = select_shard(all_items, *options.shard) if options.shard else all_items
    if not items:
        raise DataError(f"--shard {options.shard[0]}/{options.shard[1]}: this shard has no items (the suite has {len(all_items)}); use fewer shards")  # type: ignore[index]
    judge = make_judge(suite, options.judge)
    metrics = [build_metric(spec, suite.dir, judge) for spec in suite.metrics]
    renderer = Renderer(suite.prompt, where)
    plan.messages = {item.id: renderer.messages(item) for item in items}  # a template error fails here, before loading
    plan.all_items, plan.items, plan.metrics, plan.judge = all_items, items, metrics, judge

    def _plan_warn(message: str) -> None:
        plan.warnings.append(message)
        if warn:
            warn(message)

    plan.judge_labels = check_judge(judge, metrics, options.judge, _plan_warn, warn)  # a bad judge setting fails here, before loading
    problems, _ = dry_score(items, metrics, renderer, suite.prompt.target is not None)
    raise_for_unscorable(problems, where)  # a metric that can score no row would leave the run with no verdict on it
    for problem in problems:
        _plan_warn(problem.describe(where).split(": ", 1)[1])


def run_suite(
    suite: Suite | None,
    options: RunOptions = RunOptions(),
    *,
    backend: Backend | None = None,
    judge_backend: Backend | None = None,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
    forgetting: ForgettingSpec | None = None,
) -> RunResult:
    """Run every arm on the suite's items, score them, run its forgetting checks, and write the run directory.

    Writes ``manifest.json``, ``generations.jsonl``, ``scores.csv`` and ``summary.json`` (and
    ``forgetting.csv``/``drift.csv`` with a forgetting section); ``evalkit.report.write_report(run_dir)``
    renders ``report.md`` and the plot from them. Judged metrics and the forgetting panels run on
    the same backend and cache as the task generations (one base load).

    Args:
        suite: the suite; None for a forgetting-only run of ``forgetting``.
        backend: use this backend instead of opening ``options.backend`` (tests pass a fake one);
            the caller keeps it open. A backend the run opens itself is closed at the end.
        judge_backend: use this backend as the judge of judged metrics instead of the configured one
            (tests pass a fake or counting one); the caller keeps it open.
        progress: called as generation advances (and as judges and forgetting panels work).
        warn: called with each warning as it arises (they are also in the manifest).
        forgetting: a forgetting section to run instead of the suite's (``--forgetting-only`` without a suite).

    Raises:
        EvalkitError: any input problem, found before weights load or generation starts.
    """
    started = time.time()
    plan = plan_run(suite, options, warn, forgetting)
    warnings = plan.warnings
    if judge_backend is not None and plan.judge is not None:
        plan.judge.use(judge_backend)

    def _warn(msg: str) -> None:
        warnings.append(msg)
        if warn:
            warn(msg)

    cache_file = (options.cache_path or evalkit_home() / "cache.sqlite") if options.use_cache else None
    decoding = suite.generation.decoding() if plan.task and suite else {}
    batch_size = options.batch_size or (suite.generation.batch_size if suite else None) or default_batch_size()
    forgot = None
    with GenerationCache(cache_file) as cache, ExitStack() as stack:  # a bad cache fails here, before any model loads
        if backend is None:
            backend = open_backend(options.backend, options.base, options.adapters, options.backend_options)
            stack.callback(backend.close)
        if plan.forgetting:
            check_forgetting_backend(backend, plan.forgetting)
        for ad in backend.adapters:
            _check_training_match(ad.name, ad.train_record, backend, _warn)
        # The judge's backend is constructed now (a dead endpoint fails before generation); judged metrics use it below.
        stack.enter_context(judging(plan.judge, plan.metrics, backend, cache, progress, options.backend_options.allow_network))
        generations, generated = generate_all(plan, backend, cache, decoding, batch_size, progress)
        identity, template_hash = backend.identity(), backend.template_hash
        base, adapters = backend.base, backend.adapters
        scores = score_all(plan.items, generations, plan.metrics, messages=plan.messages, population=plan.all_items)
        extra = judge_manifest(plan.judge, plan.metrics, len(plan.all_items), plan.judge_labels)
        if plan.forgetting:
            arms_fp = [("base", None), *[(a.name, a.fingerprint) for a in adapters]]
            forgot = run_forgetting(plan.forgetting, backend, cache, arms_fp, dict(identity), seed=options.seed, progress=progress)
    failed = {arm: sum(g.arm == arm and g.error is not None for g in generations) for arm in ["base", *(a.name for a in adapters)]}
    if any(failed.values()):
        per_arm = ", ".join(f"{arm}: {n} of {len(plan.items)}" for arm, n in failed.items())
        _warn(f"{sum(failed.values())} of {len(generations)} generations failed after retries ({per_arm}); they are recorded "
              f"as errors for every metric (see the error field of generations.jsonl) and are tried again on the next run")

    arms = ["base", *(a.name for a in adapters)]
    from evalkit.compare import summarize  # scipy: ~1-2 s of import, paid after generation rather than before the first batch

    summary = summarize(plan.name, plan.items, scores, [(m.name, m.binary) for m in plan.metrics], arms, generations, seed=options.seed)
    for arm, share in summary.identical_outputs.items():
        if share >= 0.95:
            _warn(f"adapter {arm!r} had (almost) no effect: its output equals base's on {share:.0%} of items")
    for metric in summary.unscored():
        _warn(f"metric {metric!r} could not score any item in at least one arm: its row reports no difference, "
              f"see the error column of scores.csv")
    if forgot:
        summary = replace(summary, forgetting=forgot.summary)
        extra["forgetting"] = forgot.record()
        for d in forgot.summary.drift:
            if d.no_effect:
                _warn(f"adapter {d.arm!r} had no effect: its KL from base is {d.mean_kl:.1e} nats per token over {d.tokens} tokens "
                      f"(next-token distributions identical); check that the adapter was trained and loaded (LoRA B = 0?)")

    manifest = Manifest(
        version=MANIFEST_VERSION,
        suite=_suite_info(suite, plan.forgetting_spec),
        base=BaseInfo(spec=base.spec, path=str(base.path) if base.path else None, fingerprint=base.fingerprint,
                      source=base.source, config=_model_config(base.path)),
        adapters=[_adapter_info(a) for a in adapters],
        backend=identity,
        chat_template_sha256=template_hash,
        decoding=decoding,
        batch_size=batch_size,
        metrics=[MetricInfo(name=m.name, type=m.type, params=m.params, binary=m.binary) for m in plan.metrics],
        n_items=len(plan.items),
        limit=options.limit,
        generated=generated,
        cached=sum(g.cached for g in generations),
        started=_dt.datetime.fromtimestamp(started, _dt.timezone.utc).isoformat(timespec="seconds"),
        wall_s=round(time.time() - started, 2),
        versions=versions(),
        git_commit=git_commit(suite.dir if suite else Path.cwd()),
        warnings=warnings,
        gate=_gate_policy(suite, plan.task),
        shard=_shard_info(plan),
        extra=extra,
    )
    name = plan.name + (f"-shard{options.shard[0]}of{options.shard[1]}" if options.shard else "")
    run_dir = new_run_dir(options.runs_dir, name)
    write_run(run_dir, manifest, generations, plan.items, plan.messages, scores, summary)
    if forgot:
        write_forgetting_rows(run_dir, forgot)
    return RunResult(run_dir=run_dir, summary=summary, manifest=manifest, generated=generated, cached=manifest.cached, warnings=warnings)


def generate_all(plan: RunPlan, backend: Backend, cache: GenerationCache, decoding: dict[str, Any], batch_size: int,
                 progress: Progress | None = None) -> tuple[list[Generation], int]:
    """Every arm's generation for every item, from the cache where possible; returns (generations, newly generated)."""
    requests = {it.id: GenerateRequest(messages=tuple(plan.messages[it.id]), prompt=backend.render(plan.messages[it.id])) for it in plan.items}
    identity = dict(backend.identity())
    if identity.get("dtype", "float32") != "float32" or decoding.get("do_sample"):
        # Greedy float32 outputs do not depend on batching (tested); reduced precision and sampling do.
        identity["batch_size"] = batch_size
    generations: list[Generation] = []
    generated = 0
    for arm, adapter_fp in [("base", None), *[(a.name, a.fingerprint) for a in backend.adapters]]:
        gens, n_new = _generate_arm(backend, cache, plan.items, requests, arm, adapter_fp, identity, decoding, batch_size, progress)
        generations.extend(gens)
        generated += n_new
    return generations, generated




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


def _shard_info(plan: RunPlan) -> ShardInfo | None:
    if not plan.options.shard:
        return None
    positions = {it.id: i for i, it in enumerate(plan.all_items)}
    return ShardInfo(index=plan.options.shard[0], count=plan.options.shard[1], item_ids=[it.id for it in plan.items],
                     positions=[positions[it.id] for it in plan.items], total=len(plan.all_items))


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


def score_all(items: Sequence[Item], generations: Sequence[Generation], metrics: Sequence[Metric], *,
              messages: dict[str, list[dict[str, str]]] | None = None, population: Sequence[Item] | None = None) -> list[ScoreRow]:
    """One score per item × arm × metric (errors recorded, never dropped), metric by metric.

    Each metric scores all its outputs in one ``score_many`` call, so a judged metric sends its
    judge batches. A model-backed metric with ``params.sample`` scores only its seeded sample of
    ``population`` (all the suite's items, so shards agree); other items get no row for it.

    Args:
        messages: the chat messages per item (judged metrics show the task to the judge).
        population: the items a sample is drawn from (default ``items``).
    """
    by_id = {it.id: it for it in items}
    reference = {g.item_id: g for g in generations if g.arm == "base"}
    ids = [it.id for it in (population if population is not None else items)]
    scored: dict[tuple[int, str], Score] = {}
    for m in metrics:
        chosen = sample_ids(ids, m.sample, m.sample_seed)
        todo: list[tuple[int, ScoreRequest]] = []
        for k, g in enumerate(generations):
            if g.item_id not in chosen:
                continue
            if g.error is not None:
                scored[(k, m.name)] = Score.failed(f"no output: {g.error}")
                continue
            ref = reference.get(g.item_id)
            todo.append((k, ScoreRequest(
                output=g.text, item=by_id[g.item_id], arm=g.arm, is_reference=g.arm == "base",
                reference_output=ref.text if ref is not None and ref.error is None and g.arm != "base" else None,
                messages=tuple(messages.get(g.item_id, ())) if messages else ())))
        for (k, _), s in zip(todo, m.score_many([r for _, r in todo])):
            scored[(k, m.name)] = s
    rows = []
    for k, g in enumerate(generations):
        for m in metrics:
            s = scored.get((k, m.name))
            if s is not None:
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


def new_run_dir(runs_dir: Path, name: str) -> Path:
    """A new, empty ``runs_dir/<YYYYmmdd-HHMMSS>-<name>`` (``-2``, ``-3``, … when taken): never an existing one."""
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
