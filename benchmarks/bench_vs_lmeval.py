"""A two-arm `evalkit run` against lm-evaluation-harness run twice (base, then peft), side by side.

    python benchmarks/bench_vs_lmeval.py [--items 60] [--batch-size 32] [--adapter runs/adapters/incident-triage-r8]
                                         [--suites suites/incident-triage.yaml,benchmarks/suites/incident-summary.yaml]
                                         [--merge] [--lmeval-venv /tmp/lmeval-venv]

For each suite: the first ``--items`` items are rendered by evalkit's own suite code and
written as a local lm-eval ``generate_until`` task (``--include_path``; the suite's system
prompt as ``--system_instruction``, the user turn as ``doc_to_text``, ``--apply_chat_template``),
so both tools send the same chat-template text to the same model. Then, as separate processes
timed from launch to exit (start-up and model loads included):

1. ``lm-eval run --model hf --model_args pretrained=BASE`` (base arm);
2. ``lm-eval run --model hf --model_args pretrained=BASE,peft=ADAPTER`` (adapter arm);
3. ``evalkit run SUITE --adapter NAME=ADAPTER`` (both arms, one process), uncached, on a copy
   of the suite without its judged metrics and its forgetting section (lm-eval only generates;
   both tools do the same work: generate, then score cheaply);
4. with ``--merge``: the same evalkit run with ``--merge-adapters``.

All greedy, float32, CPU, the suite's ``max_new_tokens`` and the same batch size. Prints wall
times, the ratio (lm-eval base + peft) / evalkit, evalkit's generated tokens/s per arm and the
adapter/base cost per generated token, each process's peak resident memory, and the share of
items whose greedy text is identical to lm-eval's per arm (and, with ``--merge``, merged vs
unmerged). lm-evaluation-harness lives in its own throwaway virtual environment, created
with a pinned version if absent (it needs network access to the package index once).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("EVALKIT_HOME", str(REPO / ".cache" / "evalkit"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

LM_EVAL = "lm_eval==0.4.13"
PEFT = "peft==0.21.2"  # lm-eval's peft= needs it; the version evalkit uses
TORCH = "torch==2.13.0"  # pinned first, so pip does not pull a CUDA build


def ensure_lmeval(venv: Path) -> Path:
    """The lm-eval executable in ``venv``, creating the environment if it is missing."""
    exe = venv / "bin" / "lm-eval"
    py = venv / "bin" / "python"
    if not exe.exists():
        print(f"creating {venv} with {LM_EVAL} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", TORCH], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", LM_EVAL, PEFT], check=True)
    if subprocess.run([str(py), "-c", "import peft"], capture_output=True).returncode != 0:
        subprocess.run([str(py), "-m", "pip", "install", "-q", PEFT], check=True)
    return exe


def timed(cmd: list[str], env: dict[str, str], log: Path) -> tuple[float, float]:
    """Run ``cmd`` to completion; (wall seconds, peak resident memory in GiB of that process)."""
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):  # evalkit exits 1 when a gate fails; still a finished run
        sys.exit(f"{cmd[0]} exited {code}; see {log}:\n" + log.read_text()[-3000:])
    return wall, usage.ru_maxrss / 2**20  # KiB on Linux


def write_task(folder: Path, name: str, items: list[Any], messages: dict[str, list[dict[str, str]]], max_new_tokens: int) -> str | None:
    """An lm-eval task over these items; returns the system prompt (lm-eval takes one for the whole run)."""
    systems = {m[0]["content"] for m in messages.values() if m[0]["role"] == "system"}
    if len(systems) > 1 or any(len(m) != (2 if systems else 1) for m in messages.values()):
        sys.exit(f"{name}: lm-eval takes one system prompt and one user turn per item; this suite differs")
    rows = [{"id": it.id, "user": messages[it.id][-1]["content"]} for it in items]
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    # doc_to_target is empty: a target would make lm-eval append its target delimiter to the user turn.
    (folder / f"{name}.yaml").write_text(json.dumps({
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(folder / f"{name}.jsonl")}},
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "{{user}}",
        "doc_to_target": "",
        "generation_kwargs": {"until": [], "do_sample": False, "max_gen_toks": max_new_tokens},
        "metric_list": [{"metric": "bypass"}],
    }, indent=1))
    return systems.pop() if systems else None


def lmeval_texts(out: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(text, prompt) per item id from lm-eval's logged samples."""
    (samples,) = out.rglob("samples_*.jsonl")
    texts, prompts = {}, {}
    for line in samples.read_text().splitlines():
        s = json.loads(line)
        texts[s["doc"]["id"]] = s["resps"][0][0]
        prompts[s["doc"]["id"]] = s["arguments"]["gen_args_0"]["arg_0"]
    return texts, prompts


def evalkit_generations(runs_dir: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """arm -> item id -> generation record, from the newest run directory."""
    run_dir = max((p for p in runs_dir.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    by_arm: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for line in (run_dir / "generations.jsonl").read_text().splitlines():
        g = json.loads(line)
        by_arm[g["arm"]][g["item_id"]] = g
    return by_arm


def per_token_s(gens: dict[str, dict[str, Any]]) -> tuple[float, int]:
    """(seconds per generated token, tokens) for one arm: its batches' wall time over its tokens."""
    tokens = sum(g["completion_tokens"] for g in gens.values())
    return sum(g["latency_s"] for g in gens.values()) / tokens, tokens


def same(a: str, b: str) -> bool:
    return a.strip() == b.strip()


JUDGED = {"faithfulness", "judge", "pairwise"}


@contextlib.contextmanager
def generation_only(suite_path: Path) -> Iterator[Path]:
    """A copy of the suite beside it (relative paths keep working) without judged metrics, judge,
    forgetting section or gate, removed again afterwards."""
    import yaml

    doc = yaml.safe_load(suite_path.read_text())
    doc["metrics"] = [m for m in doc["metrics"] if m["type"] not in JUDGED]
    for key in ("judge", "forgetting", "gate"):
        doc.pop(key, None)
    copy = suite_path.with_name(f".{suite_path.stem}.bench-generation-only.yaml")
    copy.write_text(yaml.safe_dump(doc, sort_keys=False))
    try:
        yield copy
    finally:
        copy.unlink()


def bench_suite(suite_path: Path, args: argparse.Namespace, exe: Path, adapter: Path, tmp: Path) -> dict[str, float]:
    with generation_only(suite_path) as stripped:
        return _bench_suite(stripped, args, exe, adapter, tmp)


def _bench_suite(suite_path: Path, args: argparse.Namespace, exe: Path, adapter: Path, tmp: Path) -> dict[str, float]:
    from evalkit.models import resolve_model
    from evalkit.models.hf import load_tokenizer
    from evalkit.runner import RunOptions, plan_run
    from evalkit.suite import load_suite

    suite = load_suite(suite_path)
    plan = plan_run(suite, RunOptions(limit=args.items))
    base = resolve_model("smollm2-135m-instruct")
    name = f"bench_{suite.name.replace('-', '_')}"
    folder = tmp / name
    folder.mkdir()
    max_new = suite.generation.max_new_tokens
    system = write_task(folder, name, plan.items, plan.messages, max_new)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(REPO), **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})}
    print(f"\n## {suite.name}: {len(plan.items)} items, {max_new} new tokens, batch {args.batch_size}, float32 greedy, "
          f"adapter {adapter.name}", flush=True)

    lm = {}
    for arm, model_args in (("base", f"pretrained={base.path},dtype=float32"),
                            ("adapter", f"pretrained={base.path},dtype=float32,peft={adapter}")):
        out = folder / f"lmeval-{arm}"
        cmd = [str(exe), "run", "--model", "hf", "--model_args", model_args, "--tasks", name, "--include_path", str(folder),
               "--apply_chat_template", "--batch_size", str(args.batch_size), "--device", "cpu", "--log_samples",
               "--output_path", str(out)] + (["--system_instruction", system] if system else [])
        wall, rss = timed(cmd, env, folder / f"lmeval-{arm}.log")
        lm[arm] = (wall, rss, *lmeval_texts(out))
        print(f"lm-eval {arm:<8} {wall:7.1f} s   peak {rss:5.2f} GiB", flush=True)

    runs = {}
    for variant, extra in (("evalkit", []), ("evalkit --merge-adapters", ["--merge-adapters"]))[: 2 if args.merge else 1]:
        rd = folder / f"runs-{len(runs)}"
        cmd = [sys.executable, "-m", "evalkit.cli", "run", str(suite_path), "--adapter", f"adapter={adapter}", "--limit", str(args.items),
               "--batch-size", str(args.batch_size), "--no-cache", "--device", "cpu", "--runs-dir", str(rd), *extra]
        wall, rss = timed(cmd, env, folder / f"evalkit-{len(runs)}.log")
        runs[variant] = (wall, rss, evalkit_generations(rd))
        print(f"{variant:<16} {wall:7.1f} s   peak {rss:5.2f} GiB  (both arms, one process)", flush=True)

    tok = load_tokenizer(base)
    rendered = {it.id: tok.apply_chat_template(plan.messages[it.id], add_generation_prompt=True, tokenize=False) for it in plan.items}
    prompts_same = sum(lm["base"][3][i] == rendered[i] for i in rendered)
    lm_wall = lm["base"][0] + lm["adapter"][0]
    ek_wall, _, gens = runs["evalkit"]
    figures = {"ratio": lm_wall / ek_wall}
    n = len(plan.items)
    print(f"prompts identical to lm-eval's: {prompts_same}/{n}")
    print(f"lm-eval base + peft {lm_wall:.1f} s  vs  evalkit two-arm {ek_wall:.1f} s  →  ratio {figures['ratio']:.2f}×")
    for arm, ek_arm in (("base", "base"), ("adapter", "adapter")):
        s_tok, tokens = per_token_s(gens[ek_arm])
        ident = sum(same(gens[ek_arm][i]["text"], lm[arm][2][i]) for i in rendered)
        figures[f"identical_{arm}"] = ident / n
        figures[f"tok_s_{arm}"] = 1 / s_tok
        print(f"  {arm:<8} evalkit {1 / s_tok:6.1f} tok/s ({tokens} tokens)   identical greedy text to lm-eval: {ident}/{n}")
    figures["adapter_per_token"] = per_token_s(gens["adapter"])[0] / per_token_s(gens["base"])[0]
    print(f"  adapter/base cost per generated token: {figures['adapter_per_token']:.2f}")
    if args.merge:
        m_wall, _, mg = runs["evalkit --merge-adapters"]
        same_merged = sum(same(mg["adapter"][i]["text"], gens["adapter"][i]["text"]) for i in rendered)
        same_base = sum(mg["base"][i]["text"] == gens["base"][i]["text"] for i in rendered)
        figures["merged_adapter_per_token"] = per_token_s(mg["adapter"])[0] / per_token_s(mg["base"])[0]
        figures["merged_identical"] = same_merged / n
        print(f"--merge-adapters: {m_wall:.1f} s (ratio to lm-eval {lm_wall / m_wall:.2f}×); adapter/base per token "
              f"{figures['merged_adapter_per_token']:.2f}; adapter text same as unmerged {same_merged}/{n}, base text same {same_base}/{n}")
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--adapter", default=str(REPO / "runs/adapters/incident-triage-r8"),
                    help="LoRA adapter folder (default: the `make demo` adapter; train it with "
                         "`evalkit train suites/incident-triage.train.yaml`)")
    ap.add_argument("--suites", default="suites/incident-triage.yaml,benchmarks/suites/incident-summary.yaml")
    ap.add_argument("--merge", action="store_true", help="also run evalkit with --merge-adapters")
    ap.add_argument("--lmeval-venv", default="/tmp/lmeval-venv")
    ap.add_argument("--threads", type=int, help="OMP_NUM_THREADS for every process (default: torch's own choice); on a "
                    "machine shared with other jobs 1 thread avoids OpenMP spin-waiting (4× faster per step here)")
    args = ap.parse_args()
    adapter = Path(args.adapter)
    if not (adapter / "adapter_config.json").exists():
        sys.exit(f"--adapter {adapter}: no adapter_config.json; train the demo adapter first "
                 f"(evalkit train suites/incident-triage.train.yaml)")
    exe = ensure_lmeval(Path(args.lmeval_venv))
    print(f"lm-eval from {exe.parent.parent}; threads per process: {args.threads or 'default'}; machine: {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="bench-vs-lmeval-") as tmp:
        for s in args.suites.split(","):
            bench_suite((REPO / s).resolve(), args, exe, adapter, Path(tmp))


if __name__ == "__main__":
    main()
