"""Agreement with human labels: κ and weighted κ against independent implementations, label files, categories."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evalkit.errors import JudgeError
from evalkit.judges.agreement import agreement_from_scores, compute_agreement, human_category, read_labels
from evalkit.records import ScoreRow

# A fixture: 100 answers rated by a person (rows) and a judge (columns) on 3 ordinal categories,
# expanded into (human, judge) pairs; its top-left 2x2 block serves as a pass/fail table.
TABLE = np.array([[44, 5, 1], [7, 20, 3], [9, 5, 6]])


def pairs_from(table: np.ndarray, categories: list[int]) -> list[tuple[int, int]]:
    return [(categories[i], categories[j]) for i in range(len(categories)) for j in range(len(categories)) for _ in range(int(table[i, j]))]


def test_cohens_kappa_equals_statsmodels_and_scikit_learn():
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import cohens_kappa

    pairs = pairs_from(TABLE[:2, :2], [0, 1])
    got = compute_agreement("m", "pass_fail", pairs)
    assert got.kappa == pytest.approx(cohens_kappa(TABLE[:2, :2]).kappa, abs=1e-12)
    assert got.kappa == pytest.approx(cohen_kappa_score(*zip(*pairs)), abs=1e-12)
    assert got.confusion == TABLE[:2, :2].tolist() and got.n == 76
    assert got.accuracy == pytest.approx(64 / 76)


def test_weighted_kappa_on_an_ordinal_scale_equals_statsmodels_quadratic_weights():
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import cohens_kappa

    pairs = pairs_from(TABLE, [1, 2, 3])
    got = compute_agreement("m", "ordinal", pairs, scale=[1, 3])
    assert got.weighted
    # statsmodels' wt="quadratic" is (i - j)^2 disagreement weights: the same quadratic-weighted κ
    assert got.kappa == pytest.approx(cohens_kappa(TABLE, wt="quadratic").kappa, abs=1e-12)
    assert got.kappa == pytest.approx(cohen_kappa_score(*zip(*pairs), weights="quadratic"), abs=1e-12)
    assert got.kappa != pytest.approx(cohen_kappa_score(*zip(*pairs)))  # weighting matters here


def test_unused_scale_points_appear_in_the_confusion_table():
    got = compute_agreement("m", "ordinal", [(1, 1), (5, 4), (4, 4)], scale=[1, 5])
    assert got.categories == [1, 2, 3, 4, 5] and len(got.confusion) == 5 and got.confusion[4][3] == 1


def test_kappa_is_undefined_not_perfect_when_everyone_says_pass():
    got = compute_agreement("m", "pass_fail", [(1, 1)] * 5)
    assert got.accuracy == 1.0 and math.isnan(got.kappa)


def test_human_labels_accept_common_pass_fail_words_and_scale_points():
    assert [human_category(x, "pass_fail") for x in (1, "0", "true", "FAIL", "yes", False)] == [1, 0, 1, 0, 1, 0]
    assert human_category("4", "ordinal", [1, 5]) == 4
    with pytest.raises(ValueError, match="from 1 to 5"):
        human_category(7, "ordinal", [1, 5])
    with pytest.raises(ValueError, match="not pass/fail"):
        human_category("maybe", "pass_fail")


def test_labels_read_from_csv_and_jsonl(tmp_path):
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text("item_id,metric,label,arm\na,faith,1,\nb,faith,0,tuned\n")
    assert read_labels(csv_file, ["faith"]) == [
        {"item_id": "a", "metric": "faith", "label": "1", "arm": "base"},
        {"item_id": "b", "metric": "faith", "label": "0", "arm": "tuned"},
    ]
    jsonl = tmp_path / "labels.jsonl"
    jsonl.write_text('{"item_id": "a", "metric": "faith", "label": 1, "output": "{\\"summary\\": \\"x\\"}"}\n')
    assert read_labels(jsonl)[0]["output"] == '{"summary": "x"}'


@pytest.mark.parametrize("text, message", [
    ("item_id,metric,label\na,nope,1\n", "metric 'nope' is not a metric of this suite"),
    ("item_id,metric\na,faith\n", "no label"),
    ("item_id,metric,label\na,faith,1\na,faith,0\n", "labelled twice"),
])
def test_bad_label_files_are_one_line_naming_the_line(tmp_path, text, message):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(JudgeError, match=message) as info:
        read_labels(path, ["faith"])
    assert str(info.value).startswith(f"{path}:")


def test_agreement_from_a_runs_scores_skips_unscored_and_unmatched_answers():
    labels = [{"item_id": i, "metric": "faith", "label": lab, "arm": "base"} for i, lab in [("a", 1), ("b", 0), ("c", 1), ("d", 1)]]
    labels.append({"item_id": "e", "metric": "faith", "label": 1, "arm": "base", "output": "another answer"})
    rows = [ScoreRow("a", "base", "faith", 1.0), ScoreRow("b", "base", "faith", 0.5), ScoreRow("c", "base", "faith", None, "judge reply did not parse"),
            ScoreRow("e", "base", "faith", 1.0)]
    (got,) = agreement_from_scores(labels, rows, {"faith": {"kind": "pass_fail"}}, texts={("e", "base"): "the run's answer"})
    assert (got.n, got.unscored, got.missing) == (2, 1, 2)  # d has no score; e labels another answer
    assert got.accuracy == 1.0  # 0.5 (one claim unsupported) is "not faithful", as labelled
