"""Bad-input corpus for `evalkit train` and `evalkit adapter`: every mistake is one line, exit 2, no traceback.

Each case writes a training config (and its data) next to each other, runs the real CLI
(`evalkit.cli.main`) and checks the contract a user relies on: exit code 2, exactly one
non-empty stderr line starting with `error:` that names the file, field or option at fault,
and no traceback. The base is the tiny model, so a case that reached the model would still
be quick; the checks are made before the weights load (module names on a weightless skeleton).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalkit.cli import main

DELETE = object()
GOOD_ROW = {"messages": [{"role": "user", "content": "Incident: database down"}, {"role": "assistant", "content": '{"severity": "SEV1"}'}]}
GOOD_DATA = (json.dumps(GOOD_ROW) + "\n") * 4


def _merge(doc: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(doc)
    for key, value in patch.items():
        if value is DELETE:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _base_config(base: Path) -> dict[str, Any]:
    return {
        "base": str(base),
        "data": {"path": "train.jsonl"},
        "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        "training": {"max_steps": 1, "batch_size": 2, "max_length": 64, "logging_steps": 1, "save_steps": 1},
        "output_dir": "out",
    }


class Case:
    """One bad input: a config patch (or raw config text), data text, a setup hook, CLI args, and the words the line must hold."""

    def __init__(self, id: str, needles: tuple[str, ...], *, patch: dict[str, Any] | None = None, text: str | bytes | None = None,
                 data: str | bytes | None = GOOD_DATA, setup: Callable[[Path, Path], None] | None = None,
                 argv: Callable[[Path], list[str]] | None = None, names_config: bool = True, cpu_only: bool = False,
                 needs_missing: str | None = None) -> None:
        self.id, self.needles, self.patch, self.text, self.data = id, needles, patch or {}, text, data
        self.setup, self.argv, self.names_config = setup, argv, names_config
        self.cpu_only, self.needs_missing = cpu_only, needs_missing


def _finished_adapter(folder: Path, tiny: Path | None = None) -> None:
    out = folder / "out"
    out.mkdir()
    (out / "adapter_config.json").write_text("{}")
    (out / "adapter_model.safetensors").write_bytes(b"weights of a finished run")


def _checkpoints_only(folder: Path, tiny: Path | None = None) -> None:
    (folder / "out" / "checkpoints" / "checkpoint-2").mkdir(parents=True)


def _foreign_folder(folder: Path, tiny: Path | None = None) -> None:
    (folder / "out").mkdir()
    (folder / "out" / "notes.txt").write_text("mine")


def _no_train_data_suite(folder: Path, tiny: Path | None = None) -> None:
    (folder / "rows.jsonl").write_text('{"id": "a", "x": "1"}\n')
    (folder / "plain.yaml").write_text("name: plain\ndata: {path: rows.jsonl, id_field: id}\nprompt: {user: '{{ x }}'}\n"
                                       "metrics: [{name: f, type: json_valid}]\n")


def _base_with_config(text: str) -> Callable[[Path, Path], None]:
    def setup(folder: Path, tiny: Path) -> None:
        shutil.copytree(tiny, folder / "base")
        (folder / "base" / "config.json").write_text(text)

    return setup


CASES = [
    # --- the config file itself
    Case("config-not-yaml", ("invalid YAML", ":2"), text="data: [unclosed\noutput_dir: out\n"),
    Case("config-a-list", ("YAML mapping",), text="- data\n- output_dir\n"),
    Case("config-not-utf8", ("not valid UTF-8",), text=b"output_dir: \xff\xfe\n"),
    Case("config-empty", ("YAML mapping",), text=""),
    Case("config-unknown-top-key", ("epochs", "allowed"), patch={"epochs": 3}),
    Case("config-missing-data", ("data", "required"), patch={"data": DELETE}),
    Case("config-missing-output-dir", ("output_dir", "required"), patch={"output_dir": DELETE}),
    Case("output-dir-empty-string", ("output_dir",), patch={"output_dir": ""}),
    Case("output-dir-a-number", ("output_dir", "string"), patch={"output_dir": 7}),
    Case("base-empty", ("base",), patch={"base": ""}),
    Case("base-unknown-alias", ("no-such-model",), patch={"base": "no-such-model"}, names_config=False),
    Case("base-folder-without-model", ("not a model directory",), patch={"base": "."}, names_config=False),
    Case("base-unknown-architecture", ("base", "nonexistent"), patch={"base": "{tmp}/base"}, setup=_base_with_config('{"model_type": "nonexistent"}'),
         names_config=False),
    Case("base-config-not-json", ("base", "config"), patch={"base": "{tmp}/base"}, setup=_base_with_config("not json"), names_config=False),
    Case("eval-suite-missing", ("nope.yaml", "not found"), patch={"eval_suite": "nope.yaml"}, names_config=False),
    Case("report-to-unknown", ("report_to", "mlflow"), patch={"report_to": "mlflow"}),
    Case("report-to-not-installed", ("report_to", "wandb", "not installed"), patch={"report_to": "wandb"}, needs_missing="wandb"),
    # --- data section
    Case("data-both-suite-and-path", ("data", "exactly one"), patch={"data": {"suite": "s.yaml"}}),
    Case("data-neither", ("data", "exactly one"), patch={"data": {"path": DELETE}}),
    Case("data-path-empty", ("data.path",), patch={"data": {"path": ""}}),
    Case("data-limit-zero", ("data.limit",), patch={"data": {"limit": 0}}),
    Case("data-limit-text", ("data.limit", "integer"), patch={"data": {"limit": "ten"}}),
    Case("data-unknown-key", ("data", "file"), patch={"data": {"file": "x"}}),
    Case("data-suite-missing", ("nope.yaml", "not found"), patch={"data": {"path": DELETE, "suite": "nope.yaml"}}, names_config=False),
    Case("data-suite-without-train-data", ("plain.yaml", "train_data"), patch={"data": {"path": DELETE, "suite": "plain.yaml"}},
         setup=_no_train_data_suite, names_config=False),
    # --- lora section
    Case("lora-r-zero", ("lora.r",), patch={"lora": {"r": 0}}),
    Case("lora-r-negative", ("lora.r",), patch={"lora": {"r": -4}}),
    Case("lora-r-text", ("lora.r", "integer"), patch={"lora": {"r": "eight"}}),
    Case("lora-r-fraction", ("lora.r", "integer"), patch={"lora": {"r": 4.5}}),
    Case("lora-alpha-zero", ("lora.alpha",), patch={"lora": {"alpha": 0}}),
    Case("lora-alpha-inf", ("lora.alpha", "finite"), patch={"lora": {"alpha": float("inf")}}),
    Case("lora-dropout-one", ("lora.dropout",), patch={"lora": {"dropout": 1}}),
    Case("lora-dropout-negative", ("lora.dropout",), patch={"lora": {"dropout": -0.1}}),
    Case("lora-targets-empty", ("lora.target_modules",), patch={"lora": {"target_modules": []}}),
    Case("lora-targets-a-string", ("lora.target_modules", "all-linear"), patch={"lora": {"target_modules": "q_proj"}}),
    Case("lora-targets-typo", ("lora.target_modules", "v_projj", "valid names"), patch={"lora": {"target_modules": ["q_proj", "v_projj"]}},
         names_config=False),
    Case("lora-targets-container", ("lora.target_modules", "'mlp'"), patch={"lora": {"target_modules": ["mlp"]}}, names_config=False),
    Case("lora-targets-duplicate", ("lora.target_modules",), patch={"lora": {"target_modules": ["q_proj", "q_proj"]}}),
    Case("lora-bias-unknown", ("lora.bias",), patch={"lora": {"bias": "some"}}),
    Case("lora-modules-to-save-typo", ("lora.modules_to_save", "lm_haed", "lm_head"), patch={"lora": {"modules_to_save": ["lm_haed"]}},
         names_config=False),
    Case("lora-modules-to-save-also-targeted", ("lora.modules_to_save", "q_proj"), patch={"lora": {"modules_to_save": ["q_proj"]}},
         names_config=False),
    Case("lora-modules-to-save-a-string", ("lora.modules_to_save", "array"), patch={"lora": {"modules_to_save": "lm_head"}}),
    Case("lora-init-unknown", ("lora.init",), patch={"lora": {"init": "eva2"}}),
    Case("lora-init-loftq", ("lora.init", "loftq"), patch={"lora": {"init": "loftq"}}),
    Case("lora-init-pissa-on-nf4", ("lora.init", "pissa", "nf4"), patch={"lora": {"init": "pissa"}, "quantization": {"mode": "nf4"}}),
    Case("lora-dora-text", ("lora.use_dora", "boolean"), patch={"lora": {"use_dora": "yes"}}),
    Case("lora-unknown-key", ("lora", "rank", "allowed"), patch={"lora": {"rank": 8}}),
    # --- quantization section
    Case("quantization-mode-unknown", ("quantization.mode",), patch={"quantization": {"mode": "nf8"}}),
    Case("quantization-double-quant-text", ("quantization.double_quant",), patch={"quantization": {"double_quant": "no"}}),
    Case("quantization-compute-fp16-on-cpu", ("quantization.compute_dtype", "float16"),
         patch={"quantization": {"mode": "nf4", "compute_dtype": "float16"}}, cpu_only=True),
    Case("quantization-unknown-key", ("quantization", "bits"), patch={"quantization": {"bits": 4}}),
    # --- training section
    Case("precision-fp16-on-cpu", ("training.precision", "float16", "bfloat16"), patch={"training": {"precision": "float16"}}, cpu_only=True),
    Case("precision-unknown", ("training.precision",), patch={"training": {"precision": "fp32"}}),
    Case("learning-rate-zero", ("training.learning_rate",), patch={"training": {"learning_rate": 0}}),
    Case("learning-rate-nan", ("training.learning_rate", "finite"), patch={"training": {"learning_rate": float("nan")}}),
    Case("learning-rate-text", ("training.learning_rate", "number"), patch={"training": {"learning_rate": "fast"}}),
    Case("epochs-negative", ("training.epochs",), patch={"training": {"epochs": -1}}),
    Case("epochs-inf", ("training.epochs", "finite"), patch={"training": {"epochs": float("inf")}}),
    Case("max-steps-zero", ("training.max_steps",), patch={"training": {"max_steps": 0}}),
    Case("batch-size-zero", ("training.batch_size",), patch={"training": {"batch_size": 0}}),
    Case("grad-accum-negative", ("training.grad_accum",), patch={"training": {"grad_accum": -2}}),
    Case("max-length-tiny", ("training.max_length",), patch={"training": {"max_length": 4}}),
    Case("warmup-ratio-one", ("training.warmup_ratio",), patch={"training": {"warmup_ratio": 1}}),
    Case("scheduler-unknown", ("training.scheduler",), patch={"training": {"scheduler": "cosine_annealing"}}),
    Case("logging-steps-zero", ("training.logging_steps",), patch={"training": {"logging_steps": 0}}),
    Case("save-steps-zero", ("training.save_steps",), patch={"training": {"save_steps": 0}}),
    Case("weight-decay-negative", ("training.weight_decay",), patch={"training": {"weight_decay": -0.1}}),
    Case("gradient-checkpointing-text", ("training.gradient_checkpointing", "auto"), patch={"training": {"gradient_checkpointing": "sometimes"}}),
    Case("seed-text", ("training.seed", "integer"), patch={"training": {"seed": "zero"}}),
    Case("packing-text", ("training.packing", "boolean"), patch={"training": {"packing": "on"}}),
    Case("training-unknown-key", ("training", "lr", "allowed"), patch={"training": {"lr": 0.1}}),
    # --- the training data (data.path)
    Case("data-file-missing", ("train.jsonl", "not found"), data=None, names_config=False),
    Case("data-path-a-folder", ("train.jsonl", "folder"), data=None, setup=lambda f, t: (f / "train.jsonl").mkdir(), names_config=False),
    Case("data-invalid-utf8", ("train.jsonl:2", "UTF-8"), data=json.dumps(GOOD_ROW).encode() + b"\n{\"messages\": \"\xff\"}\n", names_config=False),
    Case("data-not-json", ("train.jsonl:2", "not valid JSON"), data=json.dumps(GOOD_ROW) + "\n{messages: oops}\n", names_config=False),
    Case("data-line-a-list", ("train.jsonl:1", "JSON object", "list"), data="[1, 2]\n", names_config=False),
    Case("data-line-a-string", ("train.jsonl:1", "JSON object", "str"), data='"hello"\n', names_config=False),
    Case("data-line-a-number", ("train.jsonl:3", "JSON object"), data=json.dumps(GOOD_ROW) + "\n\n7\n", names_config=False),
    Case("data-row-without-fields", ("train.jsonl:1", "messages", "prompt"), data='{"text": "hi"}\n', names_config=False),
    Case("data-messages-a-number", ("train.jsonl:1", "messages"), data='{"messages": 5}\n', names_config=False),
    Case("data-messages-strings", ("train.jsonl:1", "messages[0]", "role"), data='{"messages": ["hi", "there"]}\n', names_config=False),
    Case("data-messages-bad-role", ("train.jsonl:1", "messages[1].role", "bot"),
         data='{"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "yo"}]}\n', names_config=False),
    Case("data-messages-content-number", ("train.jsonl:1", "messages[1].content", "string"),
         data='{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": 3}]}\n', names_config=False),
    Case("data-messages-end-with-user", ("train.jsonl:1", "assistant turn"),
         data='{"messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "yo"}]}\n', names_config=False),
    Case("data-messages-one-turn", ("train.jsonl:1", "assistant turn"), data='{"messages": [{"role": "assistant", "content": "hi"}]}\n',
         names_config=False),
    Case("data-completion-by-user", ("train.jsonl:1", "completion"),
         data='{"prompt": "hi", "completion": [{"role": "user", "content": "yo"}]}\n', names_config=False),
    Case("data-prompt-empty-list", ("train.jsonl:1", "prompt"), data='{"prompt": [], "completion": "yo"}\n', names_config=False),
    Case("data-empty-file", ("train.jsonl", "no training examples"), data="", names_config=False),
    Case("data-blank-lines-only", ("train.jsonl", "no training examples"), data="\n\n  \n", names_config=False),
    # --- the output folder: nothing finished is overwritten, nothing interrupted is thrown away
    Case("output-dir-a-file", ("out", "is a file"), setup=lambda f, t: (f / "out").write_text("x"), names_config=False),
    Case("output-dir-finished-adapter", ("out", "finished adapter", "--overwrite"), setup=_finished_adapter, names_config=False),
    Case("output-dir-interrupted-run", ("out", "checkpoint-2", "--resume", "--overwrite"), setup=_checkpoints_only, names_config=False),
    Case("output-dir-foreign-files", ("out", "not empty", "notes.txt"), setup=_foreign_folder, names_config=False),
    Case("output-dir-under-a-file", ("blocker", "cannot write"), patch={"output_dir": "blocker/adapter"},
         setup=lambda f, t: (f / "blocker").write_text("x"), names_config=False),
    Case("output-dir-unwritable", ("/proc", "cannot write"), patch={"output_dir": "/proc/evalkit-test/adapter"}, names_config=False),
    Case("resume-without-checkpoint", ("--resume", "no checkpoint"), argv=lambda f: ["--resume"], names_config=False),
    Case("resume-a-finished-adapter", ("out", "nothing to resume"), setup=_finished_adapter, argv=lambda f: ["--resume"], names_config=False),
    Case("resume-and-overwrite", ("--overwrite", "--resume"), argv=lambda f: ["--resume", "--overwrite"], names_config=False),
    Case("output-dir-option-a-file", ("elsewhere", "is a file"), setup=lambda f, t: (f / "elsewhere").write_text("x"),
         argv=lambda f: ["--output-dir", str(f / "elsewhere")], names_config=False),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_training_input_is_one_line_exit_2(case: Case, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if case.needs_missing and importlib.util.find_spec(case.needs_missing):
        pytest.skip(f"{case.needs_missing} is installed")
    if case.cpu_only:
        import torch

        if torch.cuda.is_available():
            pytest.skip("float16 is refused on CPU only")
    config = tmp_path / "train.yaml"
    if case.text is not None:
        config.write_bytes(case.text if isinstance(case.text, bytes) else case.text.encode())
    else:
        doc = _merge(_base_config(tiny_model_dir), case.patch)
        if isinstance(doc.get("base"), str):
            doc["base"] = doc["base"].replace("{tmp}", str(tmp_path))
        config.write_text(yaml.safe_dump(doc))
    if case.data is not None:
        (tmp_path / "train.jsonl").write_bytes(case.data if isinstance(case.data, bytes) else case.data.encode())
    if case.setup:
        case.setup(tmp_path, tiny_model_dir)
    code = main(["train", str(config), *(case.argv(tmp_path) if case.argv else [])])
    _assert_one_error_line(code, capsys.readouterr().err, *case.needles, *((str(config),) if case.names_config else ()))


def _assert_one_error_line(code: int, err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


def test_finished_adapter_is_left_untouched_when_refused(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "train.jsonl").write_text(GOOD_DATA)
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(_base_config(tiny_model_dir)))
    _finished_adapter(tmp_path)
    assert main(["train", str(config)]) == 2
    assert (tmp_path / "out" / "adapter_model.safetensors").read_bytes() == b"weights of a finished run"


ADAPTER_CASES = [
    ("inspect-max-rank-negative", ["inspect", "{adapter}", "--max-lora-rank", "-1"], ("--max-lora-rank", "-1")),
    ("inspect-max-rank-zero", ["inspect", "{adapter}", "--max-lora-rank", "0"], ("--max-lora-rank", "at least 1")),
    ("inspect-max-rank-text", ["inspect", "{adapter}", "--max-lora-rank", "big"], ("--max-lora-rank",)),
    ("inspect-missing-folder", ["inspect", "{tmp}/nope"], ("nope",)),
    ("inspect-rank-a-word", ["inspect", "{bad_rank}"], ("adapter_config.json", "'eight'")),
    ("merge-tolerance-negative", ["merge", "{adapter}", "--out", "{tmp}/m", "--base", "{base}", "--tolerance", "-1"], ("--tolerance", "-1")),
    ("merge-tolerance-nan", ["merge", "{adapter}", "--out", "{tmp}/m", "--base", "{base}", "--tolerance", "nan"], ("--tolerance", "nan")),
    ("merge-tolerance-inf", ["merge", "{adapter}", "--out", "{tmp}/m", "--base", "{base}", "--tolerance", "inf"], ("--tolerance", "inf")),
    ("merge-out-a-file", ["merge", "{adapter}", "--out", "{tmp}/file", "--base", "{base}"], ("--out", "is a file")),
    ("merge-quantize-unknown", ["merge", "{adapter}", "--out", "{tmp}/m", "--quantize", "nf8"], ("--quantize",)),
]


@pytest.mark.parametrize(("argv", "needles"), [c[1:] for c in ADAPTER_CASES], ids=[c[0] for c in ADAPTER_CASES])
def test_bad_adapter_arguments_are_one_line_exit_2(argv: list[str], needles: tuple[str, ...], tiny_adapter: Path, tiny_model_dir: Path,
                                                  tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad_rank = tmp_path / "bad-rank"
    bad_rank.mkdir()
    config = json.loads((tiny_adapter / "adapter_config.json").read_text())
    (bad_rank / "adapter_config.json").write_text(json.dumps({**config, "r": "eight"}))
    (bad_rank / "adapter_model.safetensors").write_bytes((tiny_adapter / "adapter_model.safetensors").read_bytes())
    (tmp_path / "file").write_text("x")
    values = {"adapter": str(tiny_adapter), "tmp": str(tmp_path), "base": str(tiny_model_dir), "bad_rank": str(bad_rank)}
    code = main(["adapter", *(a.format(**values) for a in argv)])
    _assert_one_error_line(code, capsys.readouterr().err, *needles)
    assert not (tmp_path / "m").exists()
