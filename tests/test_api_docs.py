"""docs/api.md: the Python examples run as written (on the embedded model)."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_every_python_example_in_the_api_docs_runs(tmp_path, monkeypatch, embedded):
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "docs/api.md").read_text(), flags=re.S)
    assert len(blocks) >= 2
    from evalkit import registry

    shutil.copytree(REPO / "suites", tmp_path / "suites")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # the example's metric stays in this test
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), namespace)  # noqa: S102 - our own documentation
    assert (namespace["run"].comparison_df().shape[0]) == 0  # base only: nothing to compare
    assert {"format", "severity", "component"} <= set(namespace["scores"]["metric"])
    assert namespace["report"].exists()
