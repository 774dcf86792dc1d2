"""The ``evalkit`` command: parse options, call one library function, map the result to an exit code.

Exit codes: 0 ok, 1 gate failed, 2 bad input (one red line, no traceback; ``--debug``
shows it), 130 interrupted (finished batches are cached; rerun to resume).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from evalkit import __version__
from evalkit.errors import EvalkitError

__all__ = ["main"]

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def _quiet_libraries() -> None:
    """transformers and datasets print progress bars and advice of their own; evalkit shows its own progress."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def _offline(allow_network: bool) -> None:
    if not allow_network:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


# ---------------------------------------------------------------- run


def cmd_run(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from evalkit.models import LoadOptions
    from evalkit.report.markdown import delta_table, headline
    from evalkit.runner import RunOptions, run_suite
    from evalkit.suite import load_suite

    _offline(args.allow_network)
    suite = load_suite(args.suite)
    options = RunOptions(
        base=args.base,
        adapters=tuple(args.adapter or ()),
        runs_dir=Path(args.runs_dir),
        cache_path=Path(args.cache) if args.cache else None,
        use_cache=not args.no_cache,
        batch_size=args.batch_size,
        load=LoadOptions(dtype=args.dtype, quantize=args.quantize, device=args.device),
        limit=args.limit,
        allow_pickle=args.allow_pickle,
        allow_network=args.allow_network,
        allow_base_mismatch=args.allow_base_mismatch,
        seed=args.seed,
    )
    columns = (TextColumn("[bold]{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=False) as bar:
        tasks: dict[str, int] = {}

        def progress(arm: str, done: int, total: int) -> None:
            if arm not in tasks:
                tasks[arm] = bar.add_task(arm, total=total)
            bar.update(tasks[arm], completed=done)

        result = run_suite(suite, options, progress=progress, warn=lambda m: err.print(f"[yellow]warning:[/] {escape(m)}"))
    s = result.summary
    if len(s.arms) > 1:
        out.print(headline(s).replace("**", ""))
        out.print(delta_table(s), markup=False)
    out.print(f"{result.generated} generated, {result.cached} from cache · report: [bold]{result.run_dir / 'report.md'}[/]")
    return 0


# ---------------------------------------------------------------- validate / report / metrics


def cmd_validate(args: argparse.Namespace) -> int:
    from evalkit.data import Renderer, load_items
    from evalkit.suite import load_suite

    _offline(args.allow_network)
    suite = load_suite(args.suite)
    items = load_items(suite.data, str(suite.path), allow_network=args.allow_network)
    renderer = Renderer(suite.prompt, str(suite.path))
    for item in items:
        renderer.messages(item)
    out.print(f"[green]ok[/] {suite.path}: {len(items)} items, metrics: {', '.join(m.name for m in suite.metrics)}")
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
        kind = "pass/fail" if info.get("binary") else "continuous"
        out.print(f"[bold]{name:<14}[/] {kind:<10} {info.get('description', '')}")
    return 0


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="evalkit",
        description="What did this LoRA adapter change compared with its base model, and is the difference real?",
        epilog="Exit codes: 0 ok, 1 gate failed, 2 bad input, 130 interrupted.",
    )
    p.add_argument("--version", action="version", version=f"evalkit {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="evaluate base and adapters on a suite and write a run directory",
                       description="Run the base model and each adapter on the suite's prompts with the same decoding, "
                       "score them, pair them by item and write runs/<time>-<suite>/ with report.md.")
    r.add_argument("suite", help="suite YAML file")
    r.add_argument("--base", default="smollm2-135m-instruct", help="alias, local model folder or hub id (default: %(default)s, embedded)")
    r.add_argument("--adapter", action="append", metavar="[NAME=]PATH", help="peft LoRA adapter folder; repeat for several arms")
    r.add_argument("--runs-dir", default="runs", help="where run directories are created (default: %(default)s)")
    r.add_argument("--cache", help="generation cache file (default: $EVALKIT_HOME/cache.sqlite)")
    r.add_argument("--no-cache", action="store_true", help="neither read nor write the generation cache")
    r.add_argument("--batch-size", type=int, help="generation batch size (default: suite's, else 16 on CPU, 32 on CUDA)")
    r.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="weights dtype (default: %(default)s)")
    r.add_argument("--quantize", default="none", choices=["none", "nf4", "fp4", "int8"], help="load the base quantized with bitsandbytes, e.g. to match a QLoRA adapter")
    r.add_argument("--device", default="auto", help="cpu, cuda or auto (default: %(default)s)")
    r.add_argument("--limit", type=int, help="evaluate only the first N items")
    r.add_argument("--seed", type=int, default=0, help="seed for the bootstrap statistics (default: %(default)s)")
    r.add_argument("--allow-pickle", action="store_true", help="allow adapters stored as pickled adapter_model.bin (can run code)")
    r.add_argument("--allow-network", action="store_true", help="allow downloading models and datasets")
    r.add_argument("--allow-base-mismatch", action="store_true", help="use an adapter whose recorded base name differs from --base")
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

    m = sub.add_parser("metrics", help="list the metrics suites can use (built-ins and plugins)")
    m.set_defaults(func=cmd_metrics)

    for register in _EXTRA_COMMANDS:
        register(sub)
    return p


_EXTRA_COMMANDS: list = []


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    try:
        return int(args.func(args))
    except EvalkitError as exc:
        if args.debug:
            err.print_exception()
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: finished batches are in the cache; run the same command again to resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
