"""Bad adapters and options given to ``evalkit adapter inspect`` and ``evalkit adapter merge``.

inspect reads headers only, so every refusal here must come without loading a model; merge
loads the base to compare logits, so each of its refusals must come before that load.
"""

from __future__ import annotations

import pytest

from tests.bad_inputs.conftest import assert_one_error, cli
from tests.bad_inputs.test_run import ADAPTER_CASES, CONFIG, WEIGHTS, _truncate, _write, edit_json

# Every broken adapter of the run corpus, except those only ``run`` can judge (a base named in the config
# that differs from --base is checked only when a base is given).
INSPECT_CASES = [c for c in ADAPTER_CASES if c[0] not in ("config-other-base",)] + [
    ("config-alpha-negative", edit_json(CONFIG, lambda c: c.update(lora_alpha=-16)), (CONFIG, "lora_alpha is -16")),
    ("config-use-rslora-string", edit_json(CONFIG, lambda c: c.update(use_rslora="yes")), (CONFIG, "use_rslora")),
    ("config-r-huge", edit_json(CONFIG, lambda c: c.update(r=10**12)), (CONFIG, "rank 4")),
]


@pytest.mark.parametrize(("mutate", "needles"), [c[1:] for c in INSPECT_CASES], ids=[c[0] for c in INSPECT_CASES])
def test_inspect_refuses_broken_adapter(mutate, needles, adapter_copy, capsys, forbid_model_load):
    """Issue 7: an adapter whose r disagrees with its weights was called "rank 4, deployable"."""
    assert_one_error(cli(capsys, "adapter", "inspect", adapter_copy(mutate)), *needles)


MERGE_CASES = [
    ("config-r-disagrees-with-weights", edit_json(CONFIG, lambda c: c.update(r=8)), (CONFIG, "r is 8", "rank 4")),
    ("config-r-below-weights", edit_json(CONFIG, lambda c: c.update(r=2)), (CONFIG, "r is 2", "rank 4")),
    ("config-rank-pattern-disagrees", edit_json(CONFIG, lambda c: c.update(rank_pattern={"v_proj": 8})), (CONFIG, "rank_pattern", "v_proj")),
    ("config-r-eight", edit_json(CONFIG, lambda c: c.update(r="eight")), (CONFIG, "r is 'eight'")),
    ("config-is-a-list", _write(CONFIG, "[]"), (CONFIG, "JSON object")),
    ("config-alpha-nan", _write(CONFIG, '{"peft_type": "LORA", "r": 4, "lora_alpha": NaN}'), (CONFIG, "lora_alpha is nan")),
    ("config-use-dora-string", edit_json(CONFIG, lambda c: c.update(use_dora="false")), (CONFIG, "use_dora")),
    ("config-bias-number", edit_json(CONFIG, lambda c: c.update(bias=1)), (CONFIG, "bias is 1")),
    ("weights-truncated", _truncate(WEIGHTS, -64), (WEIGHTS, "truncated or damaged")),
    ("weights-garbage", _write(WEIGHTS, b"\x00" * 64), (WEIGHTS, "truncated or damaged")),
    ("train-record-base-string", _write("evalkit-train.json", '{"base": "x"}'), ("evalkit-train.json", "base is 'x'")),
]


@pytest.mark.parametrize(("mutate", "needles"), [c[1:] for c in MERGE_CASES], ids=[c[0] for c in MERGE_CASES])
def test_merge_refuses_broken_adapter_before_loading(mutate, needles, adapter_copy, tiny_model, tmp_path, capsys, forbid_model_load):
    """Issue 7: merge crashed on an adapter whose r disagreed with its weight shapes."""
    result = cli(capsys, "adapter", "merge", adapter_copy(mutate), "--base", tiny_model.path, "--out", tmp_path / "merged")
    assert_one_error(result, *needles)
    assert not (tmp_path / "merged").exists()


@pytest.mark.parametrize(
    ("options", "needles"),
    [
        pytest.param(("--tolerance", "-1"), ("--tolerance", "positive"), id="tolerance-negative"),
        pytest.param(("--tolerance", "nan"), ("--tolerance", "finite"), id="tolerance-nan"),
        pytest.param(("--tolerance", "inf"), ("--tolerance", "finite"), id="tolerance-inf"),
        pytest.param(("--tolerance", "0"), ("--tolerance", "positive"), id="tolerance-zero"),
        pytest.param(("--tolerance", "1e-3x"), ("--tolerance", "'1e-3x'"), id="tolerance-typo"),
        pytest.param(("--quantize", "4bit"), ("--quantize", "nf4"), id="quantize-unknown"),
        pytest.param(("--out", "{adapter}"), ("--out", "adapter's own"), id="out-is-the-adapter"),
        pytest.param(("--out", "{tmp}"), ("--out", "new or empty folder"), id="out-not-empty"),
        pytest.param(("--out", "{adapter}/adapter_config.json"), ("--out", "is a file"), id="out-is-a-file"),
        pytest.param(("--out", "{adapter}/adapter_config.json/merged"), ("--out folder", "is a file"), id="out-inside-a-file"),
        pytest.param(("--out", "{unwritable}/merged"), ("--out folder", "writable"), id="out-unwritable"),
        pytest.param(("--base", "{tmp}/no-such-model"), ("no-such-model", "not found"), id="base-missing"),
        pytest.param(("--base", "{tmp}"), ("not a model directory",), id="base-folder-without-model"),
        pytest.param(("--base", "nobody/no-model"), ("nobody/no-model", "--allow-network"), id="base-hub-id-offline"),
    ],
)
def test_bad_merge_option(options, needles, tiny_adapter, tiny_model, tmp_path, unwritable, capsys, forbid_model_load):
    (tmp_path / "occupied.txt").write_text("x")
    filled = [o.format(adapter=tiny_adapter, tmp=tmp_path, unwritable=unwritable) for o in options]
    defaults = [*(() if "--base" in options else ("--base", str(tiny_model.path))), *(() if "--out" in options else ("--out", str(tmp_path / "m")))]
    assert_one_error(cli(capsys, "adapter", "merge", tiny_adapter, *defaults, *filled), *needles)


def test_merge_without_out(tiny_adapter, capsys):
    assert_one_error(cli(capsys, "adapter", "merge", tiny_adapter), "--out", "required")


@pytest.mark.parametrize(
    ("options", "needles"),
    [
        pytest.param(("--max-lora-rank", "-1"), ("--max-lora-rank", "at least 1"), id="max-lora-rank-negative"),
        pytest.param(("--max-lora-rank", "0"), ("--max-lora-rank", "at least 1"), id="max-lora-rank-zero"),
        pytest.param(("--max-lora-rank", "16.5"), ("--max-lora-rank", "'16.5'"), id="max-lora-rank-float"),
        pytest.param(("--max-lora-rank", "sixteen"), ("--max-lora-rank", "'sixteen'"), id="max-lora-rank-word"),
        pytest.param(("--base", "{tmp}/no-such-model"), ("no-such-model", "not found"), id="base-missing"),
        pytest.param(("--base", "{tmp}"), ("not a model directory",), id="base-folder-without-model"),
    ],
)
def test_bad_inspect_option(options, needles, tiny_adapter, tmp_path, capsys, forbid_model_load):
    filled = [o.format(tmp=tmp_path) for o in options]
    assert_one_error(cli(capsys, "adapter", "inspect", tiny_adapter, *filled), *needles)


@pytest.mark.parametrize(
    ("path", "needles"),
    [
        pytest.param("{tmp}/no-such-adapter", ("no-such-adapter", "no such directory"), id="adapter-missing"),
        pytest.param("{adapter}/adapter_config.json", ("adapter_config.json", "peft adapter directory"), id="adapter-config-file-given"),
        pytest.param("{tmp}", ("adapter_config.json",), id="folder-without-config"),
    ],
)
@pytest.mark.parametrize("action", ["inspect", "merge"])
def test_not_an_adapter(action, path, needles, tiny_adapter, tiny_model, tmp_path, capsys, forbid_model_load):
    extra = ("--base", tiny_model.path, "--out", tmp_path / "m") if action == "merge" else ()
    assert_one_error(cli(capsys, "adapter", action, path.format(tmp=tmp_path, adapter=tiny_adapter), *extra), *needles)


def test_inspect_with_a_base_of_another_shape(tiny_adapter, embedded, capsys, forbid_model_load):
    """The embedded model is wider than the tiny one the adapter was trained for."""
    assert_one_error(cli(capsys, "adapter", "inspect", tiny_adapter, "--base", embedded.path), "trained for another model")
