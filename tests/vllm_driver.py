"""Runs the vLLM side of tests/models/test_vllm.py inside the vLLM environment (one engine start).

    .venv-vllm/bin/python tests/vllm_driver.py SPEC.json OUT.json

SPEC holds ``argv`` (an ``evalkit run ... --backend vllm`` command line) and
``loglikelihood`` (context/continuation pairs). The driver runs the real CLI
(``evalkit.cli.main``), keeps a handle on the backend the runner opened, scores
the log-likelihoods on that same engine for every arm, closes it, and writes OUT:
the CLI's exit code and run directory, the log-likelihoods, the backend's identity,
the engine's start-up time, and any engine process still alive after ``close()``.

The ``__main__`` guard is required: vLLM spawns its engine processes, and a spawned
process re-imports this file.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(spec_path: str, out_path: str) -> int:
    import psutil

    import evalkit.runner
    from evalkit.cli import main as cli_main
    from evalkit.errors import EvalkitError
    from evalkit.models.base import GenerateRequest, LoglikelihoodRequest

    spec = json.loads(Path(spec_path).read_text())
    opened: list = []
    timings: dict[str, float] = {}
    open_backend = evalkit.runner.open_backend

    def recording_open_backend(*args, **kwargs):
        backend = open_backend(*args, **kwargs)
        start = backend.start

        def timed_start() -> None:
            first = not backend.started
            t0 = time.perf_counter()
            start()
            if first:
                timings["engine_start_s"] = round(time.perf_counter() - t0, 1)

        backend.start = timed_start
        opened.append(backend)
        return backend

    evalkit.runner.open_backend = recording_open_backend
    t0 = time.perf_counter()
    rc = cli_main(spec["argv"])
    timings["cli_run_s"] = round(time.perf_counter() - t0, 1)
    result: dict = {"rc": rc, "timings": timings}
    if rc == 0 and opened:
        backend = opened[0]
        runs = sorted(Path(spec["runs_dir"]).iterdir())
        result["run_dir"] = str(runs[-1])
        result["identity"] = backend.identity()
        requests = [LoglikelihoodRequest(**r) for r in spec["loglikelihood"]]
        arms = ["base", *[a.name for a in backend.adapters]]
        t0 = time.perf_counter()
        result["loglikelihood"] = {arm: [[r.logprob, r.is_greedy, r.tokens] for r in backend.loglikelihood(requests, arm)] for arm in arms}
        timings["loglikelihood_s"] = round(time.perf_counter() - t0, 1)
        try:  # a prompt longer than the engine's context: refused with a hint, and the engine stays usable
            backend.generate([GenerateRequest(messages=(), prompt="word " * 2000)], "base", {"max_new_tokens": 4, "do_sample": False})
        except EvalkitError as exc:
            result["too_long"] = f"{type(exc).__name__}: {exc}"
        result["after_refusal"] = backend.generate([GenerateRequest(messages=(), prompt="Hello")], "base",
                                                   {"max_new_tokens": 4, "do_sample": False})[0].text
        me = psutil.Process()
        result["engine_processes_before_close"] = sorted(c.name() for c in me.children(recursive=True) if c.name().startswith("VLLM"))
        t0 = time.perf_counter()
        backend.close()
        timings["close_s"] = round(time.perf_counter() - t0, 1)
        result["engine_processes_after_close"] = sorted(
            c.name() for c in me.children(recursive=True) if c.name().startswith("VLLM") and c.status() != psutil.STATUS_ZOMBIE
        )
    Path(out_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
