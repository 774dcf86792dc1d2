"""Forgetting checks: what an adapter costs in general ability.

Benchmark panels (ARC-Easy, ARC-Challenge, HellaSwag, PIQA, WinoGrande) scored by
log-likelihood exactly as lm-evaluation-harness scores them, paired by item across
arms, and the KL drift of each adapter from base on reference text. See
``panels.py`` (data, prompts, subsampling), ``scoring.py`` (acc/acc_norm),
``drift.py`` (KL), ``spec.py`` (the suite section) and ``stage.py`` (the run stage).
"""

from evalkit.forgetting.panels import PANELS, MCItem, Panel, get_panel, load_panel, subsample
from evalkit.forgetting.scoring import ItemResult, mc_metrics, score_items
from evalkit.forgetting.spec import DriftSpec, ForgettingSpec, PanelSpec, parse_forgetting
from evalkit.forgetting.stage import ForgettingResult, Prepared, check_backend, prepare, run_forgetting, write_rows

__all__ = [
    "PANELS",
    "DriftSpec",
    "ForgettingResult",
    "ForgettingSpec",
    "ItemResult",
    "MCItem",
    "Panel",
    "PanelSpec",
    "Prepared",
    "check_backend",
    "get_panel",
    "load_panel",
    "mc_metrics",
    "parse_forgetting",
    "prepare",
    "run_forgetting",
    "score_items",
    "subsample",
    "write_rows",
]
