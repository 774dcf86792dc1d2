"""Two-arm run time per backend on the same items: hf, vllm, and openai against a local vllm serve.

    python benchmarks/bench_backends.py [--items 32] [--adapter runs/adapters/incident-triage-r8]
                                        [--dtype float32] [--vllm-python .venv-vllm/bin/python] [--no-openai]

Runs the incident-triage suite (first N items, base + one adapter, uncached) with each
backend and prints them side by side: the load or engine start (outside the timed run),
the two-arm run's wall time, generated tokens/s per arm, and how many outputs are
identical to the HF backend's. The HF backend runs in this process; vLLM runs in its own
environment (``make vllm-venv``), as a worker process of this same script. The openai
row needs the openai backend (``--backend openai``) and serves the base and the adapter
with ``vllm serve --enable-lora`` on 127.0.0.1 (tests/vllm_server.py's helper).

Without --adapter (and no demo adapter on disk) a random LoRA r=8 on all linear layers,
with non-zero B, is made so the adapter arm changes outputs. Timings from a shared
machine are noisy: compare rows of one invocation, not across invocations.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("EVALKIT_HOME", str(REPO / ".cache" / "evalkit"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
SUITE = REPO / "suites" / "incident-triage.yaml"


def run_backend(name: str, base: str, adapter: str, items: int, dtype: str, runs_dir: Path, **backend_kw: Any) -> dict[str, Any]:
    """Open ``name``, load or start it (timed on its own), then time an uncached two-arm run."""
    from evalkit.models import BackendOptions, LoadOptions, open_backend
    from evalkit.runner import RunOptions, run_suite
    from evalkit.suite import load_suite

    options = BackendOptions(load=LoadOptions(dtype=dtype), **backend_kw)
    backend = open_backend(name, base, [adapter], options)
    t0 = time.perf_counter()
    if name == "hf":
        backend.model  # noqa: B018  (loads the weights)
    elif name == "vllm":
        backend.start()
    start_s = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        result = run_suite(load_suite(SUITE), RunOptions(base=base, adapters=(adapter,), backend=name, backend_options=options,
                                                         runs_dir=runs_dir, use_cache=False, limit=items), backend=backend)
        wall_s = time.perf_counter() - t0
    finally:
        backend.close()
    rows = [json.loads(line) for line in (result.run_dir / "generations.jsonl").read_text().splitlines()]
    arms: dict[str, dict[str, float]] = {}
    texts: dict[str, dict[str, str]] = {}
    for r in rows:
        arm = arms.setdefault(r["arm"], {"tokens": 0, "gen_s": 0.0})
        arm["tokens"] += r["completion_tokens"]
        arm["gen_s"] += r["latency_s"]  # per-item share of its batch's time
        texts.setdefault(r["arm"], {})[r["item_id"]] = r["text"]
    return {"start_s": start_s, "wall_s": wall_s, "arms": arms, "texts": texts, "identity": backend.identity()}


def _random_adapter(base_dir: Path, out: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir),
                           LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM"))
    model.save_pretrained(out)
    return out


def _vllm_in_its_env(python: Path, base: str, adapter: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    out = tmp / "vllm.json"
    cmd = [str(python), __file__, "--worker", "vllm", "--worker-out", str(out), "--base", base, "--adapter", adapter,
           "--items", str(args.items), "--dtype", args.dtype, "--runs-dir", str(tmp / "runs-vllm")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=sys.stderr, start_new_session=True)
    return json.loads(out.read_text())


def _openai_row(base_dir: Path, adapter_dir: Path, args: argparse.Namespace, tmp: Path) -> dict[str, Any] | str:
    from evalkit.models import backend_names

    if "openai" not in backend_names():
        return "no openai backend in this checkout"
    from tests.vllm_server import start_vllm_server

    with start_vllm_server(base_dir, {"adapter": adapter_dir}, python=Path(args.vllm_python), dtype=args.dtype,
                           log=tmp / "serve.log") as server:
        row = run_backend("openai", server.base_name, f"adapter={server.adapters['adapter']}", args.items, "float32",
                          tmp / "runs-openai", endpoint=server.base_url)
        row["start_s"] = server.startup_s
        return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=32)
    ap.add_argument("--adapter", default=str(REPO / "runs/adapters/incident-triage-r8"))
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--vllm-python", default=str(REPO / ".venv-vllm/bin/python"))
    ap.add_argument("--no-openai", action="store_true", help="skip the vllm serve + --backend openai row")
    ap.add_argument("--base", help=argparse.SUPPRESS)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    ap.add_argument("--runs-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    from evalkit._util import quiet_libraries

    quiet_libraries()
    if args.worker:  # inside another environment: one backend, results as JSON
        row = run_backend(args.worker, args.base, args.adapter, args.items, args.dtype, Path(args.runs_dir))
        Path(args.worker_out).write_text(json.dumps(row))
        return

    from evalkit.models import resolve_model

    base_dir = resolve_model("smollm2-135m-instruct").path
    tmp = Path(tempfile.mkdtemp(prefix="evalkit-bench-backends-"))
    adapter_dir = Path(args.adapter) if Path(args.adapter, "adapter_config.json").exists() else _random_adapter(base_dir, tmp / "random-lora")
    adapter = f"adapter={adapter_dir}"
    print(f"suite incident-triage, {args.items} items × 2 arms (base, adapter {adapter_dir.name}), embedded SmolLM2-135M, "
          f"{args.dtype}, greedy, uncached", flush=True)
    rows: dict[str, dict[str, Any] | str] = {"hf": run_backend("hf", str(base_dir), adapter, args.items, args.dtype, tmp / "runs-hf")}
    if Path(args.vllm_python).exists():
        rows["vllm"] = _vllm_in_its_env(Path(args.vllm_python), str(base_dir), adapter, args, tmp)
    else:
        rows["vllm"] = f"no vLLM environment at {args.vllm_python} (make vllm-venv)"
    if not args.no_openai and isinstance(rows["vllm"], dict):
        rows["openai"] = _openai_row(base_dir, adapter_dir, args, tmp)
    _print(rows)


def _print(rows: dict[str, dict[str, Any] | str]) -> None:
    ref = rows["hf"]
    assert isinstance(ref, dict)
    print(f"{'backend':<8} {'start s':>8} {'2-arm s':>8} {'base tok/s':>11} {'adapter tok/s':>14} {'× hf':>6}  identical to hf (base, adapter)")
    for name, row in rows.items():
        if isinstance(row, str):
            print(f"{name:<8} skipped: {row}")
            continue
        rate = {arm: v["tokens"] / v["gen_s"] if v["gen_s"] else 0.0 for arm, v in row["arms"].items()}
        same = {arm: sum(row["texts"][arm].get(i) == t for i, t in ref["texts"][arm].items()) for arm in ref["texts"]}
        n = len(ref["texts"]["base"])
        print(f"{name:<8} {row['start_s']:>8.1f} {row['wall_s']:>8.1f} {rate['base']:>11.1f} {rate['adapter']:>14.1f} "
              f"{ref['wall_s'] / row['wall_s']:>5.2f}×  {same['base']}/{n}, {same['adapter']}/{n}")


if __name__ == "__main__":
    main()
