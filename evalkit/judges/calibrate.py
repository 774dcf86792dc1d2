"""``evalkit judge calibrate SUITE --labels FILE``: measure the suite's judge against human labels.

Each label names an item, a metric and a human verdict, and either carries the answer the
person labelled (``output``) or points at an arm of a run (``--run RUN_DIR``; ``arm``
defaults to ``base``). The suite's metric scores that answer with the suite's judge (or
``--judge``), through the same cache as runs, and the verdicts are compared with the
labels (:mod:`evalkit.judges.agreement`). Every label is judged: a metric's ``sample``
does not apply here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit._util import evalkit_home
from evalkit.cache import GenerationCache
from evalkit.errors import JudgeError
from evalkit.judges.agreement import Agreement, compute_agreement, human_category, judge_category, read_labels
from evalkit.judges.stage import JudgeOverrides, calibration_kind, check_judge, make_judge

__all__ = ["Calibration", "calibrate"]


@dataclass
class Calibration:
    """What ``calibrate`` found."""

    agreements: list[Agreement]
    judge: dict[str, Any]
    """The judge as the manifest would describe it (identity, params, counts)."""
    labels: int
    notes: list[str] = field(default_factory=list)


def calibrate(suite: Any, labels_path: Path, *, overrides: JudgeOverrides | None = None, run_dir: Path | None = None,
              cache_path: Path | None = None, use_cache: bool = True, allow_network: bool = False,
              progress: Callable[[str, int, int], None] | None = None, note: Callable[[str], None] | None = None) -> Calibration:
    """Judge every labelled answer with the suite's metric and compare with the human label.

    Raises:
        JudgeError: unreadable labels, a metric that cannot be compared with labels (pairwise, a
            continuous metric), a label that does not fit its metric, an answer that cannot be found,
            or a judge that cannot be set up; all before any judge model loads.
    """
    from evalkit.data import Renderer, load_items
    from evalkit.metrics import ScoreRequest, build_metric

    judge = make_judge(suite, overrides)
    metrics = {m.name: m for m in (build_metric(spec, suite.dir, judge) for spec in suite.metrics)}
    labels = read_labels(labels_path, metrics)
    used = [metrics[name] for name in dict.fromkeys(label["metric"] for label in labels)]
    kinds = {m.name: calibration_kind(m) for m in used}
    for m in used:
        if kinds[m.name] is None:
            raise JudgeError(f"{labels_path}: metric {m.name!r} ({m.type}) gives neither pass/fail nor a point on a scale, so "
                             f"labels cannot be compared with it; calibrate pass/fail metrics, faithfulness or a judge rubric")
    for label in labels:
        spec = kinds[label["metric"]]
        assert spec is not None
        try:
            human_category(label["label"], spec["kind"], spec.get("scale"))
        except ValueError as exc:
            raise JudgeError(f"{labels_path}: item {label['item_id']!r}, metric {label['metric']!r}: {exc}") from None
    check_judge(judge, used, overrides, note=note)

    items = {it.id: it for it in load_items(suite.data, str(suite.path), allow_network=allow_network)}
    renderer = Renderer(suite.prompt, str(suite.path))
    texts = _run_texts(run_dir) if run_dir else {}
    requests: dict[str, list[tuple[dict[str, Any], Any]]] = {m.name: [] for m in used}
    for label in labels:
        item = items.get(label["item_id"])
        if item is None:
            raise JudgeError(f"{labels_path}: item {label['item_id']!r} is not in the suite's data ({suite.data.path or suite.data.hf})")
        output = label.get("output", texts.get((label["item_id"], label["arm"])))
        if output is None:
            where = f"arm {label['arm']!r} of {run_dir} has no answer for it" if run_dir else "pass --run RUN_DIR or add an output column"
            raise JudgeError(f"{labels_path}: the label of item {label['item_id']!r} ({label['metric']}) has no answer to judge: {where}")
        requests[label["metric"]].append((label, ScoreRequest(output=output, item=item, arm=label["arm"],
                                                              messages=tuple(renderer.messages(item)))))

    cache_file = (cache_path or evalkit_home() / "cache.sqlite") if use_cache else None
    agreements = []
    with GenerationCache(cache_file) as cache:
        if any(m.needs_model for m in used):
            judge.bind(cache=cache, progress=progress, allow_network=allow_network)
        try:
            for m in used:
                batch = requests[m.name]
                scores = m.score_many([r for _, r in batch])
                spec = kinds[m.name]
                assert spec is not None
                pairs = [(human_category(label["label"], spec["kind"], spec.get("scale")), judge_category(s.value, spec["kind"]))
                         for (label, _), s in zip(batch, scores) if s.value is not None]
                agreements.append(compute_agreement(m.name, spec["kind"], pairs, spec.get("scale"),
                                                    unscored=sum(s.value is None for s in scores)))
            described = judge.describe()
        finally:
            judge.close()
    return Calibration(agreements=agreements, judge=described, labels=len(labels))


def _run_texts(run_dir: Path) -> dict[tuple[str, str], str]:
    from evalkit.rundir import load_run

    return {(g["item_id"], g["arm"]): g["text"] for g in load_run(run_dir).generations() if not g.get("error")}
