"""The JSON extraction rule: fenced block first, then the whole text, then the first complete value."""

from __future__ import annotations

import pytest

from evalkit.metrics.extract import NoJSON, extract_json


def test_json_fenced_block_is_parsed():
    text = 'Here is the triage:\n```json\n{"severity": "SEV1"}\n```\nLet me know.'

    assert extract_json(text) == {"severity": "SEV1"}


def test_bare_fenced_block_is_parsed():
    text = 'Sure.\n```\n{"severity": "SEV2"}\n```'

    assert extract_json(text) == {"severity": "SEV2"}


def test_first_fenced_block_wins_over_later_ones():
    text = '```json\n{"n": 1}\n```\nor\n```json\n{"n": 2}\n```'

    assert extract_json(text) == {"n": 1}


def test_fenced_block_wins_over_json_in_the_prose_before_it():
    text = 'Not this: {"n": 0}\n```json\n{"n": 1}\n```'

    assert extract_json(text) == {"n": 1}


def test_fenced_block_in_another_language_is_skipped():
    text = '```python\nprint("hi")\n```\nThe answer:\n```json\n{"n": 1}\n```'

    assert extract_json(text) == {"n": 1}


def test_whole_text_that_is_json_is_parsed():
    assert extract_json('  {"severity": "SEV3", "tags": ["a", "b"]}\n') == {"severity": "SEV3", "tags": ["a", "b"]}


def test_whole_text_array_is_parsed():
    assert extract_json("[1, 2, 3]") == [1, 2, 3]


def test_json_after_prose_is_found():
    assert extract_json('The triage result is {"severity": "SEV4"}') == {"severity": "SEV4"}


def test_first_complete_object_is_used_when_more_text_follows():
    text = '{"severity": "SEV1"} and then {"severity": "SEV2"} because reasons'

    assert extract_json(text) == {"severity": "SEV1"}


def test_nested_braces_are_decoded_as_one_object():
    text = 'Answer: {"a": {"b": {"c": [1, {"d": 2}]}}, "e": "}"} done'

    assert extract_json(text) == {"a": {"b": {"c": [1, {"d": 2}]}}, "e": "}"}


def test_bracketed_timestamp_before_the_object_is_skipped():
    """A ``[`` that does not start valid JSON is passed over, not reported as broken JSON."""
    text = '[2024-05-01 10:42:01] triage: {"severity": "SEV2"}'

    assert extract_json(text) == {"severity": "SEV2"}


def test_text_without_json_raises_no_json():
    with pytest.raises(NoJSON, match="no JSON object or array found"):
        extract_json("The severity is SEV1 and the component is auth.")


def test_empty_text_raises_no_json():
    with pytest.raises(NoJSON):
        extract_json("")


@pytest.mark.parametrize(
    "text",
    [
        '{"severity": "SEV1",}',  # trailing comma
        "{'severity': 'SEV1'}",  # single quotes
        '{"severity": "SEV1", "component": "au',  # truncated
    ],
)
def test_nearly_json_is_not_repaired(text):
    with pytest.raises(NoJSON):
        extract_json(text)


def test_invalid_json_in_a_fence_raises_no_json_saying_where():
    """A broken fenced block is not rescued by a later rule: the fence is what the model meant."""
    text = '```json\n{"severity": "SEV1",}\n```\nalso {"severity": "SEV2"}'

    with pytest.raises(NoJSON, match=r"fenced block is not valid JSON: .* at line 1 column \d+"):
        extract_json(text)


def test_no_json_is_a_value_error():
    assert issubclass(NoJSON, ValueError)
