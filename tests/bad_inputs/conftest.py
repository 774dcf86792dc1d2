"""The bad-input corpus: what every case asserts, and the fixtures cases share.

Every case runs the real CLI (``evalkit.cli.main``) and checks the contract of issue 7:
the documented exit code (2 for bad input), exactly one non-empty line on stderr that
starts with ``error:``, no traceback anywhere, and that the line names the file, field
or option concerned. Cases that would otherwise load a model run under
``forbid_model_load``, so a check that happens too late fails the test instead of
passing slowly.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from evalkit.cli import main

SUITE = """\
name: triage
description: a small suite as a new user writes it
data:
  path: data.jsonl
  id_field: id
prompt:
  system: Answer with JSON.
  user: "Report: {{ report }}"
  target: '{"severity": "{{ severity }}"}'
generation:
  max_new_tokens: 4
metrics:
  - name: format
    type: json_valid
  - name: severity
    type: field_match
    params: {field: severity}
"""
"""A valid suite; cases break one thing in it."""

ROWS = [
    {"id": f"r{i}", "report": text, "severity": sev, "expected": {"product": prod}}
    for i, (text, sev, prod) in enumerate([
        ("Database primary is down, every checkout fails.", "SEV1", "db"),
        ("Login page shows a typo in the footer.", "SEV3", "web"),
        ("Payments API returns 502 for all card payments.", "SEV1", "payments"),
        ("Push notifications delayed by ten minutes.", "SEV2", "mobile"),
    ])
]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``evalkit ARGV`` in this process; returns (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error(result: tuple[int, str, str], *needles: str, code: int = 2) -> str:
    """The corpus contract: exit ``code``, one ``error:`` line on stderr naming every needle, no traceback."""
    exit_code, out, err = result
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in out + err, err
    assert exit_code == code, f"exit {exit_code}, wanted {code}; stderr: {err!r}"
    assert len(lines) == 1, f"stderr must be one line, got {len(lines)}: {err!r}"
    assert lines[0].startswith("error:"), lines[0]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not named in {lines[0]!r}"
    return lines[0]


@pytest.fixture
def forbid_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything loads model weights or converts the embedded model.

    ``pytest.fail`` raises a BaseException, which the CLI's ``except Exception`` cannot swallow.
    """
    import transformers

    import evalkit.models.resolve as resolve

    def refuse(*args: object, **kwargs: object) -> None:
        pytest.fail("a model was loaded: this mistake must be found before any model load")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)
    monkeypatch.setattr(resolve, "_convert_gguf", refuse)


@pytest.fixture
def suite_dir(tmp_path: Path) -> Callable[..., Path]:
    """Write a suite folder: ``suite_dir(yaml_text, rows=..., files={name: text|bytes})``; returns the suite path."""

    def make(yaml_text: str | bytes = SUITE, rows: list[dict] | None = None, files: dict[str, str | bytes] | None = None,
             name: str = "suite.yaml") -> Path:
        folder = tmp_path / "suite"
        folder.mkdir(exist_ok=True)
        data = "".join(json.dumps(r) + "\n" for r in (ROWS if rows is None else rows))
        (folder / "data.jsonl").write_text(data, encoding="utf-8")
        for fname, content in (files or {}).items():
            target = folder / fname
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        path = folder / name
        if isinstance(yaml_text, bytes):
            path.write_bytes(yaml_text)
        else:
            path.write_text(yaml_text, encoding="utf-8")
        return path

    return make


@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[Path]:
    """A folder nothing can be written into: a read-only folder, or /sys when running as root (root ignores modes)."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        yield Path("/sys/kernel")
        return
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    yield folder
    folder.chmod(0o700)


@pytest.fixture
def adapter_copy(tiny_adapter: Path, tmp_path: Path) -> Callable[[Callable[[Path], object]], Path]:
    """A copy of the tiny adapter with one thing changed: ``adapter_copy(lambda d: ...)``."""
    count = [0]

    def make(mutate: Callable[[Path], object]) -> Path:
        count[0] += 1
        target = tmp_path / f"adapter-{count[0]}"
        shutil.copytree(tiny_adapter, target)
        mutate(target)
        return target

    return make


def edit_json(name: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    """A mutation that loads ``folder/name`` as JSON, applies ``change`` to it, and writes it back."""

    def mutate(folder: Path) -> None:
        path = folder / name
        doc = json.loads(path.read_text())
        change(doc)
        path.write_text(json.dumps(doc))

    return mutate
