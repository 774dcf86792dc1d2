"""Bad judge configuration is one clear line and exit 2, before any model loads."""

from __future__ import annotations

import pytest

from evalkit.cli import main
from evalkit.judges import JudgeConfig
from evalkit.judges.stage import JudgeOverrides, make_judge
from evalkit.suite import load_suite

SUITE = """\
name: judged
data: {path: data.jsonl, id_field: id}
prompt: {user: "Report: {{ report }}"}
%s
metrics:
  - {name: faithfulness, type: %s}
"""
FAITH = "faithfulness, params: {source: report}"


@pytest.fixture
def no_model_loads(monkeypatch):
    from evalkit.models.hf import HFBackend

    def refuse(self):
        raise AssertionError("a model was loaded before the judge configuration was checked")

    monkeypatch.setattr(HFBackend, "_load", refuse)


def suite_with(make_suite, judge: str = "", metric: str = FAITH):
    return make_suite(yaml_text=SUITE % (judge, metric))


def run(path, tmp_path, *extra: str) -> int:
    return main(["run", str(path), "--runs-dir", str(tmp_path / "runs"), "--cache", str(tmp_path / "c.sqlite"), *extra])


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return " ".join(err.split())


@pytest.mark.parametrize("judge, expected", [
    ("judge: {backend: nope, model: m}", "judge.backend: unknown judge backend 'nope'; known backends: hf"),
    ("judge: {backend: openai, model: gpt-4o-mini}", "judge.endpoint: an openai judge needs the server's base URL"),
    ("judge: {backend: openai, model: m, endpoint: 'http://127.0.0.1:9/v1', api_key_env: EVALKIT_TEST_UNSET_KEY}",
     "judge.api_key_env: the environment variable is not set"),
    ("judge: {backend: hf, endpoint: 'http://127.0.0.1:9/v1'}", "only an openai judge takes an endpoint"),
    ("judge: {backend: hf, temperature: 0.2}", "Additional properties are not allowed ('temperature' was unexpected)"),
])
def test_bad_judge_sections_exit_2_before_any_model_loads(make_suite, tmp_path, capsys, monkeypatch, no_model_loads, judge, expected):
    monkeypatch.delenv("EVALKIT_TEST_UNSET_KEY", raising=False)
    assert run(suite_with(make_suite, judge), tmp_path) == 2
    assert expected in one_line(capsys)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_rubric_without_a_scale_exits_2_naming_the_metric(make_suite, tmp_path, capsys, no_model_loads):
    path = suite_with(make_suite, metric='judge, params: {rubric: "Is it polite?"}')
    assert run(path, tmp_path) == 2
    assert "metrics[0] (faithfulness): params: the rubric has no scale: add params.scale" in one_line(capsys)


@pytest.mark.parametrize("options, expected", [
    (["--judge", "smollm2"], "--judge 'smollm2': give BACKEND:MODEL"),
    (["--judge", "vllm-nope:model"], "--judge: unknown judge backend 'vllm-nope'"),
    (["--judge", "openai:gpt-4o-mini"], "--judge-endpoint: an openai judge needs the server's base URL"),
    (["--judge", "openai:m", "--judge-endpoint", "http://127.0.0.1:9/v1", "--judge-api-key-env", "EVALKIT_TEST_UNSET_KEY"],
     "--judge-api-key-env: the environment variable is not set"),
    (["--judge-endpoint", "ftp://x"], "--judge-endpoint: only an openai judge takes an endpoint"),
])
def test_bad_judge_options_exit_2_naming_the_option(make_suite, tmp_path, capsys, monkeypatch, no_model_loads, options, expected):
    monkeypatch.delenv("EVALKIT_TEST_UNSET_KEY", raising=False)
    assert run(suite_with(make_suite), tmp_path, *options) == 2
    assert expected in one_line(capsys)


def test_validate_checks_the_judge_too(make_suite, capsys, no_model_loads):
    code = main(["validate", str(suite_with(make_suite, "judge: {backend: openai, model: m}"))])
    assert code == 2 and "judge.endpoint" in one_line(capsys)


def test_validate_checks_a_judged_metrics_source_field_without_a_model(make_suite, capsys, no_model_loads):
    code = main(["validate", str(suite_with(make_suite, metric="faithfulness, params: {source: transcript}"))])
    assert code == 2 and "params.source: the row has no field 'transcript'" in one_line(capsys)


def test_the_command_line_overrides_the_suites_judge(make_suite):
    suite = load_suite(suite_with(make_suite, "judge: {backend: openai, model: big, endpoint: 'http://127.0.0.1:8000/v1', max_new_tokens: 64}"))
    judge = make_judge(suite, JudgeOverrides(spec="hf:smollm2-135m-instruct"))
    assert (judge.config.backend, judge.config.model, judge.config.endpoint, judge.config.max_new_tokens) == ("hf", "smollm2-135m-instruct", None, 64)


def test_the_default_judge_is_the_embedded_model_on_hf():
    assert (JudgeConfig().backend, JudgeConfig().model) == ("hf", "smollm2-135m-instruct")
    assert JudgeConfig().params()["temperature"] == 0.0
