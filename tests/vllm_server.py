"""The vLLM side of the tests: its environment, and a real ``vllm serve`` on 127.0.0.1.

vLLM runs in its own virtual environment (``.venv-vllm``, built by ``make vllm-venv``;
see docs/architecture.md, "vLLM gets its own environment"), so tests in the main
environment reach it through that environment's Python: :func:`vllm_python`.

API (import what you need into a test module; pytest finds imported fixtures)::

    from tests.vllm_server import smollm2_lora, vllm_server  # noqa: F401

    @pytest.mark.vllm
    def test_served_adapter_answers(vllm_server):
        url = vllm_server.base_url            # "http://127.0.0.1:PORT/v1"
        base = vllm_server.base_name          # served name of the base model ("smollm2")
        tuned = vllm_server.adapters["tuned"] # served name of the adapter arm
        vllm_server.model_dir, vllm_server.adapter_dirs["tuned"]   # what is served, on disk

* :func:`vllm_python` — the vLLM environment's interpreter; skips the test when it is
  missing, but **fails** it under CI (``CI=true``), where ``make test`` must have built it.
* :func:`vllm_env` — environment variables for a process that runs vLLM (small KV cache,
  offline, this checkout first on ``PYTHONPATH``).
* :func:`start_vllm_server` — a context manager that starts
  ``python -m vllm.entrypoints.openai.api_server`` in its own process group, waits until
  ``/v1/models`` lists every served name, yields a :class:`VLLMServer`, and always
  terminates the whole process group (SIGTERM, then SIGKILL) on exit. Usable outside
  pytest (``benchmarks/bench_backends.py`` uses it).
* fixtures ``vllm_py`` (:func:`vllm_python` as a session fixture), ``smollm2_lora`` (a random LoRA r=8 on the embedded SmolLM2, attention
  projections) and ``vllm_server`` (session-scoped: one server for the whole session,
  serving the embedded model as ``smollm2`` and ``smollm2_lora`` as ``tuned``).

Starting vLLM takes 30–50 s on a 2-core CPU (more when the machine is busy): share the
session fixture rather than starting servers per test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VLLM_VENV = REPO / ".venv-vllm"
KV_CACHE_GIB = "1"
"""VLLM_CPU_KVCACHE_SPACE for tests: 1 GiB holds ~23k tokens of SmolLM2, plenty here."""


def _vllm_python_path() -> Path:
    return Path(os.environ.get("EVALKIT_VLLM_PYTHON") or VLLM_VENV / "bin" / "python")


def vllm_missing() -> str | None:
    """Why the vLLM environment cannot be used, or None when it can (checked without importing vllm)."""
    python = _vllm_python_path()
    if not python.exists():
        return f"no vLLM environment at {python} (build it with `make vllm-venv`, or set EVALKIT_VLLM_PYTHON)"
    probe = subprocess.run([str(python), "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"],
                           capture_output=True, timeout=60)
    if probe.returncode != 0:
        return f"{python} has no vllm installed (rebuild it with `make vllm-venv`)"
    return None


def vllm_python() -> Path:
    """The vLLM environment's Python; skips the calling test without it, fails it under CI."""
    reason = vllm_missing()
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the vLLM tests: {reason}", pytrace=False)
        pytest.skip(reason)
    return _vllm_python_path()


def vllm_env(**extra: str) -> dict[str, str]:
    """Environment for a process running vLLM on this checkout's code."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(REPO),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        VLLM_CPU_KVCACHE_SPACE=env.get("VLLM_CPU_KVCACHE_SPACE", KV_CACHE_GIB),
        VLLM_NO_USAGE_STATS="1",
        DO_NOT_TRACK="1",
    )
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_group(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """Terminate ``proc``'s whole process group (vLLM's engine and workers too): SIGTERM, then SIGKILL."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        return
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(pgid, signal.SIGKILL)  # stragglers (engine workers) outlive a slow parent
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until the kernel has removed every member of the group
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)


@dataclass(frozen=True)
class VLLMServer:
    """A running ``vllm serve``."""

    base_url: str
    """OpenAI-compatible root, e.g. ``http://127.0.0.1:PORT/v1``."""
    base_name: str
    """Served name of the base model."""
    adapters: Mapping[str, str]
    """Arm name → served name of each LoRA adapter."""
    model_dir: Path
    adapter_dirs: Mapping[str, Path] = field(default_factory=dict)
    log: Path | None = None
    """The server's combined stdout/stderr."""
    startup_s: float = 0.0
    """Seconds from launch until ``/v1/models`` listed every served name."""


def _served_names(base_url: str) -> set[str]:
    with urllib.request.urlopen(f"{base_url}/models", timeout=5) as resp:
        return {m["id"] for m in json.load(resp)["data"]}


@contextmanager
def start_vllm_server(model_dir: Path, adapters: Mapping[str, Path] = {}, *, python: Path | None = None,
                      served_name: str = "smollm2", max_model_len: int = 1024, dtype: str = "float32",
                      log: Path | None = None, timeout_s: float = 600.0) -> Iterator[VLLMServer]:
    """Start ``vllm serve`` (the api_server module: the ``vllm`` script fails for the ``vllm-cpu`` distribution).

    Args:
        adapters: arm name → adapter folder; each is served under its arm name with ``--enable-lora``.
        python: the vLLM environment's interpreter (default: :func:`vllm_python`).
        log: file for the server's output (default: a temporary file).
        timeout_s: how long to wait for ``/v1/models`` before giving up (the log's tail is in the error).
    """
    python = python or vllm_python()
    port = free_port()
    cmd = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
           "--served-model-name", served_name, "--host", "127.0.0.1", "--port", str(port),
           "--dtype", dtype, "--max-model-len", str(max_model_len), "--seed", "0"]
    if adapters:
        ranks = [int(json.loads((Path(p) / "adapter_config.json").read_text()).get("r", 8)) for p in adapters.values()]
        from evalkit.models.vllm import lora_rank_for

        cmd += ["--enable-lora", "--max-lora-rank", str(lora_rank_for(max(ranks))), "--max-loras", str(len(adapters)),
                "--lora-modules", *[f"{name}={Path(p).resolve()}" for name, p in adapters.items()]]
    if log is None:
        import tempfile

        log = Path(tempfile.mkstemp(prefix="vllm-serve-", suffix=".log")[1])
    base_url = f"http://127.0.0.1:{port}/v1"
    want = {served_name, *adapters}
    started = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=vllm_env(), start_new_session=True)  # own process group: stop_group ends it all
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"vllm serve exited with {proc.returncode} before it was ready; log {log}:\n{_tail(log)}")
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(f"vllm serve not ready after {timeout_s:.0f} s; log {log}:\n{_tail(log)}")
            try:
                if want <= _served_names(base_url):
                    break
            except (OSError, ValueError, KeyError):
                pass  # not listening yet
            time.sleep(1.0)
        yield VLLMServer(base_url=base_url, base_name=served_name, adapters={a: a for a in adapters}, model_dir=Path(model_dir),
                         adapter_dirs={a: Path(p) for a, p in adapters.items()}, log=log,
                         startup_s=round(time.monotonic() - started, 1))
    finally:
        stop_group(proc)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="session")
def vllm_py() -> Path:
    """:func:`vllm_python` as a fixture: list it first, so a missing environment skips before other setup."""
    return vllm_python()


@pytest.fixture(scope="session")
def smollm2_lora(embedded, tmp_path_factory) -> Path:
    """A LoRA adapter (r=8, random non-zero B on q/k/v/o) for the embedded SmolLM2: it visibly changes outputs."""
    from tests.conftest import make_adapter

    return make_adapter(embedded.path, tmp_path_factory.mktemp("vllm-adapters") / "tuned", r=8,
                        target=("q_proj", "k_proj", "v_proj", "o_proj"))


@pytest.fixture(scope="session")
def vllm_server(vllm_py, embedded, smollm2_lora, tmp_path_factory) -> Iterator[VLLMServer]:
    """One ``vllm serve`` for the session: base ``smollm2``, adapter ``tuned`` (= ``smollm2_lora``)."""
    log = tmp_path_factory.mktemp("vllm-serve") / "server.log"
    with start_vllm_server(embedded.path, {"tuned": smollm2_lora}, python=vllm_py, log=log) as server:
        yield server
