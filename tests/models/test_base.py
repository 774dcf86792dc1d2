"""The backend contract: registry lookup, capability checks, backend-specific options, the fake backend."""

from __future__ import annotations

import subprocess
import sys

import pytest

from evalkit.errors import BackendError
from evalkit.models.base import BackendOptions, backend_names, open_backend, require
from evalkit.models.fake import FakeBackend


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(BackendError, match=r"unknown backend 'nope'; known backends: .*hf"):
        open_backend("nope", "smollm2-135m-instruct")


def test_hf_is_registered():
    assert "hf" in backend_names()


def test_an_option_of_another_backend_is_refused_naming_its_owner():
    with pytest.raises(BackendError, match=r"--endpoint is an option of --backend openai, not of --backend hf"):
        open_backend("hf", "smollm2-135m-instruct", options=BackendOptions(endpoint="http://127.0.0.1:1/v1"))


def test_require_names_the_backend_the_need_and_an_alternative():
    fake = FakeBackend(lambda r, a: "x")
    with pytest.raises(BackendError, match=r"backend 'fake' cannot compute loglikelihood \(forgetting panel arc_easy needs loglikelihood\); use --backend hf"):
        require(fake, "loglikelihood", "forgetting panel arc_easy")
    require(fake, "generate")


def test_hf_backend_identity_names_the_engine_and_load_options(tiny_model):
    from evalkit.models import LoadOptions
    from evalkit.models.hf import HFBackend

    identity = HFBackend(tiny_model, options=LoadOptions(device="cpu")).identity()
    assert identity["backend"] == "hf" and identity["transformers"] and identity["dtype"] == "float32" and identity["device"] == "cpu"


def test_the_runner_cache_and_report_work_without_torch(tmp_path, make_suite):
    """A plugin author can run a suite on scripted outputs: no torch import anywhere on that path."""
    suite = make_suite(n=4)
    code = f"""
import sys
from pathlib import Path
from evalkit.models.fake import FakeBackend
from evalkit.report import write_report
from evalkit.runner import RunOptions, run_suite
from evalkit.suite import load_suite
backend = FakeBackend(lambda request, arm: '{{"ok": true}}' if arm == "tuned" else "nope", arms=["tuned"])
result = run_suite(load_suite({str(suite)!r}), RunOptions(runs_dir=Path({str(tmp_path / 'runs')!r}), cache_path=Path({str(tmp_path / 'c.sqlite')!r})), backend=backend)
write_report(result.run_dir)
again = run_suite(load_suite({str(suite)!r}), RunOptions(runs_dir=Path({str(tmp_path / 'runs')!r}), cache_path=Path({str(tmp_path / 'c.sqlite')!r})), backend=backend)
assert backend.generated == 8 and again.generated == 0, (backend.generated, again.generated)
assert "torch" not in sys.modules, "torch was imported"
print(result.summary.means["tuned"]["format"])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1.0"


def test_a_failed_generation_is_an_error_for_every_metric_and_is_not_cached(tmp_path, make_suite):
    from evalkit.runner import RunOptions, run_suite
    from evalkit.suite import load_suite

    calls = {"n": 0}

    def flaky(request, arm):
        calls["n"] += 1
        if arm == "tuned" and "#1)" in request.messages[-1]["content"]:
            raise TimeoutError("endpoint timed out after 4 retries")
        return '{"ok": true}'

    suite = load_suite(make_suite(n=3))
    options = RunOptions(runs_dir=tmp_path / "runs", cache_path=tmp_path / "c.sqlite")
    result = run_suite(suite, options, backend=FakeBackend(flaky, arms=["tuned"]))
    assert result.summary.errors["tuned"] == {"format": 1, "mentions-db": 1}
    assert any("1 of 6 generations failed" in w for w in result.warnings)
    again = run_suite(suite, options, backend=FakeBackend(flaky, arms=["tuned"]))
    assert again.generated == 1  # only the failed request is tried again
