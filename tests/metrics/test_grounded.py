"""grounded_fields: extracted values must be found in the source text, as they are or normalised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.errors import MetricError
from evalkit.metrics import build_metric
from evalkit.metrics.grounded import normalise
from evalkit.records import Item
from evalkit.suite import MetricSpec

SOURCE = "Invoice INV-2291 from ACME Corp., dated 2026-03-01: total €1,250.00 for 3 licences. Contact: J. Müller."
ITEM = Item("i", {"text": SOURCE, "n": 4})


def metric(**params):
    return build_metric(MetricSpec("grounded", "grounded_fields", {"source": "text", **params}), Path("."))


def test_values_found_as_they_are_or_normalised_are_grounded():
    answer = {"invoice": "inv 2291", "vendor": "acme corp", "total": "1250.00", "count": 3, "contact": "J. MÜLLER"}
    s = metric().score(json.dumps(answer), ITEM)
    assert s.value == 1.0 and json.loads(s.detail)["invented"] == []


def test_invented_values_are_listed_in_the_detail():
    answer = {"invoice": "INV-2291", "vendor": "Globex", "items": [{"count": 7}]}
    s = metric().score(json.dumps(answer), ITEM)
    assert s.value == pytest.approx(1 / 3)
    assert json.loads(s.detail)["invented"] == [{"field": "vendor", "value": "Globex"}, {"field": "items[0].count", "value": "7"}]


def test_a_number_matches_whole_words_only():
    assert metric().score('{"n": 25}', ITEM).value == 0.0  # "25" only appears inside "1,250.00" and "2026"


def test_fields_restrict_what_is_checked():
    s = metric(fields=["vendor"]).score('{"vendor": "ACME Corp.", "note": "made up"}', ITEM)
    assert s.value == 1.0


def test_pass_fail_requires_every_value_grounded():
    m = metric(pass_fail=True)
    assert m.binary
    assert m.score('{"vendor": "ACME Corp.", "x": "Globex"}', ITEM).value == 0.0


def test_an_answer_without_json_extracted_nothing_and_scores_0():
    s = metric().score("no idea", ITEM)
    assert s.value == 0.0 and "nothing extracted" in s.detail


def test_a_source_that_is_not_text_is_an_error():
    s = metric(source="n").score('{"a": "4"}', ITEM)
    assert s.value is None and "not text" in s.error


def test_normalise_folds_case_punctuation_and_thousands_separators():
    assert normalise("  ACME-Corp.,  €1,250.00 ") == "acme corp 1250 00"


def test_an_empty_fields_list_is_a_config_error():
    with pytest.raises(MetricError, match="fields is empty"):
        metric(fields=[])
