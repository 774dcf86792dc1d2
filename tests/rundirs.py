"""Build run directories from constructed scores (no model), for report, compare and gate tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalkit.compare import summarize
from evalkit.records import MANIFEST_VERSION, BaseInfo, Generation, Item, Manifest, MetricInfo, ScoreRow, SuiteInfo
from evalkit.runner import write_run


def make_manifest(metrics: dict[str, bool], n: int, *, suite: str = "demo", gate: dict | None = None, **fields: Any) -> Manifest:
    """A manifest as a run of the tiny model would write it."""
    doc: dict[str, Any] = dict(
        version=MANIFEST_VERSION,
        suite=SuiteInfo(name=suite, path=f"/suites/{suite}.yaml", sha256="0" * 64),
        base=BaseInfo(spec="tiny", path="/m", fingerprint="f" * 64, source="local"),
        adapters=[],
        backend={"backend": "hf", "transformers": "5", "dtype": "float32", "quantize": "none", "device": "cpu"},
        chat_template_sha256="c" * 64,
        decoding={"max_new_tokens": 8, "do_sample": False},
        batch_size=16,
        metrics=[MetricInfo(name=m, type="x", params={}, binary=b) for m, b in metrics.items()],
        n_items=n, generated=0, cached=0, started="2026-11-24T00:00:00+00:00", wall_s=1.0, versions={}, gate=gate,
    )
    doc.update(fields)
    return Manifest(**doc)


def make_run(path: Path, values: dict[str, dict[str, list[float | None]]], *, binary: dict[str, bool] | None = None,
             gate: dict | None = None, suite: str = "demo", texts: dict[str, list[str]] | None = None) -> Path:
    """``values[arm][metric]`` is a list over items; None records a metric error for that item."""
    arms = list(values)
    metrics = list(values[arms[0]])
    n = len(values[arms[0]][metrics[0]])
    items = [Item(id=f"i{k:03d}", row={"q": f"question {k}"}) for k in range(n)]
    scores = [
        ScoreRow(items[k].id, arm, m, v, None if v is not None else "could not score", "")
        for arm in arms for m in metrics for k, v in enumerate(values[arm][m])
    ]
    gens = [Generation(items[k].id, arm, (texts or {}).get(arm, [f"{arm} answer {k}"] * n)[k], 5, 3, 0.1) for arm in arms for k in range(n)]
    binary = binary or {m: True for m in metrics}
    summary = summarize(suite, items, scores, [(m, binary[m]) for m in metrics], arms, gens, n_resamples=2000)
    path.mkdir(parents=True)
    manifest = make_manifest(binary, n, suite=suite, gate=gate)
    write_run(path, manifest, gens, items, {it.id: [{"role": "user", "content": it.row["q"]}] for it in items}, scores, summary)
    return path


def add_forgetting(path: Path, panel: str, base: list[bool], adapter: list[bool], *, arm: str = "v1", mean_kl: float | None = None,
                   max_drop: float | None = None, max_kl: float | None = None) -> Path:
    """Give a run directory a forgetting section: ``base[i]``/``adapter[i]`` say whether each arm got item i right."""
    import json

    from evalkit.forgetting.panels import load_panel
    from evalkit.forgetting.scoring import ItemResult
    from evalkit.models.base import LoglikelihoodResult
    from evalkit.forgetting.spec import DriftSpec, ForgettingSpec, PanelSpec
    from evalkit.forgetting.stage import Prepared, summarize_forgetting
    from evalkit.models.base import PassageDrift
    from evalkit.records import to_json_dict

    items = load_panel(panel)[: len(base)]
    spec = ForgettingSpec(panels=(PanelSpec(panel, n=len(items), max_drop=max_drop),),
                          kl=DriftSpec(passages=2, max_kl=max_kl) if mean_kl is not None else None)
    prepared = Prepared(spec=spec, items={panel: items}, totals={panel: len(load_panel(panel))}, passages=[])
    results = []
    for arm_name, right in (("base", base), (arm, adapter)):
        for it, ok in zip(items, right):
            pred = it.gold if ok else (it.gold + 1) % len(it.choices)
            choices = tuple(LoglikelihoodResult(-1.0 if k == pred else -9.0, False, 1) for k in range(len(it.choices)))
            results.append(ItemResult(it, arm_name, choices, pred, pred, cached=False))
    drifts = {arm: [("p0", PassageDrift(10, 10 * mean_kl, mean_kl, 10)), ("p1", PassageDrift(10, 10 * mean_kl, mean_kl, 9))]} if mean_kl is not None else {}
    fs = summarize_forgetting(prepared, results, drifts, ["base", arm], n_resamples=2000)
    summary = json.loads((path / "summary.json").read_text())
    summary["forgetting"] = to_json_dict(fs)
    (path / "summary.json").write_text(json.dumps(summary))
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["extra"]["forgetting"] = {"config": spec.to_dict(), "data_package": "0.9.0", "computed": 0, "cached": 0}
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path
