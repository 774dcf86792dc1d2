"""The ``evalkit`` command: parse options, call one library function, map the result to an exit code.

Exit codes (also in ``evalkit --help``):
    0    ok
    1    the gate failed (``evalkit gate``), or merged logits disagree (``adapter merge``)
    2    bad input: one red line naming the file, field or option and the fix
    3    internal error: a bug in evalkit or a library it calls; one line, ``--debug`` for the traceback
    130  interrupted: finished batches are cached; run the same command again to resume
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from evalkit import __version__
from evalkit._util import first_line, quiet_libraries
from evalkit.errors import EvalkitError, SuiteError

__all__ = ["main"]

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


class _StderrLog(logging.Handler):
    """evalkit's log records (e.g. "preparing the embedded model …") as plain lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        err.print(escape(record.getMessage()), style="yellow" if record.levelno >= logging.WARNING else None)


class _ArmProgress:
    """One bar per arm, drawn only once generation starts (an early error leaves no empty bar behind)."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        columns = (TextColumn("[bold]{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
        self.bar = Progress(*columns, console=err, transient=False)
        self.tasks: dict[str, Any] = {}

    def __call__(self, arm: str, done: int, total: int) -> None:
        if not self.tasks:
            self.bar.start()
        if arm not in self.tasks:
            self.tasks[arm] = self.bar.add_task(arm, total=total)
        self.bar.update(self.tasks[arm], completed=done)

    def __enter__(self) -> _ArmProgress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self.tasks:
            # an error's one line stands alone; after Ctrl-C the bar shows how far the run got
            if exc_type is not None and not issubclass(exc_type, KeyboardInterrupt):
                self.bar.live.transient = True
            self.bar.stop()


def _offline(allow_network: bool) -> None:
    if not allow_network:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def _shard(text: str) -> tuple[int, int]:
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N (e.g. 0/4: the first of four shards)") from None
    if not sep or n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= I < N, e.g. 0/4 … 3/4")
    return i, n


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive, finite number")
    return value


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be " + ("0 or more" if minimum == 0 else f"at least {minimum}"))
        return value

    return parse


_non_negative_int = _int_at_least(0)
_positive_int = _int_at_least(1)


# ---------------------------------------------------------------- run


def _backend_options(args: argparse.Namespace) -> Any:
    from evalkit.models import BackendOptions, LoadOptions

    return BackendOptions(
        load=LoadOptions(dtype=args.dtype, quantize=args.quantize, device=args.device),
        allow_pickle=args.allow_pickle,
        allow_network=args.allow_network,
        allow_base_mismatch=args.allow_base_mismatch,
        endpoint=args.endpoint,
        api_key_env=args.api_key_env,
        concurrency=args.concurrency,
        timeout_s=args.timeout,
        max_retries=args.max_retries,
        tensor_parallel_size=args.tensor_parallel_size,
        max_model_len=args.max_model_len,
        merge_adapters=args.merge_adapters,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from evalkit.suite import load_suite

    # before the heavier imports below: a typo in the path is reported at once
    suite = load_suite(args.suite) if args.suite else None
    forgetting = _forgetting_options(args, suite)

    from evalkit.report import write_report
    from evalkit.report.markdown import delta_table, forgetting_table, headline
    from evalkit.runner import RunOptions, run_suite

    options = RunOptions(
        base=args.base,
        adapters=tuple(args.adapter or ()),
        backend=args.backend,
        backend_options=_backend_options(args),
        runs_dir=Path(args.runs_dir),
        cache_path=Path(args.cache) if args.cache else None,
        use_cache=not args.no_cache,
        batch_size=args.batch_size,
        limit=args.limit,
        shard=args.shard,
        seed=args.seed,
        judge=_judge_overrides(args),
        forgetting_only=args.forgetting_only,
    )
    with _ArmProgress() as progress:
        result = run_suite(suite, options, progress=progress, warn=lambda m: err.print(f"[yellow]warning:[/] {escape(m)}"),
                           forgetting=forgetting)
    report = write_report(result.run_dir)
    s = result.summary
    if len(s.arms) > 1 and s.metrics:
        out.print(headline(s).replace("**", ""))
        out.print(delta_table(s), markup=False)
    if s.forgetting:
        out.print(forgetting_table(s.forgetting, s.reference), markup=False)
    counts = f"{result.generated} generated, {result.cached} from cache" if s.metrics else ""
    forgetting = result.manifest.extra.get("forgetting")
    if forgetting:
        counts += ("; " if counts else "") + f"forgetting: {forgetting['computed']} computed, {forgetting['cached']} from cache"
    out.print(f"{counts} · report: [bold]{escape(str(report))}[/]")
    return 0


def _judge_overrides(args: argparse.Namespace) -> Any:
    from evalkit.judges.stage import JudgeOverrides

    return JudgeOverrides(spec=args.judge, endpoint=args.judge_endpoint, api_key_env=args.judge_api_key_env)


def _add_judge_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("judge (judged metrics: faithfulness, judge, pairwise)")
    group.add_argument("--judge", metavar="BACKEND:MODEL", help="the judge, over the suite's judge: section, e.g. "
                       "hf:smollm2-135m-instruct (the smoke-level default), vllm:/models/qwen2.5-7b-instruct, openai:gpt-4o-mini")
    group.add_argument("--judge-endpoint", metavar="URL", help="an openai judge's base URL, e.g. http://127.0.0.1:8000/v1")
    group.add_argument("--judge-api-key-env", metavar="VAR", help="name of the environment variable holding the judge's API key "
                       "(the key itself is never read from the command line or written anywhere)")


def cmd_judge_calibrate(args: argparse.Namespace) -> int:
    from evalkit._util import atomic_write
    from evalkit.judges.agreement import agreement_markdown
    from evalkit.judges.calibrate import calibrate
    from evalkit.suite import load_suite

    if args.out:
        _refuse_existing(Path(args.out), args.overwrite)
    suite = load_suite(args.suite)
    with _ArmProgress() as progress:
        result = calibrate(suite, Path(args.labels), overrides=_judge_overrides(args), run_dir=Path(args.run) if args.run else None,
                           cache_path=Path(args.cache) if args.cache else None, use_cache=not args.no_cache,
                           allow_network=args.allow_network, progress=progress,
                           note=lambda m: err.print(f"[yellow]warning:[/] {escape(m)}"))
    j = result.judge
    judge = f"{j.get('backend')}:{j.get('model')}" + (f" at {j['endpoint']}" if j.get("endpoint") else "")
    text = "\n".join([f"# Judge agreement with human labels: {suite.name}", "",
                       f"Judge `{judge}`, {result.labels} labels from `{args.labels}`.", "", *agreement_markdown(result.agreements), ""])
    if args.out:
        atomic_write(Path(args.out), text)
        err.print(f"wrote {args.out}")
    out.print(text, markup=False)
    return 0


def _panel_option(text: str) -> tuple[str, int | None]:
    name, sep, n = text.partition(":")
    if not sep:
        return name, None
    if n == "all":
        return name, 0
    try:
        value = int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give NAME or NAME:N (N a whole number of items, or all)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: N must be at least 1 (or all)")
    return name, value


def _forgetting_options(args: argparse.Namespace, suite: Any) -> Any:
    """The forgetting section named on the command line (``--forgetting-only`` without a suite), else None."""
    from evalkit.errors import ForgettingError

    flags = [f for f, v in (("--panel", args.panel), ("--kl-passages", args.kl_passages), ("--max-drop", args.max_drop),
                            ("--max-kl", args.max_kl)) if v is not None]
    if suite is None and not args.forgetting_only:
        raise ForgettingError("evalkit run: give a suite file, or --forgetting-only with --panel NAME to check an adapter without one (see evalkit run --help)")
    if suite is not None:
        if flags:
            raise ForgettingError(f"{flags[0]}: only with --forgetting-only and no suite file; with a suite, set panels in its forgetting: section")
        return None
    from evalkit.forgetting.spec import parse_forgetting

    panels = []
    for name, n in args.panel or []:
        entry: dict[str, Any] = {"name": name, **({"n": "all" if n == 0 else n} if n is not None else {})}
        if args.max_drop is not None:
            entry["max_drop"] = args.max_drop
        panels.append(entry)
    kl: dict[str, Any] | bool = False
    if args.kl_passages is None or args.kl_passages > 0:
        kl = {"passages": args.kl_passages or 32, **({"max_kl": args.max_kl} if args.max_kl is not None else {})}
    elif args.max_kl is not None:
        raise ForgettingError("--max-kl needs KL drift; drop --kl-passages 0")
    return parse_forgetting({"panels": panels, "kl": kl}, "--forgetting-only")


# ---------------------------------------------------------------- validate / report / metrics


def cmd_validate(args: argparse.Namespace) -> int:
    from evalkit.suite import load_suite
    from evalkit.validate import check_suite

    check = check_suite(load_suite(args.suite), allow_network=args.allow_network)
    for w in check.warnings:
        err.print(f"[yellow]warning:[/] {escape(w)}")
    if check.problems:
        raise SuiteError(check.problems[0].describe(str(check.suite.path)))
    metrics = ", ".join(m.name for m in check.metrics)
    extra = ""
    if check.suite.forgetting:
        from evalkit.forgetting import prepare

        prepared = prepare(check.suite.forgetting)  # the data package is there and every panel loads
        parts = [f"{p} {len(v)}/{prepared.totals[p]}" for p, v in prepared.items.items()]
        parts += [f"kl {len(prepared.passages)} passages"] if prepared.passages else []
        extra = f"; forgetting: {', '.join(parts)}"
    out.print(f"[green]ok[/] {escape(str(check.suite.path))}: {len(check.items)} items render, metrics ({escape(metrics)}) score every row{escape(extra)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from evalkit.report import render, write_report
    from evalkit.rundir import load_run

    fmt = "json" if args.json else args.format
    if fmt == "md" and not args.stdout:
        path = write_report(args.run_dir)
        out.print(path.read_text(encoding="utf-8"), markup=False)
        err.print(f"wrote {path}")
        return 0
    out.print(render(load_run(args.run_dir), fmt), markup=False, soft_wrap=True)
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    from evalkit import registry
    from evalkit.metrics import metric  # noqa: F401  (registers the built-ins)

    for name in registry.names("metric"):
        info = registry.lookup("metric", name).info
        kind = ("pass/fail" if info.get("binary") else "continuous") + (", judged" if info.get("needs_model") else "")
        out.print(f"[bold]{name:<16}[/] {kind:<18} {escape(info.get('description', ''))}")
    for failure in registry.failures("metric"):  # a broken plugin hides its metrics: say so, not only on a lookup miss
        err.print(f"[yellow]warning:[/] {escape(failure)}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from evalkit.compare import compare_runs
    from evalkit.report.markdown import compare_markdown
    from evalkit.rundir import load_run

    if args.out:
        _refuse_existing(Path(args.out), args.overwrite)
    run_a, run_b = load_run(args.run_a), load_run(args.run_b)
    summary = compare_runs(run_a, run_b, args.arm_a, args.arm_b, seed=args.seed)
    for note in summary.extra["differences"]:
        err.print(f"[yellow]warning:[/] {escape(note)}")
    text = compare_markdown(summary)
    if args.out:
        _write(Path(args.out), text, "choose another --out")
        err.print(f"wrote {args.out}")
    out.print(text, markup=False)
    return 0


def _refuse_existing(path: Path, overwrite: bool) -> None:
    """--out must not replace a file the user did not ask to replace, and must be writable (checked before work)."""
    from evalkit._util import check_writable_dir

    if path.is_dir():
        raise SuiteError(f"--out {path}: is a folder; give a file path")
    if path.exists() and not overwrite:
        raise SuiteError(f"--out {path}: already exists; pass --overwrite to replace it, or choose another path")
    check_writable_dir(path.parent if str(path.parent) else Path("."), "--out folder")


def cmd_merge(args: argparse.Namespace) -> int:
    from evalkit.report import write_report
    from evalkit.report.markdown import delta_table, headline
    from evalkit.rundir import load_run
    from evalkit.shards import merge_shards

    run_dir = merge_shards(args.run_dirs, Path(args.runs_dir))
    report = write_report(run_dir)
    summary = load_run(run_dir).summary
    if len(summary.arms) > 1:
        out.print(headline(summary).replace("**", ""))
        out.print(delta_table(summary), markup=False)
    out.print(f"merged {len(args.run_dirs)} shards, {summary.n_items} items · report: [bold]{escape(str(report))}[/]")
    return 0


def _write(path: Path, text: str, fix: str) -> None:
    """Write an output file; a folder that turned out unwritable is one line, not a crash."""
    from evalkit._util import atomic_write
    from evalkit.errors import RunDirError

    try:
        atomic_write(path, text)
    except OSError as exc:
        raise RunDirError(f"{path}: cannot write ({exc.strerror or exc}); {fix}") from None


def cmd_gate(args: argparse.Namespace) -> int:
    from evalkit.gate import evaluate_gate, gate_markdown, run_policy
    from evalkit.rundir import load_run

    if args.out:  # checked before reading anything: e.g. --out RUN/manifest.json would destroy the run
        _refuse_existing(Path(args.out), args.overwrite)
    run = load_run(args.run_dir)
    policy = run_policy(args.policy, run.manifest, where=run.manifest.suite.path)
    result = evaluate_gate(run.summary, policy)
    text = gate_markdown(result, run.summary, run.path)
    target = Path(args.out) if args.out else run.path / "gate.md"
    _write(target, text, "pass --out with a writable path for the gate summary")
    for r in result.results:
        mark = "[green]pass[/]" if r.passed else "[red]FAIL[/]"
        out.print(f"{mark}  {escape(r.arm)} · {escape(r.rule)}: {escape(r.observed)} (needs {escape(r.required)})")
    verdict = "[bold green]gate passed[/]" if result.passed else f"[bold red]gate failed[/]: {len(result.failures)} of {len(result.results)} checks"
    out.print(f"{verdict} · summary for the PR: {target}")
    return 0 if result.passed else 1


# ---------------------------------------------------------------- train


def cmd_train(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from evalkit.train import TrainEvents, load_train_config, train

    import datasets

    datasets.disable_progress_bars()  # TRL tokenizes with datasets.map; evalkit shows its own progress
    config = load_train_config(args.config)
    if args.output_dir:
        from dataclasses import replace

        config = replace(config, output_dir=Path(args.output_dir).resolve())
    columns = (TextColumn("[bold]train[/] loss {task.fields[loss]}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    # The bar starts at the first step: a pre-flight refusal stays one line on stderr.
    bar = Progress(*columns, console=err)
    task = bar.add_task("train", total=None, loss="–")

    def step(done: int, total: int, loss: float | None) -> None:
        if not bar.live.is_started:
            bar.start()
        bar.update(task, completed=done, total=total, loss=f"{loss:.3f}" if loss is not None else "–")

    events = TrainEvents(info=lambda m: bar.console.print(escape(m)), warn=lambda m: bar.console.print(f"[yellow]warning:[/] {escape(m)}"), step=step)
    try:
        result = train(config, resume=args.resume, overwrite=args.overwrite, events=events, allow_network=args.allow_network)
    finally:
        if bar.live.is_started:
            bar.stop()
    loss = f"{result.final_loss:.3f}" if result.final_loss is not None else "–"
    out.print(f"adapter: [bold]{result.adapter_dir}[/] · final loss {loss} · {result.record['optimizer_steps']} steps in {result.wall_s:.0f} s")
    return 0


def cmd_adapter_inspect(args: argparse.Namespace) -> int:
    from evalkit.train.adapter_tools import inspect_adapter

    rep = inspect_adapter(args.path, base=args.base, max_lora_rank=args.max_lora_rank, allow_pickle=args.allow_pickle)
    scaling = f"{rep.scaling:g} (alpha/√r, rsLoRA)" if rep.use_rslora else f"{rep.scaling:g} (alpha/r)"
    rows = [
        ("path", str(rep.path)),
        ("rank", f"{rep.r}" + (f" (max {rep.max_rank} via rank_pattern)" if rep.max_rank != rep.r else "")),
        ("alpha", f"{rep.alpha:g}"),
        ("scaling", scaling),
        ("target modules", ", ".join(rep.target_modules)),
        ("modules_to_save", ", ".join(rep.modules_to_save) or "none"),
        ("DoRA", "yes" if rep.use_dora else "no"),
        ("bias", rep.bias),
        ("parameters", f"{rep.parameters:,}"),
        ("size", f"{rep.size_bytes / 1e6:.2f} MB"),
        ("trained on", rep.base + (" (evalkit-train.json present)" if rep.trained_by_evalkit else "")),
    ]
    if rep.compatible_with:
        rows.append(("fits base", f"{rep.compatible_with}: yes"))
    for k, v in rows:
        out.print(f"[bold]{k:<16}[/] {escape(v)}")
    if rep.vllm_ok:
        out.print(f"[bold]{'vLLM':<16}[/] [green]deployable[/] (--max-lora-rank {args.max_lora_rank})")
    else:
        out.print(f"[bold]{'vLLM':<16}[/] [red]not deployable[/]: {escape('; '.join(rep.vllm_reasons))}")
    return 0


def cmd_adapter_merge(args: argparse.Namespace) -> int:
    from evalkit.train.adapter_tools import merge_adapter

    with err.status("merging and checking logits…"):
        res = merge_adapter(args.path, args.out, base=args.base, quantize=args.quantize, tolerance=args.tolerance, allow_pickle=args.allow_pickle)
    for w in res.warnings:
        err.print(f"[yellow]warning:[/] {escape(w)}")
    verdict = "[green]agree[/]" if res.agree else "[red]DIFFER[/]"
    out.print(f"merged vs unmerged logits: max |Δ| = {res.max_abs_diff:.2e} (largest logit {res.max_logit:.1f}) → {verdict}")
    if not res.agree:
        err.print("[red]not written[/]: the merged model does not reproduce the adapter; raise --tolerance only if you accept the difference")
        return 1
    out.print(f"standalone model: [bold]{res.out_dir}[/]")
    return 0


# ---------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (``error: ...``) and exit code 2, like every other user mistake."""

    def error(self, message: str) -> None:  # type: ignore[override]
        err.print(f"[bold red]error:[/] {escape(self.prog)}: {escape(message)}; see {escape(self.prog)} --help", soft_wrap=True)
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="evalkit",
        description="What did this LoRA adapter change compared with its base model, and is the difference real?",
        epilog="Exit codes: 0 ok, 1 gate failed (or merged logits disagree), 2 bad input, 3 internal error "
        "(a bug; --debug shows the traceback), 130 interrupted.",
    )
    p.add_argument("--version", action="version", version=f"evalkit {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="evaluate base and adapters on a suite and write a run directory",
                       description="Run the base model and each adapter on the suite's prompts with the same decoding, "
                       "score them, pair them by item and write runs/<time>-<suite>/ with report.md.")
    r.add_argument("suite", nargs="?", help="suite YAML file (optional with --forgetting-only)")
    r.add_argument("--base", default="smollm2-135m-instruct", help="alias, local model folder or hub id (default: %(default)s, embedded)")
    r.add_argument("--adapter", action="append", metavar="[NAME=]PATH", help="peft LoRA adapter folder; repeat for several arms")
    r.add_argument("--backend", default="hf", metavar="NAME",
                   help="hf (transformers + peft, default), vllm (one vLLM engine, a LoRARequest per adapter) or openai "
                   "(an OpenAI-compatible server; --base and each --adapter NAME=SERVED are served model names)")
    r.add_argument("--runs-dir", default="runs", help="where run directories are created (default: %(default)s)")
    r.add_argument("--cache", help="generation cache file (default: $EVALKIT_HOME/cache.sqlite)")
    r.add_argument("--no-cache", action="store_true", help="neither read nor write the generation cache")
    r.add_argument("--batch-size", type=_positive_int, help="generation batch size (default: the suite's, else 32)")
    r.add_argument("--limit", type=_positive_int, help="evaluate only the first N items (and at most N items per forgetting panel and N KL passages)")
    r.add_argument("--shard", type=_shard, metavar="I/N", help="evaluate the I-th of N shards of the items (0-based) and write a "
                   "partial run; join the N partial runs with `evalkit merge`")
    r.add_argument("--seed", type=int, default=0, help="seed for the bootstrap statistics (default: %(default)s)")
    fg = r.add_argument_group("forgetting checks (benchmark panels and KL drift; see the suite's forgetting: section)")
    fg.add_argument("--forgetting-only", action="store_true", help="run only the forgetting checks: the suite's forgetting: section, "
                    "or without a suite the --panel options (plus KL drift)")
    fg.add_argument("--panel", action="append", type=_panel_option, metavar="NAME[:N]",
                    help="without a suite: a panel (arc_easy, arc_challenge, hellaswag, piqa, winogrande) and its items "
                    "(default 200; all for the whole split); repeat for several")
    fg.add_argument("--kl-passages", type=_non_negative_int, metavar="N", help="without a suite: reference passages for KL drift (default 32; 0: none)")
    fg.add_argument("--max-drop", type=_positive_float, metavar="X", help="without a suite: budget for every --panel (CI lower bound of Δ above −X), enforced by evalkit gate")
    fg.add_argument("--max-kl", type=_positive_float, metavar="NATS", help="without a suite: budget on the mean per-token KL(base ‖ adapter), enforced by evalkit gate")
    local = r.add_argument_group("local weights (--backend hf or vllm)")
    local.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="weights dtype (default: %(default)s)")
    local.add_argument("--quantize", default="none", choices=["none", "nf4", "fp4", "int8"], help="load the base quantized with bitsandbytes, e.g. to match a QLoRA adapter (hf)")
    local.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to generate (default: %(default)s: cuda when available)")
    local.add_argument("--allow-pickle", action="store_true", help="allow adapters stored as pickled adapter_model.bin (can run code)")
    local.add_argument("--allow-network", action="store_true", help="allow downloading models and datasets")
    local.add_argument("--allow-base-mismatch", action="store_true", help="use an adapter whose recorded base name differs from --base")
    local.add_argument("--merge-adapters", action="store_true", help="hf: merge each adapter into the base weights for its arm "
                       "(base weights restored exactly for the base arm): adapter arms at base speed, but greedy text may differ from "
                       "the unmerged adapter where tokens nearly tie; cached apart; not with --quantize")
    local.add_argument("--tensor-parallel-size", type=_positive_int, default=1, metavar="N", help="vllm: GPUs one engine spans (default: %(default)s)")
    local.add_argument("--max-model-len", type=_positive_int, metavar="TOKENS", help="vllm: context length to reserve KV cache for (default: the model's)")
    served = r.add_argument_group("served models (--backend openai)")
    served.add_argument("--endpoint", metavar="URL", help="the server's base URL, e.g. http://127.0.0.1:8000/v1")
    served.add_argument("--api-key-env", metavar="VAR", help="name of the environment variable that holds the API key (the key itself is never read from the command line or written anywhere)")
    served.add_argument("--concurrency", type=_positive_int, default=8, help="requests in flight at once (default: %(default)s)")
    served.add_argument("--timeout", type=_positive_float, default=120.0, metavar="SECONDS", help="per-request timeout (default: %(default)s)")
    served.add_argument("--max-retries", type=_non_negative_int, default=4, metavar="N", help="retries after 429, 5xx, timeouts and dropped connections, with backoff honouring Retry-After (default: %(default)s)")
    _add_judge_options(r)
    r.set_defaults(func=cmd_run)

    v = sub.add_parser("validate", help="check a suite, its data and its templates without running a model")
    v.add_argument("suite")
    v.add_argument("--allow-network", action="store_true")
    v.set_defaults(func=cmd_validate)

    rep = sub.add_parser("report", help="re-render a run directory's report")
    rep.add_argument("run_dir")
    rep.add_argument("--format", default="md", choices=["md", "json", "html"], help="output format (default: %(default)s)")
    rep.add_argument("--json", action="store_true", help="print summary.json (same as --format json)")
    rep.add_argument("--stdout", action="store_true", help="print only, do not rewrite report.md")
    rep.set_defaults(func=cmd_report)

    c = sub.add_parser("compare", help="paired comparison of two runs of one suite (e.g. adapter v1 vs v2), by item id",
                       description="Compare one arm of run A with one arm of run B, paired by item id: the suite's metrics and, "
                                   "when both runs have a forgetting section, its panels (paired by panel item; KL drift is "
                                   "each run's own, against its base, and is not compared).")
    c.add_argument("run_a", help="reference run directory")
    c.add_argument("run_b", help="run directory compared against it")
    c.add_argument("--arm-a", help="arm of run A (default: its first adapter, else base)")
    c.add_argument("--arm-b", help="arm of run B (default: its first adapter, else base)")
    c.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: %(default)s)")
    c.add_argument("--out", help="also write the Markdown table to this file")
    c.add_argument("--overwrite", action="store_true", help="replace the --out file if it exists")
    c.set_defaults(func=cmd_compare)

    mg = sub.add_parser("merge", help="join the partial runs of `evalkit run --shard I/N` into one run and report",
                        description="Check that the shard run directories belong together (same suite, models, backend, decoding, "
                        "metrics) and hold every item once, then compute the statistics once over all items and write a new run directory.")
    mg.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="the run directory of every shard")
    mg.add_argument("--runs-dir", default="runs", help="where the merged run directory is created (default: %(default)s)")
    mg.set_defaults(func=cmd_merge)

    g = sub.add_parser("gate", help="pass/fail a run against a policy; exit 0 pass, 1 fail, 2 bad input",
                       description="Check a run against gate rules (min_delta, max_drop, min_value, require_significant, min_n; "
                       "panel max_drop and max_kl for forgetting) from --policy or the suite's gate: section, plus the budgets "
                       "of its forgetting: section, and write a Markdown summary for the PR.")
    g.add_argument("run_dir")
    g.add_argument("--policy", help="gate policy YAML (default: the suite's gate: section)")
    g.add_argument("--out", help="where to write the Markdown summary (default: RUN_DIR/gate.md, rewritten each time)")
    g.add_argument("--overwrite", action="store_true", help="replace the --out file if it exists")
    g.set_defaults(func=cmd_gate)

    m = sub.add_parser("metrics", help="list the metrics suites can use (built-ins and plugins)")
    m.set_defaults(func=cmd_metrics)

    t = sub.add_parser("train", help="train a LoRA/QLoRA adapter from a YAML config",
                       description="Train a peft LoRA adapter with TRL as the config says; writes adapter_config.json, "
                       "adapter_model.safetensors and evalkit-train.json to output_dir.")
    t.add_argument("config", help="training config YAML (see suites/incident-triage.train.yaml)")
    again = t.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    again.add_argument("--overwrite", action="store_true", help="replace the adapter already in output_dir (swapped in only once "
                       "the new one is saved), or discard an interrupted run's checkpoints and start afresh")
    t.add_argument("--output-dir", help="override the config's output_dir")
    t.add_argument("--allow-network", action="store_true", help="allow downloading the base model")
    t.set_defaults(func=cmd_train)

    j = sub.add_parser("judge", help="measure a suite's judge against human labels")
    jsub = j.add_subparsers(dest="judge_command", required=True, metavar="ACTION")
    jc = jsub.add_parser("calibrate", help="accuracy, Cohen's κ (weighted for rubric scales) and confusion of the judge against human labels",
                         description="Judge every labelled answer with the suite's metric and judge, and compare with the human labels "
                         "(a CSV or JSONL file of item_id, metric, label[, arm][, output]).")
    jc.add_argument("suite", help="suite YAML file")
    jc.add_argument("--labels", required=True, metavar="FILE", help="human labels: CSV or JSONL with item_id, metric, label, optional arm and output")
    jc.add_argument("--run", metavar="RUN_DIR", help="take the answers from this run (labels without an output column)")
    jc.add_argument("--cache", help="cache file (default: $EVALKIT_HOME/cache.sqlite)")
    jc.add_argument("--no-cache", action="store_true", help="neither read nor write cached judge verdicts")
    jc.add_argument("--out", help="also write the Markdown to this file")
    jc.add_argument("--overwrite", action="store_true", help="replace the --out file if it exists")
    jc.add_argument("--allow-network", action="store_true", help="allow downloading the judge model")
    _add_judge_options(jc)
    jc.set_defaults(func=cmd_judge_calibrate)

    a = sub.add_parser("adapter", help="inspect or merge a LoRA adapter")
    asub = a.add_subparsers(dest="adapter_command", required=True, metavar="ACTION")
    ai = asub.add_parser("inspect", help="rank, alpha, scaling, targets, size, base, and a vLLM deployability verdict")
    ai.add_argument("path", help="adapter folder")
    ai.add_argument("--base", help="also check that the adapter fits this base")
    ai.add_argument("--max-lora-rank", type=_positive_int, default=16, help="the rank limit of the vLLM server (default: %(default)s)")
    ai.add_argument("--allow-pickle", action="store_true")
    ai.set_defaults(func=cmd_adapter_inspect)
    am = asub.add_parser("merge", help="merge into a standalone model and check merged vs unmerged logits (exit 1 if they differ)")
    am.add_argument("path", help="adapter folder")
    am.add_argument("--out", required=True, help="folder for the merged model")
    am.add_argument("--base", default="smollm2-135m-instruct", help="the base the adapter was trained on (default: %(default)s)")
    am.add_argument("--quantize", default="none", choices=["none", "nf4", "fp4", "int8"], help="merge into a quantized base (rounds)")
    am.add_argument("--tolerance", type=_positive_float, help="largest acceptable logit difference (default 1e-3; 0.5 when quantized)")
    am.add_argument("--allow-pickle", action="store_true")
    am.set_defaults(func=cmd_adapter_merge)
    for command in [*sub.choices.values(), *asub.choices.values(), *jsub.choices.values()]:  # --debug after the command works too
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors")
    return p


EXIT_OK, EXIT_GATE_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a bad option (already printed as one line)
        return int(exc.code or 0)
    # huggingface_hub reads HF_HUB_OFFLINE once, at import: set it before anything imports it
    _offline(getattr(args, "allow_network", False))
    quiet_libraries()
    log = logging.getLogger("evalkit")
    if not any(isinstance(h, _StderrLog) for h in log.handlers):
        log.addHandler(_StderrLog())
        log.setLevel(logging.INFO)
        log.propagate = False
    try:
        return int(args.func(args))
    except EvalkitError as exc:
        if args.debug:
            err.print_exception()
        # one line, always: a message that quotes a library's multi-line text is joined up
        err.print(f"[bold red]error:[/] {escape(' '.join(str(exc).split()))}", soft_wrap=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: finished batches are in the cache; run the same command again to resume")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug, not the user's input: say so, and never exit 1 ("gate failed")
        if args.debug:
            err.print_exception()
        err.print(
            f"[bold red]internal error[/] (not a problem with your input): {escape(first_line(exc))}; "
            f"rerun with --debug for the traceback and report it",
            soft_wrap=True,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
